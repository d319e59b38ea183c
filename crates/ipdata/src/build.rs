//! Makes an [`IpData`](crate::IpData) table from the `@ip-location-db`
//! packages' numeric CSV files: `first,last,country` for countries and
//! `first,last,asn,name` for networks, addresses as decimal numbers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::{v6_key, BLOCK, MAGIC, NAME_MAX};

/// The four files' text, and the data's release.
pub struct Sources<'a> {
    pub release: &'a str,
    pub country_v4: &'a str,
    pub country_v6: &'a str,
    pub network_v4: &'a str,
    pub network_v6: &'a str,
}

/// The four files under the packages' folder (`node_modules/@ip-location-db`),
/// in [`Sources`]' order: countries IPv4 and IPv6, networks IPv4 and IPv6.
pub const FILES: [&str; 4] = [
    "geo-whois-asn-country/geo-whois-asn-country-ipv4-num.csv",
    "geo-whois-asn-country/geo-whois-asn-country-ipv6-num.csv",
    "asn/asn-ipv4-num.csv",
    "asn/asn-ipv6-num.csv",
];

/// The four files' text, read from a folder.
pub struct Installed([String; 4]);

impl Installed {
    /// [`FILES`] under `root`; `None` when one does not read.
    pub fn read(root: &Path) -> Option<Installed> {
        let [a, b, c, d] = FILES.map(|file| std::fs::read_to_string(root.join(file)).ok());
        Some(Installed([a?, b?, c?, d?]))
    }

    pub fn sources<'a>(&'a self, release: &'a str) -> Sources<'a> {
        let [country_v4, country_v6, network_v4, network_v6] = &self.0;
        Sources {
            release,
            country_v4,
            country_v6,
            network_v4,
            network_v6,
        }
    }
}

/// A line the table cannot take.
#[derive(Debug, PartialEq, Eq)]
pub struct BuildError {
    pub file: &'static str,
    pub line: usize,
    pub reason: &'static str,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.reason)
    }
}

impl std::error::Error for BuildError {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// A range's keys (first and last) and value.
type Range = (u64, u64, u64);

/// The table's bytes.
pub fn table(s: &Sources<'_>) -> Result<Vec<u8>, BuildError> {
    let country_v4 = read(s.country_v4, "country_v4", Family::V4)?;
    let country_v6 = read(s.country_v6, "country_v6", Family::V6)?;
    let network_v4 = read(s.network_v4, "network_v4", Family::V4)?;
    let network_v6 = read(s.network_v6, "network_v6", Family::V6)?;
    let mut codes: Vec<&str> = country_v4
        .iter()
        .chain(&country_v6)
        .map(|r| r.value.as_str())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    for (rows, file) in [(&country_v4, "country_v4"), (&country_v6, "country_v6")] {
        if let Some(r) = rows
            .iter()
            .find(|r| crate::Country::parse(&r.value).is_none())
        {
            return Err(BuildError {
                file,
                line: r.line,
                reason: "a country code is not two letters",
            });
        }
    }
    let country = |rows: &[Row]| -> Vec<Range> {
        rows.iter()
            .map(|r| {
                let at = codes.binary_search(&r.value.as_str()).unwrap_or(0);
                (r.first, r.last, at as u64 + 1)
            })
            .collect()
    };
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut network = |rows: &[Row], file: &'static str| -> Result<Vec<Range>, BuildError> {
        rows.iter()
            .map(|r| {
                let asn: u32 = r.value.parse().map_err(|_| BuildError {
                    file,
                    line: r.line,
                    reason: "the AS number is not a number",
                })?;
                if asn != 0 {
                    names
                        .entry(u64::from(asn))
                        .or_insert_with(|| r.name.clone());
                }
                Ok((r.first, r.last, u64::from(asn)))
            })
            .collect()
    };
    let network_v4 = network(&network_v4, "network_v4")?;
    let network_v6 = network(&network_v6, "network_v6")?;

    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, s.release.len());
    out.extend_from_slice(s.release.as_bytes());
    put_u32(&mut out, codes.len());
    for code in &codes {
        out.extend_from_slice(code.to_ascii_uppercase().as_bytes());
    }
    encode(&entries(country(&country_v4)), &mut out);
    encode(&entries(country(&country_v6)), &mut out);
    encode(&entries(network_v4), &mut out);
    encode(&entries(network_v6), &mut out);
    let mut blob = Vec::new();
    let mut keyed = Vec::with_capacity(names.len());
    for (asn, name) in names {
        keyed.push((asn, blob.len() as u64));
        let name = cut(&name, NAME_MAX);
        varint(&mut blob, name.len() as u64);
        blob.extend_from_slice(name.as_bytes());
    }
    encode(&keyed, &mut out);
    put_u32(&mut out, blob.len());
    out.extend_from_slice(&blob);
    Ok(out)
}

