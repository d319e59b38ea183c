//! The connector's own calls in `syslog_transaction`. ServiceNow writes every
//! REST transaction there, the connector's own included, so without this each
//! pull would read its predecessor's call as news and no pull would ever be
//! idle. A pull records each call it makes that the instance answered (from
//! its sending to its answer, and a hash of its path and query); later pulls
//! drop a `syslog_transaction` record by the connection's own account whose
//! URL is one of those calls' and whose time lies within that call, at most
//! one record a call. Anything else by the account is stored: another URL, a
//! second record within one call, a call at another moment, a call the
//! instance did not answer. Known limit: a call under the account made within
//! one of the connector's calls' seconds to the same URL (for the Batch API,
//! any batch) can take that call's place, and the connector's record is
//! stored instead: the count of records stays right, the stranger's address
//! does not. Assumed of ServiceNow, to be checked on a real instance: `url`
//! holds the path and query as sent, and a Batch API call is one record.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pull::cursor::{Key, OVERLAP_SECS};
use crate::pull::events::{parse_servicenow_time, Event};

/// The table ServiceNow writes its transactions to.
pub const TRANSACTIONS: &str = "syslog_transaction";
/// Calls kept: enough for `KEEP_SECS` (17 minutes) at a pull every 30 s
/// with two calls each; past it the oldest go first (their records are
/// then stored, never lost).
pub const CALLS_KEPT: usize = 96;
/// Seconds around a call within which its record may be dated: the two
/// clocks, and ServiceNow's one-second grain.
pub const SLACK_SECS: i64 = 2;
/// A call's end when its answer's time is not known: the transport's
/// default deadline (`transport::CALL_DEADLINE` in the worker).
const DEADLINE_SECS: i64 = 70;
/// How long the cursor may stay behind records that are all the
/// connector's own calls (`CursorHold`).
pub const HOLD_SECS: i64 = 300;
/// Kept as long as a later pull may read a call's record again, and a
/// little more: the cursor held `HOLD_SECS` behind it, then the overlap
/// before the read that moved it (`cursor::resume_start`).
pub const KEEP_SECS: i64 = HOLD_SECS + OVERLAP_SECS + 120;

/// One call the connector made: `[from, to]` in seconds, and its URL's hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnCall {
    pub from: i64,
    pub to: i64,
    pub url_hash: u64,
}

impl OwnCall {
    /// A call to `url` sent at `now` (seconds), its end not yet known.
    pub fn sent(url: &str, now: i64) -> OwnCall {
        OwnCall {
            from: now - SLACK_SECS,
            to: now + DEADLINE_SECS + SLACK_SECS,
            url_hash: url_hash(url),
        }
    }

    /// Its answer came at `now`. Only a 2xx keeps it: an error, a refusal,
    /// a hibernation page or no answer may have left no record, and a
    /// stranger's record within its seconds must not pass for it.
    pub fn answered(&mut self, now: Option<i64>, kept: bool) {
        if !kept {
            self.to = self.from - 1;
        } else if let Some(now) = now {
            self.to = (now + SLACK_SECS).max(self.from);
        }
    }

    fn matches_nothing(&self) -> bool {
        self.to < self.from
    }
}

/// The recent calls, kept with the object's schedule (one row it writes on
/// every pull anyway).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnCalls(Vec<OwnCall>);

impl OwnCalls {
    /// With the calls a pull made, at `now`: those the overlap no longer
    /// reads go, and those that match nothing, and past `CALLS_KEPT` the
    /// oldest.
    pub fn merged(&self, made: &[OwnCall], now: i64) -> OwnCalls {
        let mut all: Vec<OwnCall> = self.0.iter().chain(made).copied().collect();
        all.retain(|c| c.to >= now - KEEP_SECS && !c.matches_nothing());
        all.sort_by_key(|c| std::cmp::Reverse(c.from));
        all.truncate(CALLS_KEPT);
        OwnCalls(all)
    }

    pub fn iter(&self) -> impl Iterator<Item = &OwnCall> {
        self.0.iter()
    }
}

