//! The archive's page objects: one gzip NDJSON object per stored page, under
//! a key derived from the page's cursor range, so a page that is written
//! again (a retried run, a worker killed between the object and the index)
//! overwrites the same object instead of adding a second copy.
//!
//! Keys read `<connection>/<table>/<from>-<to>-<range>.ndjson.gz`: the
//! times of the cursor the page was read after and of the cursor it ends
//! at (`YYYYMMDDThhmmss`), so objects sort in time order under each table,
//! and a 64-bit FNV-1a digest of the two cursors' sys_ids, so two pages of
//! one second differ while no record's sys_id appears in a key (keys show
//! in listings and logs, and outlive deletes in some stores' journals).
//! Every object of a connection shares its prefix: that is how delete
//! finds them all.

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::cursor::Key;
use crate::events::Event;

/// Every object of one connection starts with this.
pub fn connection_prefix(connection_id: &str) -> String {
    format!("{connection_id}/")
}

fn time_part(k: &Key) -> String {
    let digits: String = k.created_on.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = digits.split_at(digits.len().min(8));
    format!("{date}T{time}")
}

/// FNV-1a, 64 bits: deterministic across hosts and releases, which is all
/// a key needs (it names, it does not protect).
fn digest(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The object of one page of `table`, read after `from` and ending at `to`.
pub fn page_key(connection_id: &str, table: &str, from: &Key, to: &Key) -> String {
    format!(
        "{}{table}/{}-{}-{:016x}.ndjson.gz",
        connection_prefix(connection_id),
        time_part(from),
        time_part(to),
        digest(&[&from.sys_id, &to.sys_id])
    )
}

/// Lines per gzip member. An object is a series of gzip members (still one
/// valid gzip file for any reader); the index records where each member
/// starts, so one event is read back with a ranged read of its member
/// (tens of KB) instead of the whole page.
pub const LINES_PER_MEMBER: usize = 256;

/// An encoded page: the object's bytes and where each member starts.
pub struct EncodedPage {
    pub bytes: Vec<u8>,
    /// Byte offset of each member; member `m` holds lines
    /// `m * LINES_PER_MEMBER ..`.
    pub members: Vec<u32>,
}

/// One line per event, the contract's Event (normalized fields and the full
/// raw record), gzip-compressed member by member.
pub fn encode_page(events: &[Event]) -> EncodedPage {
    let mut bytes = Vec::new();
    let mut members = Vec::new();
    for chunk in events.chunks(LINES_PER_MEMBER) {
        members.push(bytes.len() as u32);
        let mut gz = GzEncoder::new(std::mem::take(&mut bytes), Compression::new(5));
        for e in chunk {
            // An Event always serializes (string keys, JSON values only).
            if let Ok(line) = serde_json::to_vec(e) {
                let _ = gz.write_all(&line);
                let _ = gz.write_all(b"\n");
            }
        }
        // Writing into a Vec cannot fail.
        bytes = gz.finish().unwrap_or_default();
    }
    EncodedPage { bytes, members }
}

/// The member offsets as the index stores them: `0,3012,6120`.
pub fn members_text(members: &[u32]) -> String {
    let parts: Vec<String> = members.iter().map(u32::to_string).collect();
    parts.join(",")
}

/// The byte range (start, end exclusive; `None` = to the end) of the member
/// holding `line`, from the index's member text.
pub fn member_range(members: &str, line: usize) -> Option<(u32, Option<u32>)> {
    let offsets: Vec<u32> = members
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    let m = line / LINES_PER_MEMBER;
    let start = *offsets.get(m)?;
    Some((start, offsets.get(m + 1).copied()))
}

#[derive(Debug, PartialEq, Eq)]
pub enum ArchiveError {
    NotGzip,
    BadLine(usize),
}

/// The lines of gzip bytes (one member, several, or a whole object).
pub fn decode_lines(bytes: &[u8]) -> Result<Vec<String>, ArchiveError> {
    let mut text = String::new();
    MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|_| ArchiveError::NotGzip)?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Reads a whole page object back into its events.
pub fn decode_page(bytes: &[u8]) -> Result<Vec<Event>, ArchiveError> {
    decode_lines(bytes)?
        .iter()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|_| ArchiveError::BadLine(i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::normalize;
    use serde_json::{json, Map, Value};

    fn event(sys_id: &str, at: &str) -> Event {
        let raw: Map<String, Value> = serde_json::from_value(json!({
            "sys_id": sys_id, "sys_created_on": at, "name": "login",
            "parm1": "alice", "parm2": "10.0.0.1"
        }))
        .unwrap_or_default();
        normalize("c1", "sysevent", raw).expect("a readable record")
    }

    #[test]
    fn a_page_round_trips_through_gzip_ndjson() {
        let events = vec![
            event("a1", "2026-11-20 10:00:00"),
            event("a2", "2026-11-20 10:00:01"),
        ];
        let page = encode_page(&events);
        assert_eq!(&page.bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(page.members, vec![0]);
        assert_eq!(decode_page(&page.bytes), Ok(events));
    }

    #[test]
    fn one_line_is_read_back_from_its_member_alone() {
        let events: Vec<Event> = (0..600)
            .map(|i| event(&format!("s{i:04}"), "2026-11-20 10:00:00"))
            .collect();
        let page = encode_page(&events);
        assert_eq!(page.members.len(), 3);
        assert_eq!(decode_page(&page.bytes).map(|e| e.len()), Ok(600));
        let text = members_text(&page.members);
        for line in [0usize, 255, 256, 599] {
            let (start, end) = member_range(&text, line).expect("a member");
            let end = end.map_or(page.bytes.len(), |e| e as usize);
            let lines = decode_lines(&page.bytes[start as usize..end]).expect("one member");
            let got: Event =
                serde_json::from_str(&lines[line % LINES_PER_MEMBER]).expect("an event");
            assert_eq!(got, events[line]);
        }
        assert_eq!(member_range(&text, 768), None);
        assert_eq!(member_range("0,x", 0), None);
    }

    #[test]
    fn keys_are_deterministic_and_share_the_connection_prefix() {
        let from = Key {
            created_on: "2026-11-20 10:00:00".into(),
            sys_id: String::new(),
        };
        let to = Key {
            created_on: "2026-11-20 11:30:05".into(),
            sys_id: "ff01".into(),
        };
        let k = page_key("c1", "sysevent", &from, &to);
        assert!(k.starts_with("c1/sysevent/20261120T100000-20261120T113005-"));
        assert!(k.ends_with(".ndjson.gz"));
        assert!(!k.contains("ff01"), "no sys_id in a key");
        assert_eq!(k, page_key("c1", "sysevent", &from, &to));
        let other = Key {
            sys_id: "ff02".into(),
            ..to.clone()
        };
        assert_ne!(k, page_key("c1", "sysevent", &from, &other));
        assert!(k.starts_with(&connection_prefix("c1")));
        assert!(!k.starts_with(&connection_prefix("c")));
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        assert_eq!(decode_page(b"not gzip"), Err(ArchiveError::NotGzip));
    }
}
