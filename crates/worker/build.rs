//! Builds the IP table the worker carries (`snc-ipdata`) from the
//! `@ip-location-db` packages that `npm ci` installs, into `OUT_DIR`, or
//! from the same four files in `SNC_IP_DATA_DIR` when it is set (fresher
//! data, README). Without them (a `cargo check` before `npm ci`) the table
//! is empty and the build says so; `scripts/build.sh` refuses to build a
//! worker for deployment that way.

use std::path::{Path, PathBuf};

const FILES: [&str; 4] = [
    "geo-whois-asn-country/geo-whois-asn-country-ipv4-num.csv",
    "geo-whois-asn-country/geo-whois-asn-country-ipv6-num.csv",
    "asn/asn-ipv4-num.csv",
    "asn/asn-ipv6-num.csv",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=SNC_IP_DATA_DIR");
    let root = match std::env::var("SNC_IP_DATA_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifest.join("../../node_modules/@ip-location-db"),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("ip-table.bin");
    for file in FILES.iter().chain(&["asn/package.json"]) {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let table = match read(&root) {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => panic!("the IP data in {} does not read: {e}", root.display()),
        None => {
            println!(
                "cargo:warning=no IP data in {} (run npm ci): the worker knows no address's country or network",
                root.display()
            );
            snc_ipdata::build::empty()
        }
    };
    if let Err(e) = std::fs::write(&out, table) {
        panic!("cannot write {}: {e}", out.display());
    }
}

fn read(root: &Path) -> Option<Result<Vec<u8>, snc_ipdata::build::BuildError>> {
    let text = |file: &str| std::fs::read_to_string(root.join(file)).ok();
    let [country_v4, country_v6, network_v4, network_v6] = FILES.map(text);
    // The data's release, as the packages name it.
    let release = std::fs::read_to_string(root.join("asn/package.json"))
        .ok()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
        .and_then(|p| p["version"].as_str().map(str::to_string))
        .unwrap_or_default();
    Some(snc_ipdata::build::table(&snc_ipdata::build::Sources {
        release: &release,
        country_v4: &country_v4?,
        country_v6: &country_v6?,
        network_v4: &network_v4?,
        network_v6: &network_v6?,
    }))
}