/// A URL's path and query (what `syslog_transaction.url` holds), hashed:
/// SHA-256's first 8 bytes, so no other URL can be made to pass for one of
/// the connector's (as FNV or the like could be).
pub fn url_hash(url: &str) -> u64 {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    };
    let digest = Sha256::digest(path.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// One run's decision: which records are the connector's own calls.
#[derive(Debug)]
pub struct OwnFilter {
    account: String,
    /// The last pulls' calls, then this run's.
    calls: Vec<OwnCall>,
    /// How many of `calls` are the last pulls'.
    before: usize,
    /// Each call's record once found (by sys_id): a second is not its.
    taken: Vec<Option<String>>,
}

impl OwnFilter {
    /// For the connection's `account` (its `sys_user.user_name`), with the
    /// calls of the last pulls; none without an account.
    pub fn new(account: &str, calls: &OwnCalls) -> Option<OwnFilter> {
        if account.is_empty() {
            return None;
        }
        let calls: Vec<OwnCall> = calls.iter().copied().collect();
        Some(OwnFilter {
            account: account.to_string(),
            taken: vec![None; calls.len()],
            before: calls.len(),
            calls,
        })
    }

    /// A call of this run (a backfill's later pages may read its record).
    pub fn add(&mut self, call: OwnCall) {
        self.calls.push(call);
        self.taken.push(None);
    }

    /// The run's `n`th call as it ended (`OwnCall::answered`).
    pub fn set(&mut self, n: usize, call: OwnCall) {
        if let Some(c) = self.calls.get_mut(self.before + n) {
            *c = call;
        }
    }

    /// Whether `event` is the record of one of the connector's own calls
    /// (that call is then taken by it).
    pub fn is_own(&mut self, event: &Event) -> bool {
        let by_account = event
            .actor
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(&self.account));
        if event.source_table != TRANSACTIONS || !by_account {
            return false;
        }
        let (Some(url), Some(at)) = (
            event.new_value.as_deref(),
            crate::clock::parse_rfc3339(&event.occurred_at),
        ) else {
            return false;
        };
        let hash = url_hash(url);
        let sys_id = event.sys_id();
        for (call, taken) in self.calls.iter().zip(self.taken.iter_mut()) {
            if call.url_hash != hash || at < call.from || at > call.to {
                continue;
            }
            match taken {
                Some(id) if id == sys_id => return true,
                Some(_) => continue,
                None => {
                    *taken = Some(sys_id.to_string());
                    return true;
                }
            }
        }
        false
    }
}

/// Whether a table's stored cursor stays where it is after a page read:
/// an idle pull on an instance that logs its calls reads only its
/// predecessors' records past the cursor, and moving the cursor over them
/// would be one object row on every pull. So while every record past the
/// cursor is the connector's own, and the oldest of them younger than
/// `HOLD_SECS`, the cursor stays and the next pull reads them again (and
/// drops them again); after that, or with any other record past the
/// cursor, the cursor moves as usual: at most one row every `HOLD_SECS`.
/// Records at or before the cursor (the overlap's re-reads) are the
/// store's to judge: one it finds new (a late commit) has the held cursor
/// written after all (`PageToStore::cursor_to_write`), with its recent
/// keys, so the next pull does not store it again.
#[derive(Debug)]
pub struct CursorHold {
    /// The stored cursor: `(sys_created_on, sys_id)` in unix seconds.
    stored: (i64, String),
    /// The oldest own record past it (`None`: none yet).
    oldest_own: Option<i64>,
    /// A record past it that is not the connector's own.
    other: bool,
}

impl CursorHold {
    /// For a page read after the stored cursor `stored`; none without one
    /// (a first backfill moves it).
    pub fn new(stored: Option<&Key>) -> Option<CursorHold> {
        let stored = stored?;
        let at = parse_servicenow_time(&stored.created_on)?;
        Some(CursorHold {
            stored: (at, stored.sys_id.clone()),
            oldest_own: None,
            other: false,
        })
    }

    /// One record of the page, and whether it was the connector's own.
    pub fn saw(&mut self, event: &Event, own: bool) {
        let Some(at) = crate::clock::parse_rfc3339(&event.occurred_at) else {
            self.other = true;
            return;
        };
        let (stored_at, stored_id) = (self.stored.0, self.stored.1.as_str());
        // At or before the cursor: the overlap's re-reads (the store
        // decides whether one is new).
        if (at, event.sys_id()) <= (stored_at, stored_id) {
            return;
        }
        if own {
            self.oldest_own = Some(self.oldest_own.map_or(at, |o| o.min(at)));
        } else {
            self.other = true;
        }
    }