/// A table that knows nothing, for a build without the data.
pub fn empty() -> Vec<u8> {
    let none = Sources {
        release: "",
        country_v4: "",
        country_v6: "",
        network_v4: "",
        network_v6: "",
    };
    table(&none).unwrap_or_default()
}

struct Row {
    line: usize,
    first: u64,
    last: u64,
    value: String,
    name: String,
}

fn read(text: &str, file: &'static str, family: Family) -> Result<Vec<Row>, BuildError> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason| BuildError {
            file,
            line: line_no,
            reason,
        };
        let fields = split(line).ok_or(err("a quoted field does not end"))?;
        let [first, last, value, rest @ ..] = fields.as_slice() else {
            return Err(err("fewer than three fields"));
        };
        let first: u128 = first
            .parse()
            .map_err(|_| err("the first address is not a number"))?;
        let last: u128 = last
            .parse()
            .map_err(|_| err("the last address is not a number"))?;
        if last < first {
            return Err(err("the range ends before it starts"));
        }
        let (first, last) = match family {
            Family::V4 => {
                let fit = |a: u128| u32::try_from(a).map(u64::from);
                (
                    fit(first).map_err(|_| err("not an IPv4 address"))?,
                    fit(last).map_err(|_| err("not an IPv4 address"))?,
                )
            }
            Family::V6 => (v6_key(first), v6_key(last)),
        };
        rows.push(Row {
            line: line_no,
            first,
            last,
            value: value.clone(),
            name: rest.first().cloned().unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// One CSV line's fields: commas outside double quotes split, `""` inside
/// them is a quote.
fn split(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

/// Ranges as (first key, value) entries in key order, a gap between
/// ranges as value 0 and the end of the last as a gap. Where ranges
/// overlap (a registry's block and a more specific one inside it; IPv6
/// cut to /64), the one that starts last, or the shorter of two that start
/// together, holds what it covers; neighbours of one value are one entry.
fn entries(mut ranges: Vec<Range>) -> Vec<(u64, u64)> {
    ranges.sort_by_key(|r| (r.0, std::cmp::Reverse(r.1)));
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len() + 1);
    let emit = |out: &mut Vec<(u64, u64)>, key: u64, value: u64| match out.last_mut() {
        Some(last) if last.0 == key => last.1 = value,
        Some(last) if last.0 > key => {}
        _ => out.push((key, value)),
    };
    // The ranges covering the sweep's position, innermost last: (last, value).
    let mut open: Vec<(u64, u64)> = Vec::new();
    let close_before = |out: &mut Vec<(u64, u64)>, open: &mut Vec<(u64, u64)>, at: Option<u64>| {
        while let Some(&(end, _)) = open.last() {
            if at.is_some_and(|at| end >= at) {
                break;
            }
            open.pop();
            while open.last().is_some_and(|o| o.0 <= end) {
                open.pop();
            }
            if let Some(next) = end.checked_add(1) {
                emit(out, next, open.last().map_or(0, |o| o.1));
            }
        }
    };
    for (first, last, value) in ranges {
        close_before(&mut out, &mut open, Some(first));
        emit(&mut out, first, value);
        open.push((last, value));
    }
    close_before(&mut out, &mut open, None);
    out.dedup_by(|later, earlier| later.1 == earlier.1);
    out
}

fn encode(entries: &[(u64, u64)], out: &mut Vec<u8>) {
    let mut heads = Vec::new();
    let mut stream = Vec::new();
    for block in entries.chunks(BLOCK) {
        heads.extend_from_slice(&block[0].0.to_le_bytes());
        heads.extend_from_slice(&(stream.len() as u32).to_le_bytes());
        varint(&mut stream, block[0].1);
        for pair in block.windows(2) {
            varint(&mut stream, pair[1].0 - pair[0].0);
            varint(&mut stream, pair[1].1);
        }
    }
    put_u32(out, entries.len());
    put_u32(out, entries.len().div_ceil(BLOCK));
    out.extend_from_slice(&heads);
    put_u32(out, stream.len());
    out.extend_from_slice(&stream);
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// At most `max` bytes of `s`, cut at a character's edge.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
