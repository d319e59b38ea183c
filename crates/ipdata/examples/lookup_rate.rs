//! `make bench`'s IP table figures: the table built from the installed
//! data (`npm ci`), its size as the worker carries it and gzipped, and
//! the time of one lookup (country and network) over a spread of
//! addresses.

use std::io::Write;
use std::net::IpAddr;
use std::time::Instant;

use snc_ipdata::build::{table, Installed, FILES};
use snc_ipdata::IpData;

fn main() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/@ip-location-db");
    let Some(installed) = Installed::read(&root) else {
        eprintln!(
            "{} does not hold {} (run npm ci)",
            root.display(),
            FILES.join(", ")
        );
        std::process::exit(1)
    };
    let started = Instant::now();
    let bytes = table(&installed.sources("")).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let built = started.elapsed();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = gz.write_all(&bytes);
    let gzipped = gz.finish().map(|g| g.len()).unwrap_or(0);
    let data = match IpData::open(&bytes) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    let s = data.summary();
    println!(
        "ip table: {} bytes in the worker, {} gzip; {} + {} country ranges (IPv4 + IPv6), {} + {} network ranges, {} networks named; built in {} ms",
        s.bytes,
        gzipped,
        s.v4_country_ranges,
        s.v6_country_ranges,
        s.v4_network_ranges,
        s.v6_network_ranges,
        s.networks,
        built.as_millis()
    );
    // A spread of addresses: a multiplicative walk over IPv4, and IPv6 in
    // 2000::/3.
    let mut addresses: Vec<IpAddr> = Vec::with_capacity(200_000);
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..200_000u32 {
        x = x.wrapping_mul(2_654_435_761).wrapping_add(i);
        if i % 4 == 0 {
            let v6 = (0x2000u128 << 112) | (u128::from(x) << 80) | u128::from(i);
            addresses.push(IpAddr::V6(v6.into()));
        } else {
            addresses.push(IpAddr::V4(x.into()));
        }
    }
    let mut known = 0usize;
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        for a in &addresses {
            let info = data.lookup(*a);
            known += usize::from(info.country.is_some()) + usize::from(info.network.is_some());
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / (rounds * addresses.len()) as f64;
    println!(
        "ip lookup (country and network), natively: {ns:.0} ns ({:.0} % of the addresses known)",
        100.0 * known as f64 / (2 * rounds * addresses.len()) as f64
    );
}