    /// After the page's last record, read at `now` (seconds): whether the
    /// cursor stays.
    pub fn holds(&self, now: i64) -> bool {
        !self.other && self.oldest_own.is_some_and(|at| at > now - HOLD_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::events::{Kind, RawRecord};

    fn transaction(sys_id: &str, by: &str, url: &str, at: &str) -> Event {
        Event {
            id: format!("{TRANSACTIONS}:{sys_id}"),
            connection_id: "c".into(),
            occurred_at: at.into(),
            kind: Kind::Transaction,
            actor: Some(by.into()),
            source_ip: None,
            target: None,
            old_value: None,
            new_value: Some(url.into()),
            source_table: TRANSACTIONS.into(),
            raw: RawRecord::empty(),
            truncated_fields: Vec::new(),
        }
    }

    const T0: i64 = 1_765_000_000; // 2025-12-06T05:46:40Z
    const AT: &str = "2025-12-06T05:46:41Z";
    const BATCH: &str = "/api/now/v1/batch";

    fn answered(url: &str, now: i64, kept: bool) -> OwnCall {
        let mut call = OwnCall::sent(url, now);
        call.answered(Some(now + 1), kept);
        call
    }

    fn calls_at(now: i64) -> OwnCalls {
        let call = answered("https://acme.service-now.com/api/now/v1/batch", now, true);
        OwnCalls::default().merged(&[call], now + 1)
    }

    #[test]
    fn the_record_of_an_own_call_is_dropped_once_and_again_when_read_again() {
        let calls = calls_at(T0);
        let mut run = OwnFilter::new("svc", &calls).unwrap();
        let own = transaction("a1", "svc", BATCH, AT);
        assert!(run.is_own(&own));
        assert!(run.is_own(&own), "the same record, read again in the run");
        // A later run re-reading the overlap decides the same; the account
        // is compared without case, as ServiceNow compares user names.
        let mut next = OwnFilter::new("SVC", &calls).unwrap();
        assert!(next.is_own(&own));
    }

    #[test]
    fn what_a_stolen_credential_does_is_kept() {
        let calls = calls_at(T0);
        let mut run = OwnFilter::new("svc", &calls).unwrap();
        assert!(run.is_own(&transaction("a1", "svc", BATCH, AT)));
        // A second batch call within the same seconds: not the connector's.
        assert!(!run.is_own(&transaction("a2", "svc", BATCH, AT)));
        // Another URL, another moment, another account, another table, a
        // time that cannot be read.
        assert!(!run.is_own(&transaction(
            "b",
            "svc",
            "/api/now/table/sys_user?sysparm_limit=1",
            AT
        )));
        assert!(!run.is_own(&transaction("c", "svc", BATCH, "2025-12-06T05:50:00Z")));
        assert!(!run.is_own(&transaction("d", "admin", BATCH, AT)));
        assert!(!run.is_own(&transaction("f", "svc", BATCH, "")));
        let mut audit = transaction("e", "svc", BATCH, AT);
        audit.source_table = "sys_audit".into();
        assert!(!run.is_own(&audit));
        assert!(
            OwnFilter::new("", &calls).is_none(),
            "no account: nothing is the connector's"
        );
    }

    #[test]
    fn a_call_counts_once_answered_with_a_2xx_and_from_the_run_that_makes_it() {
        // This run's own call: its record, read by a later page, is its.
        let mut run = OwnFilter::new("svc", &OwnCalls::default()).unwrap();
        assert!(!run.is_own(&transaction("a1", "svc", BATCH, AT)));
        let call = OwnCall::sent(BATCH, T0);
        run.add(call);
        run.set(0, answered(BATCH, T0, true));
        assert!(run.is_own(&transaction("a1", "svc", BATCH, AT)));
        // A call the instance did not answer with a 2xx may have left no
        // record: a record within its seconds is not taken for it.
        let refused = answered(BATCH, T0, false);
        assert_eq!(
            OwnCalls::default()
                .merged(&[refused], T0 + 1)
                .iter()
                .count(),
            0
        );
        let mut run = OwnFilter::new("svc", &OwnCalls::default()).unwrap();
        run.add(OwnCall::sent(BATCH, T0));
        run.set(0, refused);
        assert!(!run.is_own(&transaction("x", "svc", BATCH, AT)));
        // A call whose answer's time is not known spans the deadline.
        let mut ahead = OwnCall::sent(BATCH, T0);
        ahead.answered(None, true);
        assert_eq!(ahead.to - ahead.from, DEADLINE_SECS + 2 * SLACK_SECS);
    }

    #[test]
    fn calls_are_kept_while_the_overlap_reads_them_and_at_most_ninety_six() {
        let calls = calls_at(T0);
        assert_eq!(calls.iter().count(), 1);
        assert_eq!(calls.merged(&[], T0 + KEEP_SECS).iter().count(), 1);
        assert_eq!(calls.merged(&[], T0 + KEEP_SECS + 10).iter().count(), 0);
        // A pull every 30 s for the overlap's 12 minutes: every call kept.
        let pulls: Vec<OwnCall> = (0..24).map(|i| answered("/x", T0 + 30 * i, true)).collect();
        assert_eq!(
            OwnCalls::default().merged(&pulls, T0 + 720).iter().count(),
            24
        );
        let many: Vec<OwnCall> = (0..200).map(|i| answered("/x", T0 + i, true)).collect();
        let kept = OwnCalls::default().merged(&many, T0 + 200);
        assert_eq!(kept.iter().count(), CALLS_KEPT);
        let newest_kept = kept.iter().all(|c| c.from >= T0 + 200 - 96 - SLACK_SECS);
        assert!(newest_kept, "the newest stay");
    }

    #[test]
    fn the_hash_is_of_what_servicenow_writes_as_the_url() {
        assert_eq!(
            url_hash("https://acme.service-now.com/api/now/v1/batch"),
            url_hash(BATCH)
        );
        assert_ne!(url_hash(BATCH), url_hash("/api/now/v1/batch?x=1"));
        assert_eq!(url_hash("http://127.0.0.1:9/"), url_hash("/"));
    }

    fn key(at: &str, sys_id: &str) -> Key {
        Key {
            created_on: at.into(),
            sys_id: sys_id.into(),
        }
    }

    #[test]
    fn the_cursor_stays_behind_young_own_records_only() {
        let stored = key("2025-12-06 05:46:40", "m");
        let young = transaction("n", "svc", BATCH, AT);
        let now = T0 + 60;
        // Only own records past the cursor, the oldest a minute old: held.
        let mut hold = CursorHold::new(Some(&stored)).unwrap();
        hold.saw(&young, true);
        assert!(hold.holds(now));
        // The same, read again until they are HOLD_SECS old: it moves.
        assert!(!hold.holds(T0 + 1 + HOLD_SECS));
        // Anything else past the cursor moves it.
        let mut hold = CursorHold::new(Some(&stored)).unwrap();
        hold.saw(&young, true);
        hold.saw(&transaction("o", "svc", BATCH, AT), false);
        assert!(!hold.holds(now));
        let mut unreadable = CursorHold::new(Some(&stored)).unwrap();
        unreadable.saw(&transaction("p", "svc", BATCH, "garbage"), true);
        assert!(!unreadable.holds(now));
        // Own re-reads at or before the cursor (the overlap) do not start
        // the hold's clock; with nothing past it there is nothing to hold.
        let mut overlap = CursorHold::new(Some(&stored)).unwrap();
        overlap.saw(
            &transaction("a", "svc", BATCH, "2025-12-06T05:40:00Z"),
            true,
        );
        overlap.saw(
            &transaction("m", "svc", BATCH, "2025-12-06T05:46:40Z"),
            true,
        );
        assert!(!overlap.holds(now), "nothing past the cursor");
        overlap.saw(&young, true);
        assert!(overlap.holds(now));
        // Another's record before the cursor (stored before, or a late
        // commit): the store decides (`PageToStore::cursor_to_write`).
        let mut late = CursorHold::new(Some(&stored)).unwrap();
        late.saw(
            &transaction("b", "admin", BATCH, "2025-12-06T05:40:00Z"),
            false,
        );
        late.saw(&young, true);
        assert!(late.holds(now));
        // The cursor's own second, a later sys_id: past it.
        let mut same_second = CursorHold::new(Some(&stored)).unwrap();
        same_second.saw(&transaction("q", "x", BATCH, "2025-12-06T05:46:40Z"), false);
        assert!(!same_second.holds(now));
        // No stored cursor (a first backfill): nothing holds it.
        assert!(CursorHold::new(None).is_none());
    }

    #[test]
    fn kept_calls_survive_storage() {
        let calls = calls_at(T0);
        let text = serde_json::to_string(&calls).unwrap();
        assert_eq!(serde_json::from_str::<OwnCalls>(&text).unwrap(), calls);
    }
}
