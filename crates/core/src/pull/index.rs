//! The event index: one row per archive member (`LINES_PER_MEMBER` events),
//! not one per event. A member's row holds its time range, how many of its
//! events are still counted, the kinds it holds and its actors (listed while
//! they fit, else as a Bloom filter); a read picks the members that can match
//! and reads them from the archive, filtering each line exactly. A row per event made the index
//! the whole bill (one written row an event) and most of a page's CPU.
//!
//! The overlap's duplicate check needs each stored event's key only while a
//! coming run may read it again: a page keeps its recent events' sys_ids as
//! one row (`RecentKeys`), dropped once the table's cursor is past them.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::pull::archive::{Order, LINES_PER_MEMBER};
use crate::pull::cursor::OVERLAP_SECS;

/// One event as the index takes it, in the page's line order.
#[derive(Clone, Copy, Debug)]
pub struct IndexedEvent<'a> {
    pub occurred_at: i64,
    pub sys_id: &'a str,
    pub kind: &'a str,
    pub actor: Option<&'a str>,
}

/// The most bytes a member's actor list keeps; a member with more distinct
/// actors keeps a Bloom filter of them instead (a member of 256 sign-ins by
/// 256 users would list them in about 3 KB, twelve bytes an event).
pub const ACTORS_CAP: usize = 1_024;

/// The actor filter's bits: 2,048, written as 512 hex digits (two bytes an
/// event), which SQL tests digit by digit (`ActorFilter::probes`).
const FILTER_BITS: u64 = 2_048;
/// Bits set per actor: with 256 distinct actors, about 2 % of members that
/// do not hold an actor are still opened for it (and filtered exactly).
const FILTER_HASHES: u64 = 5;

/// Separates (and closes) the values of a packed list: a unit separator,
/// which no kind holds and no real account name does. A value that holds
/// one only makes its member match more filters, never fewer: the member
/// is read and its lines filtered exactly.
const SEP: char = '\u{1f}';

/// A value as packed: a NUL (which SQLite's JSON functions end a text at,
/// cutting the list short) becomes U+FFFD, in lists and needles alike.
fn clean(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('\0') {
        value.replace('\0', "\u{fffd}").into()
    } else {
        value.into()
    }
}

/// The text a packed list holds for `value`: `instr(list, needle) > 0`.
pub fn needle(value: &str) -> String {
    format!("{SEP}{}{SEP}", clean(value))
}

/// Distinct values, sorted, each followed by `SEP`, after a leading one.
fn pack<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let set: BTreeSet<std::borrow::Cow<'a, str>> = values.map(clean).collect();
    let mut out = String::from(SEP);
    for v in set {
        out.push_str(&v);
        out.push(SEP);
    }
    out
}

/// One member's index row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    /// The member's place in its page (line / `LINES_PER_MEMBER`).
    pub member: u32,
    pub first_at: i64,
    pub last_at: i64,
    pub events: u32,
    /// Packed kinds (`needle`).
    pub kinds: String,
    /// Packed actors, or `None` when they pass `ACTORS_CAP`.
    pub actors: Option<String>,
    /// The actors as a filter when they are not listed (`ActorFilter`).
    pub actor_filter: Option<String>,
}

/// The index rows of one page's events (in line order).
pub fn member_rows(events: &[IndexedEvent<'_>]) -> Vec<MemberRow> {
    events
        .chunks(LINES_PER_MEMBER)
        .enumerate()
        .map(|(n, chunk)| {
            let first_at = chunk.iter().map(|e| e.occurred_at).min().unwrap_or(0);
            let last_at = chunk.iter().map(|e| e.occurred_at).max().unwrap_or(0);
            let actors = pack(chunk.iter().filter_map(|e| e.actor));
            let listed = actors.len() <= ACTORS_CAP;
            MemberRow {
                member: n as u32,
                first_at,
                last_at,
                events: chunk.len() as u32,
                kinds: pack(chunk.iter().map(|e| e.kind)),
                actor_filter: (!listed)
                    .then(|| ActorFilter::of(chunk.iter().filter_map(|e| e.actor)).hex()),
                actors: listed.then_some(actors),
            }
        })
        .collect()
}

/// A Bloom filter of a member's actors, kept as hex digits so that SQL can
/// test it: an actor's bits are `FILTER_HASHES` (digit, bit) probes, each
/// true when the digit at that place is one of those with that bit set. A
/// filter never misses an actor it holds; one that says yes wrongly only
/// opens a member that is then filtered exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorFilter {
    bits: Vec<u8>,
}

