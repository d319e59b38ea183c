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

use std::borrow::Borrow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::pull::cursor::Key;
use crate::pull::events::{Event, Kind, RawRecord, Target};

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
pub(crate) fn digest(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The object of one page of `table`, read after `from` and ending at `to`,
/// holding the events whose sys_ids are `stored` (in page order). The same
/// page stored again (a worker killed between the write and the commit)
/// gets the same key; two pages with the same bounds but other events (a
/// record committed late between two runs in one second) never share one,
/// so no write can replace an object that index rows already point into.
pub fn page_key(connection_id: &str, table: &str, from: &Key, to: &Key, stored: &[&str]) -> String {
    // SHA-256, not FNV: sys_ids can be chosen by whoever writes records,
    // and two pages must never be made to share a key on purpose.
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [from.sys_id.as_str(), to.sys_id.as_str()]
        .into_iter()
        .chain(stored.iter().copied())
    {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    format!(
        "{}{table}/{}-{}-{:016x}.ndjson.gz",
        connection_prefix(connection_id),
        time_part(from),
        time_part(to),
        u64::from_be_bytes(first)
    )
}

/// Lines per gzip member. An object is a series of gzip members (still one
/// valid gzip file for any reader); the index records where each member
/// starts, so one event is read back with a ranged read of its member
/// (tens of KB) instead of the whole page.
pub const LINES_PER_MEMBER: usize = 256;

/// One archived line: the contract's Event without what the object's key
/// already names (the connection and the table, and so the event's id) and
/// without empty fields. A quarter of each line, so a quarter of the
/// compressor's work per page and of the bytes stored.
#[derive(Serialize)]
struct LineOut<'a> {
    occurred_at: &'a str,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_value: Option<&'a str>,
    raw: &'a RawRecord,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    truncated_fields: &'a [String],
}

/// A line as read back: compact, or a whole Event as lines were written
/// before (an archive keeps those until its retention drops them).
#[derive(Deserialize)]
struct LineIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    connection_id: Option<String>,
    #[serde(default)]
    source_table: Option<String>,
    occurred_at: String,
    kind: Kind,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    source_ip: Option<String>,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    old_value: Option<String>,
    #[serde(default)]
    new_value: Option<String>,
    raw: Box<RawValue>,
    #[serde(default)]
    truncated_fields: Vec<String>,
}

/// Appends one member's lines (at most `LINES_PER_MEMBER` events: the
/// normalized fields and the full raw record on each) to `text`. The host
/// compresses each member as it goes, reusing one buffer for every member
/// of a page, and concatenates them.
pub fn write_member<E: Borrow<Event>>(events: &[E], text: &mut Vec<u8>) {
    for e in events {
        let e = e.borrow();
        let line = LineOut {
            occurred_at: &e.occurred_at,
            kind: e.kind,
            actor: e.actor.as_deref(),
            source_ip: e.source_ip.as_deref(),
            target: e.target.as_ref(),
            old_value: e.old_value.as_deref(),
            new_value: e.new_value.as_deref(),
            raw: &e.raw,
            truncated_fields: &e.truncated_fields,
        };
        // Always serializes (string keys, JSON values only).
        if serde_json::to_writer(&mut *text, &line).is_ok() {
            text.push(b'\n');
        }
    }
}

/// The connection and table an object's key names.
fn key_parts(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.split('/');
    Some((parts.next()?, parts.next()?))
}

