//! Builds the IP table the worker carries (`snc-ipdata`) from the
//! `@ip-location-db` packages that `npm ci` installs, into `OUT_DIR`, or
//! from the same four files in `SNC_IP_DATA_DIR` when it is set (fresher
//! data, README). Without them the build fails when `SNC_IP_DATA_REQUIRED=1`
//! (as `scripts/build.sh` sets for a worker to deploy); otherwise (a
//! `cargo check` before `npm ci`) the table is empty and the build warns.

use std::path::{Path, PathBuf};

use snc_ipdata::build::{Installed, FILES};

/// Its `version` names the data's release.
const RELEASE_FILE: &str = "asn/package.json";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=SNC_IP_DATA_DIR");
    println!("cargo:rerun-if-env-changed=SNC_IP_DATA_REQUIRED");
    let required = std::env::var_os("SNC_IP_DATA_REQUIRED").is_some_and(|v| v == "1");
    let root = match std::env::var("SNC_IP_DATA_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifest.join("../../node_modules/@ip-location-db"),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("ip-table.bin");
    for file in FILES.iter().chain(&[RELEASE_FILE]) {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let table = match read(&root) {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => panic!("the IP data in {} does not read: {e}", root.display()),
        None if required => panic!(
            "no IP data in {}: run npm ci (make install), or set SNC_IP_DATA_DIR to a folder holding {}",
            root.display(),
            FILES.join(", ")
        ),
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
    let installed = Installed::read(root)?;
    let release = std::fs::read_to_string(root.join(RELEASE_FILE))
        .ok()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
        .and_then(|p| p["version"].as_str().map(str::to_string))
        .unwrap_or_default();
    Some(snc_ipdata::build::table(&installed.sources(&release)))
}