/// One test of an actor's filter: the hex digit at `place` (1-based, as SQL
/// counts) is one of `digits`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub place: u32,
    pub digits: &'static str,
}

/// The hex digits with bit 3, 2, 1 or 0 set (a digit's value, high bit first).
const DIGITS_WITH_BIT: [&str; 4] = ["89abcdef", "4567cdef", "2367abef", "13579bdf"];

impl ActorFilter {
    fn positions(actor: &str) -> impl Iterator<Item = u64> {
        // Eleven bits of SHA-256 per probe: independent, the same on every
        // host and release (stored filters depend on it), and not steered
        // by whoever picks an account name.
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(clean(actor).as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        let bits = u64::from_be_bytes(first);
        (0..FILTER_HASHES).map(move |i| (bits >> (i * 11)) % FILTER_BITS)
    }

    pub fn of<'a>(actors: impl Iterator<Item = &'a str>) -> Self {
        let mut bits = vec![0u8; (FILTER_BITS / 8) as usize];
        for actor in actors {
            for p in Self::positions(actor) {
                bits[(p / 8) as usize] |= 0x80 >> (p % 8);
            }
        }
        ActorFilter { bits }
    }

    /// The filter as stored: two hex digits a byte, high nibble first.
    pub fn hex(&self) -> String {
        self.bits.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The probes a stored filter passes when it may hold `actor`.
    pub fn probes(actor: &str) -> Vec<Probe> {
        Self::positions(actor)
            .map(|p| Probe {
                place: (p / 4) as u32 + 1,
                digits: DIGITS_WITH_BIT[(p % 4) as usize],
            })
            .collect()
    }
}

/// The sys_ids of a page's events that a coming run may read again, with
/// the newest one's time.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentKeys {
    pub last_at: i64,
    pub sys_ids: Vec<String>,
}

/// Where the keys a table keeps may start, for a cursor at `cursor_at`
/// stored by a run that started at `read_at`: a coming run reads again from
/// `OVERLAP_SECS` before the earlier of the two (`cursor::resume_start`,
/// `run_start`; the cursor is the instance's clock and may run ahead of
/// the read), and a minute more is kept for second rounding.
pub fn keys_floor(cursor_at: i64, read_at: i64) -> i64 {
    cursor_at.min(read_at) - OVERLAP_SECS - 60
}

/// Below which a page's store drops its table's recent keys: the floor of
/// where the page was read from (`before_at`), or of its cursor if that is
/// earlier. Not the cursor's alone: a run re-reading the overlap keeps the
/// stored cursor while its pages are still far behind it, and its later
/// pages need the keys between them and the cursor.
pub fn prune_floor(before_at: i64, cursor_at: i64, read_at: i64) -> i64 {
    keys_floor(before_at.min(cursor_at), read_at)
}