/// One line of the object at `key` as the contract's Event; `None` when it
/// is not a line this archive wrote.
pub fn read_line(key: &str, line: &str) -> Option<Event> {
    let l: LineIn = serde_json::from_str(line).ok()?;
    let (connection, table) = key_parts(key)?;
    let source_table = l.source_table.unwrap_or_else(|| table.to_string());
    let raw = RawRecord::from_raw(l.raw);
    let id = match l.id {
        Some(id) => id,
        None => format!("{source_table}:{}", raw.field("sys_id")?),
    };
    Some(Event {
        id,
        connection_id: l.connection_id.unwrap_or_else(|| connection.to_string()),
        occurred_at: l.occurred_at,
        kind: l.kind,
        actor: l.actor,
        source_ip: l.source_ip,
        target: l.target,
        old_value: l.old_value,
        new_value: l.new_value,
        source_table,
        raw,
        truncated_fields: l.truncated_fields,
    })
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

/// The lines of a stored page of `events` lines that a reader takes next,
/// first and last: after `after_line` when the page is where the reader
/// stands (`None`: from its start), at most `room` of them; `None` when
/// none are left.
pub fn next_lines(after_line: Option<i64>, events: i64, room: usize) -> Option<(i64, i64)> {
    let first = after_line.map_or(0, |l| l.saturating_add(1).max(0));
    let room = i64::try_from(room).unwrap_or(i64::MAX);
    let last = first.saturating_add(room - 1).min(events - 1);
    (room > 0 && last >= first).then_some((first, last))
}

/// The page line a member read from line `line` on starts at: the first
/// line of that line's member.
pub fn member_first_line(line: i64) -> i64 {
    let per = LINES_PER_MEMBER as i64;
    line.div_euclid(per) * per
}

/// The lines of decompressed NDJSON.
pub fn lines(text: &[u8]) -> Vec<&str> {
    std::str::from_utf8(text)
        .map(|t| t.lines().filter(|l| !l.is_empty()).collect())
        .unwrap_or_default()
}

/// Which way a listing of events goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

/// A read of archive members with a budget: members come in the order of
/// their newest (or oldest) event, and a read that has opened `budget` of
/// them stops before the next, where everything on this side is known.
#[derive(Clone, Debug)]
pub struct BudgetedRead {
    pub order: Order,
    /// Events before this second (exclusive) and from `lower` on.
    pub upper: i64,
    pub lower: Option<i64>,
    /// The second of the cursor this read began after, if any.
    pub after: Option<i64>,
    pub budget: u32,
}

impl BudgetedRead {
    /// Before opening the next member (`read` opened so far): the second
    /// where the read stops, if it does. Never beyond where it began (a
    /// member can span far past the cursor), and never where it began (the
    /// next read would start there again): until it can move, it reads on.
    pub fn stop_before(&self, read: u32, first_at: i64, last_at: i64) -> Option<i64> {
        let edge = match self.order {
            Order::NewestFirst => last_at.min(self.upper - 1),
            Order::OldestFirst => first_at.max(self.lower.unwrap_or(i64::MIN)),
        };
        let moved = match (self.order, self.after) {
            (_, None) => true,
            (Order::NewestFirst, Some(t)) => edge < t,
            (Order::OldestFirst, Some(t)) => edge > t,
        };
        (read >= self.budget.max(1) && moved).then_some(edge)
    }

    /// The cursor a read stopped at `edge` answers: the next read lists
    /// every event of that second again.
    pub fn resume(&self, edge: i64) -> (i64, String, String) {
        match self.order {
            Order::NewestFirst => (edge, "\u{7f}".to_string(), String::new()),
            Order::OldestFirst => (edge, String::new(), String::new()),
        }
    }

    /// Whether an event of second `t` is complete in a read stopped at `edge`.
    pub fn complete(&self, edge: i64, t: i64) -> bool {
        match self.order {
            Order::NewestFirst => t > edge,
            Order::OldestFirst => t < edge,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_takes_the_lines_after_its_place_up_to_its_room() {
        // The page where the reader stands: after its line.
        assert_eq!(next_lines(Some(9), 100, 20), Some((10, 29)));
        // A later page: from its start, no further than its end.
        assert_eq!(next_lines(None, 5, 20), Some((0, 4)));
        // Nothing left on the page, or no room.
        assert_eq!(next_lines(Some(99), 100, 20), None);
        assert_eq!(next_lines(None, 5, 0), None);
        // A cursor before the page's first line (-1: none of it yet).
        assert_eq!(next_lines(Some(-1), 3, 10), Some((0, 2)));
        assert_eq!(member_first_line(0), 0);
        assert_eq!(member_first_line(300), 256);
        assert_eq!(member_first_line(511), 256);
    }

    #[test]
    fn a_budgeted_read_stops_only_where_it_can_move_on() {
        let newest = BudgetedRead {
            order: Order::NewestFirst,
            upper: 1_001,
            lower: None,
            after: Some(1_000),
            budget: 1,
        };
        // A page spanning past the cursor's second, or ending in it: read.
        assert_eq!(newest.stop_before(1, 10, 5_000), None);
        assert_eq!(newest.stop_before(1, 10, 1_000), None);
        // Within budget: read.
        assert_eq!(newest.stop_before(0, 10, 900), None);
        // Past it, and past the cursor: stop at the page's newest second.
        assert_eq!(newest.stop_before(1, 10, 900), Some(900));
        assert!(newest.complete(900, 901) && !newest.complete(900, 900));
        assert!(
            newest.resume(900).1.as_str() > "zzz",
            "after every table of that second"
        );
        let oldest = BudgetedRead {
            order: Order::OldestFirst,
            upper: i64::MAX,
            lower: Some(50),
            after: Some(50),
            budget: 2,
        };
        assert_eq!(
            oldest.stop_before(2, 20, 90),
            None,
            "begins before the cursor"
        );
        assert_eq!(oldest.stop_before(2, 60, 90), Some(60));
        assert!(oldest.complete(60, 59) && !oldest.complete(60, 60));
        assert_eq!(oldest.resume(60), (60, String::new(), String::new()));
    }
    use crate::pull::events::normalize;
    use serde_json::{json, Value};

    fn event(sys_id: &str, at: &str) -> Event {
        let raw = serde_json::value::to_raw_value(&json!({
            "sys_id": sys_id, "sys_created_on": at, "name": "login",
            "parm1": "alice", "parm2": "10.0.0.1"
        }))
        .expect("JSON");
        normalize("c1", "sysevent", &raw).expect("a readable record")
    }

    /// A page's members as the worker writes them: `LINES_PER_MEMBER`
    /// events each.
    fn ndjson_members<E: Borrow<Event>>(events: &[E]) -> Vec<Vec<u8>> {
        events
            .chunks(LINES_PER_MEMBER)
            .map(|chunk| {
                let mut text = Vec::new();
                write_member(chunk, &mut text);
                text
            })
            .collect()
    }

    /// Compresses members as the worker does (each its own gzip member,
    /// concatenated), here with flate2.
    fn object(members: &[Vec<u8>]) -> (Vec<u8>, Vec<u32>) {
        use std::io::Write;
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for m in members {
            offsets.push(bytes.len() as u32);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(m).expect("in memory");
            bytes.extend(gz.finish().expect("in memory"));
        }
        (bytes, offsets)
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("gzip");
        out
    }

    #[test]
    fn a_page_round_trips_through_gzip_ndjson() {
        let events = vec![
            event("a1", "2026-11-20 10:00:00"),
            event("a2", "2026-11-20 10:00:01"),
        ];
        let (bytes, offsets) = object(&ndjson_members(&events));
        assert_eq!(offsets, vec![0]);
        let text = gunzip(&bytes);
        let back: Vec<Event> = lines(&text)
            .iter()
            .map(|l| read_line(KEY, l).expect("an event"))
            .collect();
        assert_eq!(back, events);
    }

    /// The key of an object of connection c1's sysevent pages.
    const KEY: &str = "c1/sysevent/20261120T100000-20261120T100001-0000000000000000.ndjson.gz";

    #[test]
    fn a_line_leaves_out_what_its_key_names_and_lines_written_whole_still_read() {
        let e = event("a1", "2026-11-20 10:00:00");
        let members = ndjson_members(&[&e]);
        let line = lines(&members[0])[0];
        let written: Value = serde_json::from_str(line).expect("JSON");
        for gone in ["id", "connection_id", "source_table", "target", "old_value"] {
            assert!(written.get(gone).is_none(), "{gone} is not written");
        }
        assert_eq!(written["raw"]["sys_id"], "a1");
        assert_eq!(read_line(KEY, line), Some(e.clone()));
        // A line as written before: the whole Event, its own fields kept.
        let whole = serde_json::to_string(&e).expect("JSON");
        let other_key = "c9/sys_audit/x.ndjson.gz";
        assert_eq!(read_line(other_key, &whole), Some(e));
        assert_eq!(read_line(KEY, "{\"kind\":\"login\"}"), None);
        assert_eq!(read_line("no-slash", line), None);
    }

    #[test]
    fn one_line_is_read_back_from_its_member_alone() {
        let events: Vec<Event> = (0..600)
            .map(|i| event(&format!("s{i:04}"), "2026-11-20 10:00:00"))
            .collect();
        let (bytes, offsets) = object(&ndjson_members(&events));
        assert_eq!(offsets.len(), 3);
        assert_eq!(
            lines(&gunzip(&bytes)).len(),
            600,
            "one gzip file for any reader"
        );
        let text = members_text(&offsets);
        for line in [0usize, 255, 256, 599] {
            let (start, end) = member_range(&text, line).expect("a member");
            let end = end.map_or(bytes.len(), |e| e as usize);
            let member = gunzip(&bytes[start as usize..end]);
            let got = read_line(KEY, lines(&member)[line % LINES_PER_MEMBER]).expect("an event");
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
        let k = page_key("c1", "sysevent", &from, &to, &["aa", "ff01"]);
        assert!(k.starts_with("c1/sysevent/20261120T100000-20261120T113005-"));
        assert!(k.ends_with(".ndjson.gz"));
        assert!(!k.contains("ff01"), "no sys_id in a key");
        assert_eq!(k, page_key("c1", "sysevent", &from, &to, &["aa", "ff01"]));
        let other = Key {
            sys_id: "ff02".into(),
            ..to.clone()
        };
        assert_ne!(
            k,
            page_key("c1", "sysevent", &from, &other, &["aa", "ff01"])
        );
        // Same bounds, another event among them (a late commit): another key.
        assert_ne!(
            k,
            page_key("c1", "sysevent", &from, &to, &["aa", "b7", "ff01"])
        );
        assert!(k.starts_with(&connection_prefix("c1")));
        assert!(!k.starts_with(&connection_prefix("c")));
    }
}
