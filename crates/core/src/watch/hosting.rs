//! The networks of servers rather than people (cloud, hosting and
//! server-rental providers, where commercial VPNs and proxies exit too):
//! `data/hosting-networks.csv`, compiled by hand with its sources, read
//! once. The `risky_ip` rule asks it of a sign-in's network.

use std::sync::OnceLock;

use snc_ipdata::Asn;

const LIST: &str = include_str!("../../data/hosting-networks.csv");

/// A listed network: its number, holder (as the IP data names it) and
/// what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostingNetwork {
    pub asn: Asn,
    pub holder: &'static str,
    pub what: &'static str,
}

/// Every listed network, by number. Lines that do not read are left out
/// (a test requires that there are none).
pub fn networks() -> &'static [HostingNetwork] {
    static PARSED: OnceLock<Vec<HostingNetwork>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut out: Vec<HostingNetwork> = LIST
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("asn,") && !l.trim().is_empty())
            .filter_map(parse)
            .collect();
        out.sort_by_key(|n| n.asn);
        out
    })
}

fn parse(line: &'static str) -> Option<HostingNetwork> {
    let mut f = line.splitn(3, ',');
    let asn = f.next()?.trim().parse().ok()?;
    let holder = f.next()?.trim();
    let what = f.next()?.trim();
    (!holder.is_empty() && !what.is_empty()).then_some(HostingNetwork {
        asn: Asn(asn),
        holder,
        what,
    })
}

/// The listed network `asn` is, if it is one.
pub fn hosting(asn: Asn) -> Option<&'static HostingNetwork> {
    let list = networks();
    list.binary_search_by_key(&asn, |n| n.asn)
        .ok()
        .map(|i| &list[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_reads_and_no_network_is_listed_twice() {
        let lines = LIST
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("asn,") && !l.trim().is_empty())
            .count();
        assert_eq!(networks().len(), lines, "a line of the list does not read");
        assert!(lines >= 40, "{lines}");
        let mut asns: Vec<u32> = networks().iter().map(|n| n.asn.0).collect();
        asns.dedup();
        assert_eq!(asns.len(), lines, "listed twice");
        assert_eq!(
            hosting(Asn(16509)).map(|n| n.what),
            Some("Amazon Web Services")
        );
        // Google's own network carries its services and people's proxied
        // traffic: not a hosting network here (its cloud is AS396982).
        assert_eq!(hosting(Asn(15169)), None);
        assert!(hosting(Asn(396982)).is_some());
    }

    /// Each listed number is held by whom the list says, in the IP data
    /// the worker carries (`npm ci`): a mistyped number fails here.
    #[test]
    fn each_network_is_held_by_whom_the_ip_data_names() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../node_modules/@ip-location-db/asn/asn-ipv4-num.csv");
        let Ok(text) = std::fs::read_to_string(&root) else {
            assert!(
                std::env::var_os("SNC_TEST_DATA_REQUIRED").is_none(),
                "the installed data is missing (npm ci)"
            );
            eprintln!("skipped: {} is not installed (npm ci)", root.display());
            return;
        };
        let mut named: std::collections::BTreeMap<u32, String> = Default::default();
        for line in text.lines() {
            let mut f = line.splitn(4, ',');
            let (_, _, asn, name) = (f.next(), f.next(), f.next(), f.next());
            if let (Some(asn), Some(name)) = (asn.and_then(|a| a.parse().ok()), name) {
                if hosting(Asn(asn)).is_some() {
                    named
                        .entry(asn)
                        .or_insert_with(|| name.trim_matches('"').to_string());
                }
            }
        }
        for n in networks() {
            let name = named
                .get(&n.asn.0)
                .map(String::as_str)
                .unwrap_or("(absent)");
            assert!(
                name.starts_with(n.holder),
                "AS{} is held by {name}, not {}",
                n.asn.0,
                n.holder
            );
        }
    }
}