/// The keys a page keeps for the overlap's duplicate check: those of its
/// events at or after `keys_floor` of its cursor, and only when the page's
/// cursor lies within the overlap of its read (`read_at`): a cursor further
/// back is resumed right after, never read again (`resume_start`), which
/// is every page of a backfill but its last.
pub fn recent_keys(
    events: &[IndexedEvent<'_>],
    cursor_at: i64,
    read_at: i64,
) -> Option<RecentKeys> {
    if cursor_at <= read_at - OVERLAP_SECS - 60 {
        return None;
    }
    let floor = keys_floor(cursor_at, read_at);
    let recent: Vec<&IndexedEvent<'_>> = events.iter().filter(|e| e.occurred_at >= floor).collect();
    let last_at = recent.iter().map(|e| e.occurred_at).max()?;
    Some(RecentKeys {
        last_at,
        sys_ids: recent.iter().map(|e| e.sys_id.to_string()).collect(),
    })
}

/// Whether a page's records at these times need the table's recent keys
/// looked up at all: only one at or before the stored cursor's second can
/// have been stored (`cursor::may_be_indexed`).
pub fn needs_recent_keys(mut times: impl Iterator<Item = i64>, stored_until: Option<i64>) -> bool {
    times.any(|at| crate::pull::cursor::may_be_indexed(at, stored_until))
}

/// The positions of a page's records (time, sys_id) that are new to the
/// store: one at or before the stored cursor's second is a re-read of the
/// overlap when the table's `recent` keys hold it; a record twice in one
/// answer is taken once.
pub fn fresh<'a>(
    records: impl Iterator<Item = (i64, &'a str)>,
    stored_until: Option<i64>,
    recent: &HashSet<String>,
) -> Vec<usize> {
    let mut taken: HashSet<&str> = HashSet::new();
    records
        .enumerate()
        .filter(|(_, (at, sys_id))| {
            let held =
                crate::pull::cursor::may_be_indexed(*at, stored_until) && recent.contains(*sys_id);
            !held && taken.insert(sys_id)
        })
        .map(|(n, _)| n)
        .collect()
}

/// What a read keeps of the lines it opens: its range `[lower, upper)`,
/// its kind and actor, and only what lies beyond its cursor in its order.
#[derive(Clone, Copy, Debug)]
pub struct LineFilter<'a> {
    pub lower: Option<i64>,
    pub upper: i64,
    pub kind: Option<&'a str>,
    pub actor: Option<&'a str>,
    /// (second, table, sys_id) the listing continues after.
    pub after: Option<(i64, &'a str, &'a str)>,
    pub order: Order,
}

impl LineFilter<'_> {
    /// Whether an event at `position` (second, table, sys_id) of `kind` by
    /// `actor` is in the answer.
    pub fn keeps(&self, position: (i64, &str, &str), kind: &str, actor: Option<&str>) -> bool {
        let beyond = |c: (i64, &str, &str)| match self.order {
            Order::NewestFirst => position < c,
            Order::OldestFirst => position > c,
        };
        position.0 < self.upper
            && self.lower.is_none_or(|l| position.0 >= l)
            && self.kind.is_none_or(|k| k == kind)
            && self.actor.is_none_or(|a| actor == Some(a))
            && self.after.is_none_or(beyond)
    }
}

/// What retention does to a member that straddles its cutoff: the events
/// it counts out now and where the member starts after them.
#[derive(Debug, PartialEq, Eq)]
pub struct Trim {
    pub counted_out: u32,
    /// The oldest event left; `None`: none is left.
    pub first_at: Option<i64>,
}

/// Trims a member whose lines have `times`, already counted out before
/// `first_at` (its row's start), to `cutoff`.
pub fn trim(times: &[i64], first_at: i64, cutoff: i64) -> Trim {
    let out = times
        .iter()
        .filter(|t| **t >= first_at && **t < cutoff)
        .count();
    Trim {
        counted_out: out as u32,
        first_at: times.iter().copied().filter(|t| *t >= cutoff).min(),
    }
}

/// The members the index keeps for a page stored before this index, which
/// kept a row per event: each member of the page with the page's range
/// and no lists (a read opens them for any kind or actor). `(member, events)`.
pub fn whole_page_members(events: u32) -> impl Iterator<Item = (u32, u32)> {
    let per = LINES_PER_MEMBER as u32;
    (0..events.div_ceil(per)).map(move |m| (m, (events - m * per).min(per)))
}

