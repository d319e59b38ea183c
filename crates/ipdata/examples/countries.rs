//! Writes `data/countries.csv` to stdout from the installed `world-atlas`
//! and `i18n-iso-countries` packages (`npm ci`):
//! `cargo run -p snc-ipdata --example countries > crates/ipdata/data/countries.csv`.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules");
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| {
            eprintln!("{}: {e} (run npm ci)", root.join(p).display());
            std::process::exit(1)
        })
    };
    match snc_ipdata::geo::build(
        &read("world-atlas/countries-50m.json"),
        &read("i18n-iso-countries/codes.json"),
    ) {
        Ok(csv) => print!("{csv}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}
