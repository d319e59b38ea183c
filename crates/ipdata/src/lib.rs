//! Offline IP intelligence: the country and the network (autonomous system,
//! its number and name) of an IPv4 or IPv6 address, read from a compact
//! table ([`IpData`]) that [`build`] makes from the `@ip-location-db`
//! packages' CSV files (README: sources and licences). No I/O, no
//! allocation on lookup, no panic on a damaged table: a lookup in one that
//! does not read answers nothing.
//!
//! Each of the four range sets (country and network, for IPv4 and IPv6) is
//! a list of (first address, value) sorted by address, a gap having value
//! 0, cut into blocks of [`BLOCK`] entries: the blocks' first addresses
//! are searched by bisection, then one block's entries are read in order,
//! each as the distance from the one before and its value, in LEB128
//! varints. Where the sources' ranges overlap, the one that starts later
//! (or the shorter of two that start together) holds what it covers: a
//! range nested in a larger one (an assignment in a registry's block)
//! wins inside it.
//! IPv6 is kept to /64: the sources' ranges are that coarse or coarser,
//! bar a few, which hold their whole /64.

use std::fmt;
use std::net::IpAddr;

pub mod build;
pub mod geo;

/// The table's first bytes: its format.
pub const MAGIC: &[u8; 8] = b"SNCIP\x00\x00\x01";
/// Entries per block: a lookup reads at most this many.
pub const BLOCK: usize = 32;
/// Longest network name kept, in bytes.
pub const NAME_MAX: usize = 64;

/// An ISO 3166-1 alpha-2 country code, as the sources give it (upper case;
/// `EU` and `AP` where a registry names a region).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country([u8; 2]);

impl Country {
    /// Two ASCII letters, upper case.
    pub fn parse(code: &str) -> Option<Country> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Two ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An autonomous system number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Asn(pub u32);

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AS{}", self.0)
    }
}

/// The network an address is announced from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network<'a> {
    pub asn: Asn,
    /// Its holder's name as the sources give it (cut at [`NAME_MAX`]
    /// bytes); empty when they give none.
    pub name: &'a str,
}

/// What the table says of one address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpInfo<'a> {
    pub country: Option<Country>,
    pub network: Option<Network<'a>>,
}

/// Why a table does not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Not this format, or another version of it.
    Magic,
    /// It ends before a part it announces.
    Truncated,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Magic => f.write_str("not an IP table of this version"),
            FormatError::Truncated => f.write_str("the IP table is cut short"),
        }
    }
}

/// What a table holds, for the bench and the deployment's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The data's release (the packages' version).
    pub release: String,
    pub bytes: usize,
    pub v4_country_ranges: u32,
    pub v6_country_ranges: u32,
    pub v4_network_ranges: u32,
    pub v6_network_ranges: u32,
    pub networks: u32,
}

/// Special-purpose blocks (IANA's registries): private, shared, loopback,
/// link-local, documentation, benchmarking, multicast and reserved space.
/// No sign-in comes from one across the internet, and the sources place
/// some of them anyway (203.0.113.0/24, a documentation block, in
/// Australia), so the rules never place them.
const SPECIAL_V4: [(u32, u32); 15] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared (carrier NAT)
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 documentation
    (0xc058_6300, 24), // 192.88.99.0/24 6to4 relay (deprecated)
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 documentation
    (0xcb00_7100, 24), // 203.0.113.0/24 documentation
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved, broadcast
];
const SPECIAL_V6: [(u128, u32); 8] = [
    (0, 127),                                    // ::/128 and ::1/128
    (0x0100_0000_0000_0000 << 64, 64),           // 100::/64 discard
    (0x2001_0000 << 96, 23),                     // 2001::/23 protocol assignments (Teredo)
    (0x2001_0db8 << 96, 32),                     // 2001:db8::/32 documentation
    (0xfc00 << 112, 7),                          // fc00::/7 unique local
    (0xfe80 << 112, 10),                         // fe80::/10 link-local
    (0xff00 << 112, 8),                          // ff00::/8 multicast
    (0x0000_0000_0000_0000_0000_ffff << 32, 96), // ::ffff:0:0/96 mapped IPv4
];