/// Whether a member (with this range) lies wholly past `edge`, the time of
/// the last event an answer keeps: it, and every member after it in the
/// listing's order, can hold nothing the answer would keep.
pub fn past_edge(order: Order, first_at: i64, last_at: i64, edge: i64) -> bool {
    match order {
        Order::NewestFirst => last_at < edge,
        Order::OldestFirst => first_at > edge,
    }
}

/// How many members a read asks for and opens at once: as many as the
/// events still wanted fill, and one more (ranges of members of several
/// tables interleave), from 2 to 16.
pub fn members_at_once(wanted: usize) -> usize {
    (wanted.div_ceil(LINES_PER_MEMBER) + 1).clamp(2, 16)
}

/// A bound that lets the index query seek instead of scanning, taken from
/// the widest member's span (no member spans more): newest first, no member
/// ending at or past `upper + span` can reach below `upper`; oldest first,
/// none starting before `lower - span` can reach `lower`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekBound {
    /// `last_at < this` (the key's order).
    LastBefore(i64),
    /// `first_at >= this` (the `first_at` index).
    FirstFrom(i64),
}

/// The read's seek bound; none without a span (never written: no member
/// may be lost to a missing value) or without the side its order walks from.
pub fn seek_bound(
    order: Order,
    lower: Option<i64>,
    upper: i64,
    span: Option<i64>,
) -> Option<SeekBound> {
    match (order, lower, span?) {
        (Order::NewestFirst, _, span) if upper < i64::MAX => {
            Some(SeekBound::LastBefore(upper.saturating_add(span)))
        }
        (Order::OldestFirst, Some(lower), span) => {
            Some(SeekBound::FirstFrom(lower.saturating_sub(span)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: i64, id: &str, kind: &str, actor: Option<&str>) -> IndexedEvent<'static> {
        let id: &'static str = Box::leak(id.to_string().into_boxed_str());
        let kind: &'static str = Box::leak(kind.to_string().into_boxed_str());
        let actor = actor.map(|a| &*Box::leak(a.to_string().into_boxed_str()));
        IndexedEvent {
            occurred_at: at,
            sys_id: id,
            kind,
            actor,
        }
    }

    #[test]
    fn a_row_per_member_with_its_range_kinds_and_actors() {
        let events: Vec<_> = (0..600)
            .map(|i| {
                let kind = if i % 2 == 0 { "login" } else { "login_failed" };
                let actor = (i % 3 != 0).then_some(if i < 300 { "alice" } else { "bob" });
                ev(1_000 + i, &format!("s{i}"), kind, actor)
            })
            .collect();
        let rows = member_rows(&events);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows.iter().map(|r| r.events).collect::<Vec<_>>(),
            [256, 256, 88]
        );
        assert_eq!((rows[1].first_at, rows[1].last_at), (1_256, 1_511));
        assert_eq!(rows[0].kinds, "\u{1f}login\u{1f}login_failed\u{1f}");
        assert!(rows[0].kinds.contains(&needle("login")));
        assert!(!rows[0].kinds.contains(&needle("log")), "whole values only");
        let middle = rows[1].actors.as_deref().unwrap_or_default();
        assert!(middle.contains(&needle("alice")) && middle.contains(&needle("bob")));
        assert!(!rows[0]
            .actors
            .as_deref()
            .unwrap_or_default()
            .contains(&needle("bob")));
    }

    #[test]
    fn too_many_actors_keep_no_list() {
        let events: Vec<_> = (0..256)
            .map(|i| {
                ev(
                    i,
                    "x",
                    "login",
                    Some(&format!("user-with-a-long-name-{i:04}")),
                )
            })
            .collect();
        assert_eq!(member_rows(&events)[0].actors, None);
    }

    #[test]
    fn a_separator_in_a_value_widens_a_match_never_narrows_it() {
        let events = [ev(1, "a", "login", Some("x\u{1f}y"))];
        let row = &member_rows(&events)[0];
        let actors = row.actors.as_deref().unwrap_or_default();
        assert!(actors.contains(&needle("x\u{1f}y")));
        assert!(actors.contains(&needle("x")), "read, then filtered exactly");
    }

    #[test]
    fn keys_are_kept_only_where_a_run_may_read_again() {
        let events: Vec<_> = (0..10)
            .map(|i| ev(10_000 + i * 100, &format!("s{i}"), "login", None))
            .collect();
        // A backfill page far behind its read: resumed right after, never
        // read again.
        assert_eq!(recent_keys(&events, 10_900, 50_000), None);
        // Within the overlap of its read: the events from the floor on.
        let keys = recent_keys(&events, 10_900, 11_000).expect("kept");
        assert_eq!(keys.last_at, 10_900);
        assert_eq!(keys_floor(10_900, 11_000), 10_240);
        assert_eq!(keys.sys_ids, ["s3", "s4", "s5", "s6", "s7", "s8", "s9"]);
        // An instance clock ahead of ours: the read's time is the floor's.
        assert_eq!(keys_floor(11_500, 11_000), 10_340);
    }

    #[test]
    fn a_run_re_reading_its_overlap_keeps_the_keys_its_later_pages_need() {
        // The stored cursor at 10_000, read at 9_900 (an instance clock
        // ahead); the run re-reads from 9_300 in pages of a hundred seconds.
        let (cursor, read) = (10_000, 9_900);
        let first_page = (9_300, cursor);
        let floor = prune_floor(first_page.0, first_page.1, read);
        assert!(floor <= 9_300 - 60, "the next pages' keys stay: {floor}");
        // A page past the overlap moves the floor with it.
        assert_eq!(
            prune_floor(20_000, 20_100, 20_150),
            20_000 - OVERLAP_SECS - 60
        );
    }

    #[test]
    fn a_nul_in_a_value_neither_cuts_the_list_nor_hides_a_value() {
        let events = [
            ev(1, "a", "login", Some("\0evil")),
            ev(2, "b", "login", Some("alice")),
        ];
        let actors = member_rows(&events)[0].actors.clone().unwrap_or_default();
        assert!(!actors.contains('\0'));
        assert!(actors.contains(&needle("alice")) && actors.contains(&needle("\0evil")));
    }

    #[test]
    fn a_run_that_reads_again_finds_the_keys_kept() {
        use crate::pull::cursor::{resume_start, Key};
        use crate::pull::events::parse_servicenow_time;
        let read = 1_000_000;
        // Cursors near the read, ahead of it (the instance's clock), and
        // far behind it (a backfill's pages).
        for cursor in [read - 5, read + 300, read - 599, read - 601, read - 86_400] {
            let c = Key::start_of(cursor);
            let start = resume_start(&c, read, 0);
            if start == c {
                continue; // resumed right after the cursor: nothing read again
            }
            let t = parse_servicenow_time(&start.created_on).expect("a time");
            assert!(
                t >= keys_floor(cursor, read),
                "{cursor}: starts at the floor or after"
            );
            let page = [ev(cursor, "x", "login", None)];
            assert!(
                recent_keys(&page, cursor, read).is_some(),
                "{cursor}: keys kept"
            );
        }
    }

    #[test]
    fn a_page_takes_what_the_recent_keys_do_not_hold_once() {
        let recent: HashSet<String> = ["old".to_string()].into();
        // "old" at the cursor's second is a re-read; "old" past it cannot be
        // one; "new" repeated in one answer is taken once.
        let page = [
            (100, "old"),
            (100, "new"),
            (100, "new"),
            (101, "old"),
            (99, "x"),
        ];
        assert_eq!(fresh(page.into_iter(), Some(100), &recent), [1, 3, 4]);
        // Nothing stored yet: nothing is held, and "old" is taken once.
        assert_eq!(fresh(page.into_iter(), None, &recent), [0, 1, 4]);
        assert!(needs_recent_keys([101, 100].into_iter(), Some(100)));
        assert!(!needs_recent_keys([101, 102].into_iter(), Some(100)));
        assert!(!needs_recent_keys([1].into_iter(), None));
    }

    #[test]
    fn a_read_seeks_by_the_widest_span_only_when_it_is_known() {
        use Order::*;
        assert_eq!(
            seek_bound(NewestFirst, None, 1_000, Some(60)),
            Some(SeekBound::LastBefore(1_060))
        );
        assert_eq!(
            seek_bound(OldestFirst, Some(500), 1_000, Some(60)),
            Some(SeekBound::FirstFrom(440))
        );
        assert_eq!(
            seek_bound(NewestFirst, None, 1_000, None),
            None,
            "no span: no bound"
        );
        assert_eq!(
            seek_bound(NewestFirst, None, i64::MAX, Some(60)),
            None,
            "no upper end"
        );
        assert_eq!(
            seek_bound(OldestFirst, None, 1_000, Some(60)),
            None,
            "no lower end"
        );
        assert_eq!(
            seek_bound(OldestFirst, Some(i64::MIN), 1_000, Some(60)),
            Some(SeekBound::FirstFrom(i64::MIN))
        );
    }

    #[test]
    fn a_read_keeps_its_range_filters_and_what_lies_past_its_cursor() {
        let f = LineFilter {
            lower: Some(10),
            upper: 20,
            kind: Some("login"),
            actor: Some("alice"),
            after: Some((15, "sysevent", "m")),
            order: Order::NewestFirst,
        };
        assert!(f.keeps((15, "sysevent", "a"), "login", Some("alice")));
        assert!(f.keeps((12, "sys_audit", "z"), "login", Some("alice")));
        assert!(
            !f.keeps((15, "sysevent", "m"), "login", Some("alice")),
            "the cursor itself"
        );
        assert!(
            !f.keeps((15, "sysevent", "z"), "login", Some("alice")),
            "before the cursor"
        );
        assert!(
            !f.keeps((9, "sysevent", "a"), "login", Some("alice")),
            "below the range"
        );
        assert!(!f.keeps((12, "sysevent", "a"), "logout", Some("alice")));
        assert!(!f.keeps((12, "sysevent", "a"), "login", None));
        let oldest = LineFilter {
            order: Order::OldestFirst,
            after: Some((12, "t", "b")),
            ..f
        };
        assert!(oldest.keeps((12, "t", "c"), "login", Some("alice")));
        assert!(!oldest.keeps((12, "t", "a"), "login", Some("alice")));
        assert!(
            !oldest.keeps((20, "t", "z"), "login", Some("alice")),
            "the upper bound is open"
        );
    }

    #[test]
    fn retention_trims_a_straddling_member_once_per_event() {
        let times = [100, 100, 200, 300, 400];
        assert_eq!(
            trim(&times, 100, 250),
            Trim {
                counted_out: 3,
                first_at: Some(300)
            }
        );
        // The next trim counts only what was still counted.
        assert_eq!(
            trim(&times, 300, 401),
            Trim {
                counted_out: 2,
                first_at: None
            }
        );
    }

    #[test]
    fn a_page_from_before_keeps_its_members_without_lists() {
        assert_eq!(
            whole_page_members(600).collect::<Vec<_>>(),
            [(0, 256), (1, 256), (2, 88)]
        );
        assert_eq!(whole_page_members(256).count(), 1);
        assert_eq!(whole_page_members(0).count(), 0);
    }

    #[test]
    fn members_past_the_edge_end_the_walk() {
        assert!(past_edge(Order::NewestFirst, 10, 99, 100));
        assert!(!past_edge(Order::NewestFirst, 10, 100, 100), "same second");
        assert!(past_edge(Order::OldestFirst, 101, 200, 100));
        assert!(!past_edge(Order::OldestFirst, 100, 200, 100));
        assert_eq!(members_at_once(1_000), 5);
        assert_eq!(members_at_once(10), 2);
        assert_eq!(members_at_once(100_000), 16);
    }
}