/// Whether an address lies in a special-purpose block (`SPECIAL_V4`,
/// `SPECIAL_V6`; an IPv4-mapped IPv6 address as its IPv4 address): one
/// that no rule should place.
pub fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            SPECIAL_V4
                .iter()
                .any(|&(net, len)| a >> (32 - len) == net >> (32 - len))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_special(IpAddr::V4(v4));
            }
            let a = u128::from(v6);
            SPECIAL_V6
                .iter()
                .any(|&(net, len)| a >> (128 - len) == net >> (128 - len))
        }
    }
}

/// An opened table, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct IpData<'a> {
    bytes: usize,
    release: &'a str,
    countries: &'a [u8],
    v4_country: Ranges<'a>,
    v6_country: Ranges<'a>,
    v4_network: Ranges<'a>,
    v6_network: Ranges<'a>,
    /// Keyed by AS number; the value is the name's offset in `names`.
    network_names: Ranges<'a>,
    names: &'a [u8],
}

impl<'a> IpData<'a> {
    /// Opens a table [`build`] made.
    pub fn open(bytes: &'a [u8]) -> Result<IpData<'a>, FormatError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(FormatError::Magic);
        }
        let release_len = r.u32()? as usize;
        let release = std::str::from_utf8(r.take(release_len)?).unwrap_or("");
        let countries_len = r.u32()? as usize;
        let countries = r.take(countries_len.checked_mul(2).ok_or(FormatError::Truncated)?)?;
        let v4_country = Ranges::read(&mut r)?;
        let v6_country = Ranges::read(&mut r)?;
        let v4_network = Ranges::read(&mut r)?;
        let v6_network = Ranges::read(&mut r)?;
        let network_names = Ranges::read(&mut r)?;
        let names_len = r.u32()? as usize;
        let names = r.take(names_len)?;
        Ok(IpData {
            bytes: bytes.len(),
            release,
            countries,
            v4_country,
            v6_country,
            v4_network,
            v6_network,
            network_names,
            names,
        })
    }

    /// A table that knows nothing (a build without the data).
    pub fn empty() -> IpData<'static> {
        let none = Ranges {
            entries: 0,
            blocks: &[],
            stream: &[],
        };
        IpData {
            bytes: 0,
            release: "",
            countries: &[],
            v4_country: none,
            v6_country: none,
            v4_network: none,
            v6_network: none,
            network_names: none,
            names: &[],
        }
    }

    /// Whether it knows anything.
    pub fn is_empty(&self) -> bool {
        self.v4_country.entries == 0 && self.v4_network.entries == 0
    }

    pub fn summary(&self) -> Summary {
        Summary {
            release: self.release.to_string(),
            bytes: self.bytes,
            v4_country_ranges: self.v4_country.entries,
            v6_country_ranges: self.v6_country.entries,
            v4_network_ranges: self.v4_network.entries,
            v6_network_ranges: self.v6_network.entries,
            networks: self.network_names.entries,
        }
    }

    /// The data's release (the packages' version).
    pub fn release(&self) -> &'a str {
        self.release
    }

    pub fn lookup(&self, ip: IpAddr) -> IpInfo<'a> {
        IpInfo {
            country: self.country(ip),
            network: self.network(ip),
        }
    }

    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        let (_, value) = find(ip, &self.v4_country, &self.v6_country)?;
        let at = usize::try_from(value)
            .ok()?
            .checked_sub(1)?
            .checked_mul(2)?;
        let code = self.countries.get(at..at.checked_add(2)?)?;
        Country::parse(std::str::from_utf8(code).ok()?)
    }

    pub fn network(&self, ip: IpAddr) -> Option<Network<'a>> {
        let (_, value) = find(ip, &self.v4_network, &self.v6_network)?;
        let asn = u32::try_from(value).ok().filter(|a| *a != 0)?;
        Some(Network {
            asn: Asn(asn),
            name: self.name_of(asn).unwrap_or(""),
        })
    }

    fn name_of(&self, asn: u32) -> Option<&'a str> {
        let (key, offset) = self.network_names.find(u64::from(asn))?;
        if key != u64::from(asn) {
            return None;
        }
        let mut r = Reader {
            bytes: self.names,
            at: usize::try_from(offset).ok()?,
        };
        let len = usize::try_from(r.varint().ok()?).ok()?;
        std::str::from_utf8(r.take(len).ok()?).ok()
    }
}

/// The entry of `ip` in the set of its family (an IPv4-mapped IPv6
/// address is its IPv4 address).
fn find(ip: IpAddr, v4: &Ranges<'_>, v6: &Ranges<'_>) -> Option<(u64, u64)> {
    match ip {
        IpAddr::V4(a) => v4.find(u64::from(u32::from(a))),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => v4.find(u64::from(u32::from(m))),
            None => v6.find(v6_key(u128::from(a))),
        },
    }
}

/// An IPv6 address's key: its /64.
pub fn v6_key(address: u128) -> u64 {
    (address >> 64) as u64
}

/// One range set: `entries` (key, value) pairs in blocks of [`BLOCK`].
#[derive(Clone, Copy, Debug)]
struct Ranges<'a> {
    entries: u32,
    /// Per block: its first key (8 bytes) and where its entries start in
    /// `stream` (4 bytes), little-endian.
    blocks: &'a [u8],
    stream: &'a [u8],
}

const BLOCK_HEAD: usize = 12;

impl<'a> Ranges<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Ranges<'a>, FormatError> {
        let entries = r.u32()?;
        let blocks = r.u32()? as usize;
        let blocks = r.take(
            blocks
                .checked_mul(BLOCK_HEAD)
                .ok_or(FormatError::Truncated)?,
        )?;
        let stream_len = r.u32()? as usize;
        let stream = r.take(stream_len)?;
        Ok(Ranges {
            entries,
            blocks,
            stream,
        })
    }

    fn block(&self, i: usize) -> Option<(u64, usize)> {
        let from = i.checked_mul(BLOCK_HEAD)?;
        let head = self.blocks.get(from..from.checked_add(BLOCK_HEAD)?)?;
        let key = u64::from_le_bytes(head[..8].try_into().ok()?);
        let at = u32::from_le_bytes(head[8..].try_into().ok()?);
        Some((key, at as usize))
    }

    /// The entry with the greatest key at or below `key`: (its key, value).
    fn find(&self, key: u64) -> Option<(u64, u64)> {
        let count = self.blocks.len() / BLOCK_HEAD;
        // The last block whose first key is at or below `key`.
        let (mut lo, mut hi) = (0usize, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.block(mid)?.0 <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let (first, at) = self.block(lo.checked_sub(1)?)?;
        let mut r = Reader {
            bytes: self.stream,
            at,
        };
        let (mut found, mut value) = (first, r.varint().ok()?);
        for _ in 1..BLOCK {
            let Ok(delta) = r.varint() else { break };
            let next = found.checked_add(delta)?;
            if delta == 0 || next > key {
                break;
            }
            found = next;
            value = r.varint().ok()?;
        }
        Some((found, value))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self.at.checked_add(n).ok_or(FormatError::Truncated)?;
        let part = self.bytes.get(self.at..end).ok_or(FormatError::Truncated)?;
        self.at = end;
        Ok(part)
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn varint(&mut self) -> Result<u64, FormatError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or(FormatError::Truncated)?;
            self.at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FormatError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::build::{table, Installed, Sources};
    use super::*;

    const V4: &str = "\
16777216,16777471,AU
16777472,16778239,cn
16778240,16779263,AU
16779264,16781311,AU
16781312,16785407,JP
";
    // 2001:db8::/32 in two halves, 2001:db9::/64, and a range inside that /64.
    const V6: &str = "\
42540766411282592856903984951653826560,42540766450896674114036153748425801727,DE
42540766450896674114036153748425801728,42540766490510755389615066618907328511,FR
42540766490510755380391694582052552704,42540766490510755380391694582052618239,US
";
    const NET_V4: &str = "\
16777216,16777471,13335,\"Cloudflare, Inc.\"
16778240,16779263,38803,Gtelecom Pty Ltd
16779264,16781311,38803,Gtelecom Pty Ltd
16781312,16785407,2519,\"The \"\"quoted\"\" one\"
";
    const NET_V6: &str = "\
42540766411282592856903984951653826560,42540766490510755389615066618907328511,6939,Hurricane Electric LLC
";

    fn sample() -> Vec<u8> {
        table(&Sources {
            release: "test-1",
            country_v4: V4,
            country_v6: V6,
            network_v4: NET_V4,
            network_v6: NET_V6,
        })
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_get_their_ranges_country_and_network_and_gaps_get_nothing() {
        let bytes = sample();
        let data = IpData::open(&bytes).unwrap();
        let country = |s| data.country(ip(s)).map(|c| c.to_string());
        assert_eq!(country("1.0.0.0").as_deref(), Some("AU"));
        assert_eq!(country("1.0.0.255").as_deref(), Some("AU"));
        assert_eq!(country("1.0.1.0").as_deref(), Some("CN"), "upper case");
        assert_eq!(country("1.0.4.0").as_deref(), Some("AU"));
        assert_eq!(country("1.0.7.255").as_deref(), Some("AU"));
        assert_eq!(country("1.0.16.255").as_deref(), Some("JP"));
        assert_eq!(country("1.0.32.0"), None, "past the last range");
        assert_eq!(country("0.255.255.255"), None, "before the first");
        assert_eq!(country("::ffff:1.0.1.7").as_deref(), Some("CN"), "mapped");
        assert_eq!(country("2001:db8::1").as_deref(), Some("DE"));
        assert_eq!(country("2001:db8:8000::1").as_deref(), Some("FR"));
        // A range inside one /64 holds it all.
        assert_eq!(country("2001:db9::8000:0:0:1").as_deref(), Some("US"));
        assert_eq!(country("2001:db9::1").as_deref(), Some("US"));
        assert_eq!(country("2001:db9:0:1::"), None);
        assert_eq!(country("2001:db7:ffff:ffff::"), None);

        let net = data.network(ip("1.0.0.1")).unwrap();
        assert_eq!((net.asn, net.name), (Asn(13335), "Cloudflare, Inc."));
        assert_eq!(net.asn.to_string(), "AS13335");
        assert_eq!(data.network(ip("1.0.1.0")), None, "a gap between networks");
        let net = data.network(ip("1.0.7.0")).unwrap();
        assert_eq!((net.asn, net.name), (Asn(38803), "Gtelecom Pty Ltd"));
        assert_eq!(
            data.network(ip("1.0.16.0")).unwrap().name,
            "The \"quoted\" one"
        );
        assert_eq!(data.network(ip("2001:db8:1::")).unwrap().asn, Asn(6939));
        let info = data.lookup(ip("1.0.4.4"));
        assert_eq!(info.country, Country::parse("au"));
        assert_eq!(info.network.map(|n| n.asn), Some(Asn(38803)));

        let s = data.summary();
        assert_eq!(s.release, "test-1");
        // Two neighbours of one value are one entry; gaps and ends count.
        assert_eq!(
            (s.v4_country_ranges, s.v4_network_ranges, s.networks),
            (5, 5, 4)
        );
        assert!(!data.is_empty());
    }

    #[test]
    fn every_entry_of_a_large_set_is_found_across_blocks() {
        // 1,000 ranges of 16 addresses with a gap of 16 between each, so
        // many blocks, values cycling through three countries.
        let codes = ["AT", "BE", "CH"];
        let csv: String = (0..1_000u32)
            .map(|i| format!("{},{},{}\n", i * 32, i * 32 + 15, codes[i as usize % 3]))
            .collect();
        let bytes = table(&Sources {
            release: "",
            country_v4: &csv,
            country_v6: "",
            network_v4: "",
            network_v6: "",
        })
        .unwrap();
        let data = IpData::open(&bytes).unwrap();
        for i in 0..1_000u32 {
            let want = Country::parse(codes[i as usize % 3]);
            for a in [i * 32, i * 32 + 7, i * 32 + 15] {
                assert_eq!(data.country(IpAddr::V4(a.into())), want, "{a}");
            }
            assert_eq!(data.country(IpAddr::V4((i * 32 + 16).into())), None);
        }
        assert_eq!(data.network(ip("0.0.0.1")), None);
    }

    #[test]
    fn a_more_specific_range_holds_what_it_covers() {
        // A registry's block (CN) with two assignments inside it, one at
        // its start; an overlap that is not nested; a gap.
        let csv = "100,200,CN\n100,109,KR\n120,130,JP\n131,140,US\n150,250,DE\n300,310,FR\n";
        let bytes = table(&Sources {
            release: "",
            country_v4: csv,
            country_v6: "",
            network_v4: "",
            network_v6: "",
        })
        .unwrap();
        let data = IpData::open(&bytes).unwrap();
        let at = |a: u32| data.country(IpAddr::V4(a.into())).map(|c| c.to_string());
        let want = [
            (99, None),
            (100, Some("KR")),
            (109, Some("KR")),
            (110, Some("CN")),
            (120, Some("JP")),
            (130, Some("JP")),
            (131, Some("US")),
            (140, Some("US")),
            (141, Some("CN")),
            (150, Some("DE")),
            (250, Some("DE")),
            (251, None),
            (300, Some("FR")),
            (311, None),
        ];
        for (a, country) in want {
            assert_eq!(at(a).as_deref(), country, "{a}");
        }
    }

    #[test]
    fn a_damaged_table_opens_with_an_error_or_answers_without_a_panic() {
        let bytes = sample();
        assert_eq!(IpData::open(b"nonsense").unwrap_err(), FormatError::Magic);
        for cut in 0..bytes.len() {
            if let Ok(data) = IpData::open(&bytes[..cut]) {
                data.lookup(ip("1.0.4.4"));
            }
        }
        // Every byte flipped in turn: no panic, whatever it answers.
        for at in MAGIC.len()..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0xff;
            if let Ok(data) = IpData::open(&damaged) {
                for a in ["1.0.0.1", "1.0.7.0", "1.0.16.0", "2001:db8:1::", "9.9.9.9"] {
                    data.lookup(ip(a));
                }
            }
        }
        let empty = super::build::empty();
        let data = IpData::open(&empty).unwrap();
        assert!(data.is_empty());
        assert_eq!(data.lookup(ip("1.0.0.1")), IpInfo::default());
        assert_eq!(IpData::empty().lookup(ip("::1")), IpInfo::default());
    }

    #[test]
    fn bad_lines_are_named() {
        let bad = |country_v4: &str| {
            table(&Sources {
                release: "",
                country_v4,
                country_v6: "",
                network_v4: "",
                network_v6: "",
            })
            .unwrap_err()
        };
        assert_eq!(bad("1,2,AU\nx,3,AU").line, 2);
        assert_eq!(bad("5,2,AU").reason, "the range ends before it starts");
        assert_eq!(bad("1,4294967296,AU").reason, "not an IPv4 address");
        assert_eq!(bad("1,2").reason, "fewer than three fields");
        assert_eq!(bad("1,2,\"AU").reason, "a quoted field does not end");
        assert_eq!(bad("1,2,AUS").reason, "a country code is not two letters");
        assert_eq!(
            bad("1,2,AU\n3,4,AUS").to_string(),
            "country_v4 line 2: a country code is not two letters"
        );
    }

    #[test]
    fn special_purpose_addresses_are_told_apart() {
        for a in [
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.7",
            "198.51.100.7",
            "203.0.113.7",
            "198.19.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.1.2.3",
            "::1",
            "::",
            "2001:db8::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "2001:0:1::1",
        ] {
            assert!(is_special(ip(a)), "{a}");
        }
        for a in [
            "8.8.8.8",
            "203.0.114.1",
            "198.51.101.1",
            "172.32.0.1",
            "100.128.0.1",
            "1.1.1.1",
            "2a00:1450::1",
            "2001:4860::8888",
            "::ffff:8.8.8.8",
            "11.0.0.1",
        ] {
            assert!(!is_special(ip(a)), "{a}");
        }
    }

    /// The installed data (`npm ci`), when present: a sample of its own
    /// lines answers as the lines say. IPv6 lines are checked where they
    /// cover whole /64s.
    #[test]
    fn the_installed_data_answers_as_its_lines_say() {
        let Some(sources) = installed() else {
            assert!(
                std::env::var_os("SNC_TEST_DATA_REQUIRED").is_none(),
                "the installed data is missing (npm ci)"
            );
            eprintln!("skipped: node_modules/@ip-location-db is not installed (npm ci)");
            return;
        };
        let bytes = table(&sources.sources("")).unwrap();
        let data = IpData::open(&bytes).unwrap();
        let mut checked = 0;
        let s = sources.sources("");
        for (text, v6) in [(s.country_v4, false), (s.country_v6, true)] {
            for (first, last, line) in alone(text).into_iter().step_by(97) {
                let f: Vec<&str> = line.split(',').collect();
                if v6 && (first as u64 != 0 || last as u64 != u64::MAX) {
                    continue;
                }
                for a in [first, last] {
                    let addr = if v6 {
                        IpAddr::V6(a.into())
                    } else {
                        IpAddr::V4((a as u32).into())
                    };
                    assert_eq!(
                        data.country(addr).map(|c| c.to_string()).as_deref(),
                        Some(f[2]),
                        "{line}"
                    );
                    checked += 1;
                }
            }
        }
        for (first, _, line) in alone(s.network_v4).into_iter().step_by(97) {
            let f: Vec<&str> = line.splitn(4, ',').collect();
            let a = first as u32;
            let asn: u32 = f[2].parse().unwrap();
            let got = data
                .network(IpAddr::V4(a.into()))
                .map(|n| n.asn.0)
                .unwrap_or(0);
            assert_eq!(got, asn, "{line}");
            checked += 1;
        }
        assert!(checked > 10_000, "{checked}");
        let cf = data.network(ip("1.1.1.1")).unwrap();
        assert_eq!(cf.asn, Asn(13335));
        assert!(cf.name.contains("Cloudflare"), "{}", cf.name);
    }

    /// The lines no other line overlaps: (first, last, line).
    fn alone(text: &str) -> Vec<(u128, u128, &str)> {
        let mut lines: Vec<(u128, u128, &str)> = text
            .lines()
            .map(|l| {
                let mut f = l.split(',');
                let mut n = || f.next().unwrap().parse::<u128>().unwrap();
                (n(), n(), l)
            })
            .collect();
        lines.sort();
        let mut reach = None;
        let mut out = Vec::new();
        for (i, &(first, last, line)) in lines.iter().enumerate() {
            let after = lines.get(i + 1).is_some_and(|next| next.0 <= last);
            if !after && reach.is_none_or(|r| r < first) {
                out.push((first, last, line));
            }
            reach = reach.max(Some(last));
        }
        out
    }

    fn installed() -> Option<Installed> {
        Installed::read(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../node_modules/@ip-location-db"),
        )
    }
}
