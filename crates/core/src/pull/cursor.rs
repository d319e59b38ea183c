//! Where each source table's pull stands and what to ask next.
//!
//! Records are read in (sys_created_on, sys_id) order with a keyset query:
//! `sys_created_on=T^sys_id>ID^NQsys_created_on>T`, so a burst of more
//! same-second records than a page holds is paged through without loops or
//! skips, and no offset drifts under inserts. The stored cursor is the last
//! record seen, never "now". Each run starts `OVERLAP_SECS` before the cursor
//! so records committed late with an older `sys_created_on` (and records of
//! the cursor's own second that committed after it was read) are still found;
//! storage ignores what it already has, keyed by (connection, table, sys_id).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::http::HttpResponse;
use crate::problem::ProblemCode;
use crate::pull::events::{self, fields_for, parse_servicenow_time, servicenow_time, Event};
use crate::servicenow::answers::{error_message, is_html, retry_after};
use crate::servicenow::table;

/// How far before the cursor each run starts again, for late commits.
pub const OVERLAP_SECS: i64 = 600;
/// ServiceNow's largest page.
pub const MAX_PAGE: u32 = 10_000;
/// The smallest page a cancelled transaction makes us retry with.
pub const MIN_PAGE: u32 = 100;

/// A position in (sys_created_on, sys_id) order. `sys_id` empty means "the
/// start of that second".
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// Raw ServiceNow UTC time, `YYYY-MM-DD hh:mm:ss` (sorts as text).
    pub created_on: String,
    pub sys_id: String,
}

impl Key {
    pub fn start_of(unix: i64) -> Key {
        Key {
            created_on: servicenow_time(unix),
            sys_id: String::new(),
        }
    }
}

/// Where a run of one table starts: the overlap before the stored cursor, but
/// never before the backfill window.
pub fn run_start(cursor: Option<&Key>, backfill_from: i64) -> Key {
    match cursor.and_then(|c| parse_servicenow_time(&c.created_on)) {
        Some(t) => Key::start_of((t - OVERLAP_SECS).max(backfill_from)),
        None => Key::start_of(backfill_from),
    }
}

/// Where a run starts when the stored cursor was written by a run that
/// started at `read_at`. A record committed late is at most `OVERLAP_SECS`
/// late, so when the cursor lies more than that before the read, every
/// record at or before it was already visible then: the run starts right
/// after the cursor. Otherwise it starts `OVERLAP_SECS` before the read.
/// (Starting before the cursor on every run would make a backfill whose
/// overlap holds more records than one run reads start over forever.)
pub fn resume_start(cursor: &Key, read_at: i64, backfill_from: i64) -> Key {
    match parse_servicenow_time(&cursor.created_on) {
        Some(t) if t <= read_at - OVERLAP_SECS => cursor.clone(),
        Some(_) => Key::start_of((read_at - OVERLAP_SECS).max(backfill_from)),
        None => Key::start_of(backfill_from),
    }
}

/// The read time a page keeps with its cursor. The stored one stays while
/// the cursor has not moved and that read already lies an overlap past it
/// (the next run resumes right after the cursor either way): a pull that
/// found nothing writes no cursor row. Otherwise this read's time.
pub fn read_at_to_keep(stored: Option<(&Key, i64)>, cursor: Option<&Key>, read_at: i64) -> i64 {
    match (stored, cursor) {
        (Some((was, stored_at)), Some(now))
            if was == now && resume_start(was, stored_at, i64::MIN) == *was =>
        {
            stored_at
        }
        _ => read_at,
    }
}

/// Whether a record of time `at` may already be stored: only the overlap's
/// re-reads can be (looked up in the pages' recent keys, `pull::index`),
/// and they lie at or before the stored cursor's second (`stored_until`;
/// none stored: nothing can be).
pub fn may_be_indexed(at: i64, stored_until: Option<i64>) -> bool {
    stored_until.is_some_and(|until| at <= until)
}

/// The encoded query for records strictly after `after` (or at/after its
/// second when `sys_id` is empty).
pub fn after_query(after: &Key) -> String {
    let order = "^ORDERBYsys_created_on^ORDERBYsys_id";
    if after.sys_id.is_empty() {
        format!("sys_created_on>={}{order}", after.created_on)
    } else {
        format!(
            "sys_created_on={t}^sys_id>{id}^NQsys_created_on>{t}{order}",
            t = after.created_on,
            id = after.sys_id
        )
    }
}

/// The Table API path of one page.
pub fn page_path(source: &str, after: &Key, limit: u32, offset: u64) -> String {
    page_path_with(source, after, limit, offset, fields_for(source))
}

fn page_path_with(source: &str, after: &Key, limit: u32, offset: u64, fields: &str) -> String {
    let q = after_query(after);
    let limit = limit.to_string();
    let offset_text = offset.to_string();
    let mut params = vec![
        ("sysparm_query", q.as_str()),
        ("sysparm_fields", fields),
        ("sysparm_limit", limit.as_str()),
        ("sysparm_display_value", "false"),
        ("sysparm_exclude_reference_link", "true"),
        ("sysparm_suppress_pagination_header", "true"),
    ];
    if offset > 0 {
        params.push(("sysparm_offset", offset_text.as_str()));
    }
    table::table_path(source, &params)
}

#[derive(Debug, PartialEq)]
pub enum PageError {
    /// 429: wait this long (seconds) before asking again.
    RateLimited(u64),
    /// 401: the access token expired or was revoked, or Basic was refused.
    Unauthorized,
    /// 403: the user may not read this table.
    Forbidden(String),
    /// An HTML page instead of JSON: the instance is hibernating.
    Hibernating,
    /// The 60 s transaction limit: ask again with a smaller page.
    Cancelled,
    /// The answer passed the transport's cap (`http::SERVICENOW_ANSWER_CAP`):
    /// ask again with a smaller page.
    TooLarge,
    /// 5xx or a network failure: back off and retry.
    Unavailable(u16),
    /// A 200 we cannot read; `raw` keeps the start of the body for the log.
    Malformed { raw: String },
    /// 400: ServiceNow refuses the request itself (an invalid table or
    /// query). Asking again will not help.
    Rejected(String),
}

/// A page read as far as where the next one starts. Its records are still
/// JSON text (each copied out of the body once, the copy the Event keeps),
/// so the next page can be asked for before this one is normalized.
#[derive(Debug)]
pub struct PageHead {
    records: Vec<Box<RawValue>>,
    /// The last record's key: where the next page starts.
    pub last: Option<Key>,
    /// `X-Total-Count`: records matching the query, ACL-hidden ones included.
    pub total: Option<u64>,
    pub returned: usize,
    /// A record read field by field (see `FieldSplit`): the fields it is
    /// stored without.
    pub truncated: Vec<String>,
}

impl PageHead {
    /// Whether more records may follow. ACLs can trim a page short, so the
    /// count decides, not the page's length, when ServiceNow sends one.
    pub fn more(&self, limit: u32, offset: u64) -> bool {
        match self.total {
            Some(total) => total > offset + u64::from(limit),
            None => self.returned >= limit as usize,
        }
    }

    /// What the page's middle record weighs (bytes of JSON): a page's
    /// weight by its median, so one outlier cannot set it.
    fn median_record_bytes(&self) -> Option<usize> {
        let mut lengths: Vec<usize> = self.records.iter().map(|r| r.get().len()).collect();
        if lengths.is_empty() {
            return None;
        }
        let middle = lengths.len() / 2;
        lengths.select_nth_unstable(middle);
        lengths.get(middle).copied()
    }

    /// The page's events. A record without a sys_id or a readable
    /// `sys_created_on` is left out (it still moved the cursor: see `last`).
    pub fn events(self, connection_id: &str, source: &str) -> Vec<Event> {
        let truncated = self.truncated;
        self.records
            .into_iter()
            .filter_map(|raw| events::normalize_owned(connection_id, source, raw))
            .map(|mut e| {
                e.truncated_fields.clone_from(&truncated);
                e
            })
            .collect()
    }
}

/// Reads one Table API page as far as its head (see `PageHead`).
pub fn read_page(resp: &HttpResponse, now: i64) -> Result<PageHead, PageError> {
    if is_html(resp) {
        return Err(PageError::Hibernating);
    }
    match resp.status {
        200 => {}
        404 => {
            // v1's "No Record found"; we ask v2, but be lenient.
            return Ok(PageHead {
                records: vec![],
                last: None,
                total: Some(0),
                returned: 0,
                truncated: Vec::new(),
            });
        }
        401 => return Err(PageError::Unauthorized),
        403 => {
            return Err(PageError::Forbidden(
                error_message(resp).unwrap_or_default(),
            ))
        }
        429 => return Err(PageError::RateLimited(retry_after(resp, now).unwrap_or(60))),
        400 => {
            return Err(PageError::Rejected(
                error_message(resp).unwrap_or_else(|| "Bad Request".into()),
            ))
        }
        s if error_message(resp).is_some_and(|m| m.contains("Transaction cancelled")) => {
            let _ = s;
            return Err(PageError::Cancelled);
        }
        s => return Err(PageError::Unavailable(s)),
    }
    #[derive(Deserialize)]
    struct Body {
        result: Vec<Box<RawValue>>,
    }
    let body: Body = serde_json::from_slice(&resp.body).map_err(|_| PageError::Malformed {
        raw: String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned(),
    })?;
    let total = resp
        .header("x-total-count")
        .and_then(|v| v.trim().parse().ok());
    // The next page starts after the last record returned, readable or not
    // (a record normalize refuses still moves the cursor past it).
    let last = body.result.iter().rev().find_map(|raw| {
        let fields = events::Fields::read(raw.get())?;
        Some(Key {
            created_on: fields.string("sys_created_on")?,
            sys_id: fields.string("sys_id")?,
        })
    });
    Ok(PageHead {
        returned: body.result.len(),
        records: body.result,
        last,
        total,
        truncated: Vec::new(),
    })
}

/// The page size after a cancelled transaction: half, but not below MIN_PAGE.
pub fn smaller_page(limit: u32) -> Option<u32> {
    (limit > MIN_PAGE).then(|| (limit / 2).max(MIN_PAGE))
}

/// Pages of fewer records say too little of what a record weighs.
const WEIGHED_FROM: usize = 8;

/// The fields a record must always be read with: its key.
const KEY_FIELDS: [&str; 2] = ["sys_id", "sys_created_on"];

/// One record too large for the answer cap on its own, read again field by
/// field: its other fields are asked in two halves, a half over the cap is
/// halved again, and a single field over the cap is left out and named.
/// Each read asks for the record's key too, so a record that changed under
/// the reads (a late commit now sorts first, or it was deleted) is noticed
/// and read again from the start. At most `2 × fields` reads.
#[derive(Clone, Debug)]
pub struct FieldSplit {
    /// Field groups still to read; the front one is asked next.
    groups: VecDeque<Vec<&'static str>>,
    key: Option<Key>,
    got: serde_json::Map<String, serde_json::Value>,
    truncated: Vec<String>,
    total: Option<u64>,
}

/// What a `FieldSplit` does after an answer.
#[derive(Debug)]
pub enum SplitStep {
    /// Ask the next group.
    Next,
    /// The record, whole but for its `truncated` fields: a page of one.
    Done(PageHead),
    /// The record is not the one the reads began with: read the table
    /// again from the same place.
    Changed,
}

impl FieldSplit {
    pub fn new(source: &str) -> FieldSplit {
        let fields: Vec<&'static str> = fields_for(source)
            .split(',')
            .filter(|f| !KEY_FIELDS.contains(f))
            .collect();
        let mut groups = VecDeque::new();
        // The whole record is known to be over the cap: start with halves.
        let (a, b) = fields.split_at(fields.len().div_ceil(2));
        for half in [a, b] {
            if !half.is_empty() {
                groups.push_back(half.to_vec());
            }
        }
        FieldSplit {
            groups,
            key: None,
            got: serde_json::Map::new(),
            truncated: Vec::new(),
            total: None,
        }
    }

    /// The fields of the next read, key included.
    pub fn fields(&self) -> String {
        let group = self.groups.front().map(Vec::as_slice).unwrap_or(&[]);
        KEY_FIELDS
            .iter()
            .chain(group.iter())
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The front group's answer was over the cap too.
    pub fn on_too_large(&mut self) -> SplitStep {
        let Some(group) = self.groups.pop_front() else {
            return SplitStep::Changed;
        };
        if group.is_empty() {
            // The key alone over the cap: not a record we can read.
            return SplitStep::Changed;
        }
        if group.len() == 1 {
            self.truncated.extend(group.iter().map(|f| f.to_string()));
        } else {
            let (a, b) = group.split_at(group.len() / 2);
            self.groups.push_front(b.to_vec());
            self.groups.push_front(a.to_vec());
        }
        self.next_or_done()
    }

    /// The front group's answer.
    pub fn on_part(&mut self, head: PageHead) -> SplitStep {
        let Some(record) = head.records.first() else {
            return SplitStep::Changed;
        };
        let Ok(serde_json::Value::Object(fields)) =
            serde_json::from_str::<serde_json::Value>(record.get())
        else {
            return SplitStep::Changed;
        };
        let Some(key) = head.last.clone() else {
            return SplitStep::Changed;
        };
        if self.key.get_or_insert_with(|| key.clone()) != &key {
            return SplitStep::Changed;
        }
        self.total = head.total;
        self.got.extend(fields);
        self.groups.pop_front();
        self.next_or_done()
    }

    fn next_or_done(&mut self) -> SplitStep {
        if !self.groups.is_empty() {
            return SplitStep::Next;
        }
        let Some(key) = self.key.clone() else {
            // Every field was over the cap on its own and no read brought
            // the key: ask the key alone.
            return match self.truncated.is_empty() {
                true => SplitStep::Changed,
                false => {
                    self.groups.push_back(Vec::new());
                    SplitStep::Next
                }
            };
        };
        let record = events::RawRecord::from_map(&std::mem::take(&mut self.got));
        SplitStep::Done(PageHead {
            records: vec![record.into_raw()],
            last: Some(key),
            total: self.total,
            returned: 1,
            truncated: std::mem::take(&mut self.truncated),
        })
    }
}

/// Backoff for the n-th consecutive failure (0-based), with jitter in
/// [0, 1) supplied by the host: 0.5 s, 1 s, 2 s, … capped at 30 s.
pub fn backoff_ms(attempt: u32, jitter: f64) -> u64 {
    let base = 500u64.saturating_mul(1u64 << attempt.min(6)).min(30_000);
    base / 2 + (base as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as u64
}

/// What to do after a failed page.
#[derive(Debug, PartialEq)]
pub enum Recovery {
    /// Wait this long, then ask for the same page again.
    RetryAfterMs(u64),
    /// Get a new access token (refresh grant), then ask again.
    Refresh,
    /// Stop this run; the connection gets this problem code as its status.
    Stop { code: ProblemCode, detail: String },
    /// Stop this run and try again at the next schedule (the problem is
    /// passing: an outage, a rate limit with a long wait).
    Defer { retry_in_secs: u64, detail: String },
    /// Leave this table for this run and go on with the others: ServiceNow
    /// refuses the request itself, so asking again now would only loop. The
    /// next scheduled run asks once more (the table may be fixed by then).
    SkipTable { code: &'static str, detail: String },
}

/// The pull of one source table within one run.
#[derive(Clone, Debug)]
pub struct TablePull {
    pub source: String,
    after: Key,
    offset: u64,
    limit: u32,
    /// The page size the table keeps: lowered by cancellations and by
    /// what records weigh (a page fills at most half the answer cap), never
    /// below `MIN_PAGE` (or the configured size, if smaller); what `limit`
    /// returns to after a record read field by field.
    page_size: u32,
    /// The smallest `page_size` may become.
    floor: u32,
    /// A page was over the answer cap and no record over it alone has been
    /// read since: the run may take a few more calls to get past it (see
    /// `PullRun::out_of_budget`).
    isolating: bool,
    /// Records of the first refused page not yet read whole: once none is
    /// left, the page was only too heavy in all, and isolating ends.
    isolating_left: u64,
    /// The transport's cap on one answer (bytes).
    answer_cap: usize,
    /// A record over the answer cap on its own, being read field by field.
    split: Option<FieldSplit>,
    /// The page being read is that record: `limit` goes back to
    /// `page_size` once it is taken.
    split_done: bool,
    /// The furthest record stored: what to persist as the cursor.
    pub cursor: Option<Key>,
    pub done: bool,
    failures: u32,
    refreshed: bool,
}

/// Consecutive failures of one page before the run gives up on it.
pub const MAX_FAILURES: u32 = 6;

impl TablePull {
    pub fn new(source: &str, stored: Option<Key>, backfill_from: i64, limit: u32) -> Self {
        TablePull {
            source: source.to_string(),
            after: run_start(stored.as_ref(), backfill_from),
            offset: 0,
            limit: limit.clamp(1, MAX_PAGE),
            page_size: limit.clamp(1, MAX_PAGE),
            floor: MIN_PAGE.min(limit.clamp(1, MAX_PAGE)),
            isolating: false,
            isolating_left: 0,
            answer_cap: usize::MAX,
            split: None,
            split_done: false,
            cursor: stored,
            done: false,
            failures: 0,
            refreshed: false,
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The page size to keep for the table (see `page_size`).
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Whether a page over the answer cap is still being narrowed to the
    /// record that passes it alone.
    pub fn isolating(&self) -> bool {
        self.isolating && !self.done
    }

    /// Pages are sized to fill at most half of `cap` bytes, by what the
    /// records read so far weigh.
    pub fn with_answer_cap(mut self, cap: usize) -> Self {
        self.answer_cap = cap.max(1);
        self
    }

    /// Resumes from a cursor whose writing run started at `read_at` (see
    /// `resume_start`); without one, the run starts the overlap before it.
    pub fn with_read_at(mut self, read_at: Option<i64>, backfill_from: i64) -> Self {
        if let (Some(cursor), Some(read_at)) = (&self.cursor, read_at) {
            self.after = resume_start(cursor, read_at, backfill_from);
        }
        self
    }

    /// Where the next page starts: with the cursor it ends at, it names the
    /// page's archive object, the same on every read of the same page.
    pub fn after_key(&self) -> Key {
        self.after.clone()
    }

    /// The next page's path, or `None` when this table is caught up.
    pub fn next_path(&self) -> Option<String> {
        if self.done {
            return None;
        }
        Some(match &self.split {
            Some(split) => {
                page_path_with(&self.source, &self.after, 1, self.offset, &split.fields())
            }
            None => page_path(&self.source, &self.after, self.limit, self.offset),
        })
    }

    /// Takes a page's answer while a record is read field by field (see
    /// `FieldSplit`): `Ok(None)` when there is more to read, `Ok(Some)`
    /// with the record as a page of one once it is read, and the other
    /// errors as they came, for `on_error`. Without a split, the answer as
    /// it came.
    pub fn take_part(
        &mut self,
        answer: Result<PageHead, PageError>,
    ) -> Result<Option<PageHead>, PageError> {
        let Some(split) = self.split.as_mut() else {
            return answer.map(Some);
        };
        let step = match answer {
            Ok(head) => split.on_part(head),
            Err(PageError::TooLarge) => split.on_too_large(),
            Err(e) => return Err(e),
        };
        self.failures = 0;
        match step {
            SplitStep::Next => Ok(None),
            SplitStep::Done(head) => {
                self.split = None;
                self.split_done = true;
                self.isolating = false;
                Ok(Some(head))
            }
            SplitStep::Changed => {
                self.split = None;
                Ok(None)
            }
        }
    }

    /// A one-record read of where the next page starts: its answer's
    /// `X-Total-Count` says how many records the table's backfill holds,
    /// without ServiceNow building (and the worker receiving) a page.
    pub fn count_path(&self) -> Option<String> {
        (!self.done).then(|| page_path(&self.source, &self.after, 1, self.offset))
    }

    /// Takes a page that was read; returns the cursor to persist with its events.
    pub fn on_page(&mut self, page: &PageHead) -> Option<Key> {
        self.failures = 0;
        self.refreshed = false;
        if let Some(last) = &page.last {
            if self.cursor.as_ref().is_none_or(|c| last > c) {
                self.cursor = Some(last.clone());
            }
        }
        if page.more(self.limit, self.offset) {
            match &page.last {
                Some(last) => {
                    self.after = last.clone();
                    self.offset = 0;
                }
                // ACLs hid the whole page: step over it.
                None => self.offset += u64::from(self.limit),
            }
        } else {
            self.done = true;
        }
        if self.isolating {
            self.isolating_left = self.isolating_left.saturating_sub(page.returned as u64);
            self.isolating &= self.isolating_left > 0;
        }
        if std::mem::take(&mut self.split_done) {
            self.limit = self.page_size;
        } else if page.returned >= WEIGHED_FROM {
            // Half the cap leaves room for records heavier than the median.
            // A page shrunk to find one record over the cap stays small
            // until that record is read (growing on the way would ask the
            // oversize page again and again).
            if let Some(median) = page.median_record_bytes() {
                let fit = (self.answer_cap / 2 / median.max(1)).clamp(1, MAX_PAGE as usize) as u32;
                self.page_size = self.page_size.min(fit.max(self.floor));
                self.limit = self.limit.min(self.page_size);
            }
        }
        self.cursor.clone()
    }

    /// Decides what a failed page means. `jitter` in [0, 1) from the host.
    pub fn on_error(&mut self, err: &PageError, jitter: f64, budget_left_ms: u64) -> Recovery {
        self.failures += 1;
        if self.failures > MAX_FAILURES {
            return Recovery::Defer {
                retry_in_secs: 300,
                detail: format!(
                    "{} failed {MAX_FAILURES} times in a row ({err:?}).",
                    self.source
                ),
            };
        }
        match err {
            PageError::Unauthorized if !self.refreshed => {
                self.refreshed = true;
                Recovery::Refresh
            }
            PageError::Unauthorized => Recovery::Stop { code: ProblemCode::CredentialsRejected, detail: "ServiceNow refused a fresh access token. Reconnect with new credentials.".into() },
            PageError::Forbidden(msg) => Recovery::Stop { code: ProblemCode::TableAccessDenied, detail: format!("The user cannot read {} ({msg}).", self.source) },
            PageError::Hibernating => Recovery::Stop { code: ProblemCode::InstanceHibernating, detail: "The instance answered with a web page instead of JSON, as a hibernating instance does. Wake it; pulls resume by themselves.".into() },
            PageError::RateLimited(secs) => {
                let ms = secs.saturating_mul(1000);
                if ms <= budget_left_ms / 2 {
                    Recovery::RetryAfterMs(ms.max(100))
                } else {
                    Recovery::Defer { retry_in_secs: (*secs).max(1), detail: format!("ServiceNow rate-limited the pull; it asks to wait {secs} s.") }
                }
            }
            PageError::Cancelled => match smaller_page(self.limit) {
                Some(smaller) => {
                    self.limit = smaller;
                    self.page_size = smaller;
                    self.failures -= 1;
                    Recovery::RetryAfterMs(0)
                }
                None => Recovery::Defer { retry_in_secs: 300, detail: format!("{} pages are cancelled even at {} records.", self.source, self.limit) },
            },
            // Halved for this run, down to one record, which is then read
            // field by field. The table keeps what the next page read
            // whole says records weigh (see `on_page`), not the halving:
            // one huge record must not shrink its pages for good.
            PageError::TooLarge => {
                self.failures -= 1;
                if !self.isolating {
                    self.isolating = true;
                    self.isolating_left = u64::from(self.limit);
                }
                if self.limit > 1 {
                    self.limit /= 2;
                } else {
                    self.split = Some(FieldSplit::new(&self.source));
                }
                Recovery::RetryAfterMs(0)
            }
            PageError::Rejected(msg) => {
                self.done = true;
                Recovery::SkipTable {
                    code: "table_query_rejected",
                    detail: format!(
                        "ServiceNow refused the query on {} (HTTP 400: {msg}); the other tables go on, and the next scheduled pull asks again.",
                        self.source
                    ),
                }
            }
            PageError::Unavailable(_) | PageError::Malformed { .. } => {
                let ms = backoff_ms(self.failures - 1, jitter);
                if ms <= budget_left_ms / 2 {
                    Recovery::RetryAfterMs(ms)
                } else {
                    Recovery::Defer { retry_in_secs: 60, detail: format!("{} is failing ({err:?}); trying again later.", self.source) }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    /// A record in the fake instance: (created unix, sys_id, visible to ACLs).
    pub(crate) type Row = (i64, String, bool);

    /// A fake Table API that understands the connector's keyset query and
    /// answers like ServiceNow (ordered, limited, counted, ACL-trimmed).
    pub(crate) struct Fake {
        pub(crate) rows: Vec<Row>,
        /// A transaction log's records: sys_id to (sys_created_by, url).
        pub(crate) logged: std::collections::HashMap<String, (String, String)>,
    }

    impl Fake {
        pub(crate) fn of(rows: Vec<Row>) -> Fake {
            Fake {
                rows,
                logged: Default::default(),
            }
        }

        pub(crate) fn answer(&self, path: &str) -> HttpResponse {
            let query: std::collections::HashMap<String, String> =
                form_urlencoded::parse(path.split_once('?').unwrap().1.as_bytes())
                    .into_owned()
                    .collect();
            let q = &query["sysparm_query"];
            let limit: usize = query["sysparm_limit"].parse().unwrap();
            let offset: usize = query
                .get("sysparm_offset")
                .map(|o| o.parse().unwrap())
                .unwrap_or(0);
            let mut rows: Vec<&Row> = self.rows.iter().collect();
            rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            let matched: Vec<&Row> = if let Some(rest) = q.strip_prefix("sys_created_on>=") {
                let t = parse_servicenow_time(rest.split('^').next().unwrap()).unwrap();
                rows.into_iter().filter(|r| r.0 >= t).collect()
            } else {
                let t = parse_servicenow_time(
                    q.strip_prefix("sys_created_on=")
                        .unwrap()
                        .split('^')
                        .next()
                        .unwrap(),
                )
                .unwrap();
                let id = q
                    .split("sys_id>")
                    .nth(1)
                    .unwrap()
                    .split('^')
                    .next()
                    .unwrap()
                    .to_string();
                rows.into_iter()
                    .filter(|r| r.0 > t || (r.0 == t && r.1 > id))
                    .collect()
            };
            let page: Vec<serde_json::Value> = matched
                .iter()
                .skip(offset)
                .take(limit)
                .filter(|r| r.2)
                .map(|r| {
                    let mut record = serde_json::json!({"sys_id": r.1, "name": "login", "parm1": "u", "sys_created_on": servicenow_time(r.0)});
                    if let Some((by, url)) = self.logged.get(&r.1) {
                        record["sys_created_by"] = by.as_str().into();
                        record["url"] = url.as_str().into();
                    }
                    record
                })
                .map(|mut record| {
                    // Only the fields asked for, as ServiceNow answers.
                    if let (Some(fields), Some(map)) =
                        (query.get("sysparm_fields"), record.as_object_mut())
                    {
                        map.retain(|k, _| fields.split(',').any(|f| f == k));
                    }
                    record
                })
                .collect();
            HttpResponse {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("X-Total-Count".into(), matched.len().to_string()),
                ],
                body: serde_json::to_vec(&serde_json::json!({ "result": page })).unwrap(),
            }
        }
    }

    /// One run: pages until caught up; returns sys_ids stored and the cursor.
    fn run(
        fake: &Fake,
        stored: Option<Key>,
        backfill_from: i64,
        limit: u32,
        sink: &mut Vec<String>,
    ) -> (Option<Key>, usize) {
        let mut pull = TablePull::new("sysevent", stored, backfill_from, limit);
        let mut pages = 0;
        let mut cursor = pull.cursor.clone();
        while let Some(path) = pull.next_path() {
            pages += 1;
            assert!(pages < 10_000, "the pull loops");
            let page = read_page(&fake.answer(&path), 0).unwrap();
            cursor = pull.on_page(&page);
            sink.extend(
                page.events("c", "sysevent")
                    .iter()
                    .map(|e| e.id.trim_start_matches("sysevent:").to_string()),
            );
        }
        (cursor, pages)
    }

    pub(crate) fn id(n: u64) -> String {
        format!("{:032x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn visible(rows: &[Row], from: i64) -> BTreeSet<String> {
        rows.iter()
            .filter(|r| r.2 && r.0 >= from)
            .map(|r| r.1.clone())
            .collect()
    }

    #[test]
    fn a_cursor_that_did_not_move_keeps_its_read_time_once_past_the_overlap() {
        let k = Key {
            created_on: "2026-11-20 10:00:00".into(),
            sys_id: "a".into(),
        };
        let t = parse_servicenow_time(&k.created_on).unwrap_or(0);
        // Read long after: the next run resumes after it, nothing to write.
        let long_after = t + OVERLAP_SECS + 5;
        assert_eq!(
            read_at_to_keep(Some((&k, long_after)), Some(&k), long_after + 60),
            long_after
        );
        // Read within its overlap: this read's time moves the next run's
        // start forward, so it is kept.
        assert_eq!(read_at_to_keep(Some((&k, t + 5)), Some(&k), t + 65), t + 65);
        // A moved cursor, or none stored: this read's time.
        let moved = Key {
            sys_id: "b".into(),
            ..k.clone()
        };
        assert_eq!(
            read_at_to_keep(Some((&k, long_after)), Some(&moved), long_after + 60),
            long_after + 60
        );
        assert_eq!(read_at_to_keep(None, Some(&k), long_after), long_after);
    }

    #[test]
    fn only_records_up_to_the_stored_cursors_second_may_be_indexed() {
        assert!(may_be_indexed(100, Some(100)));
        assert!(may_be_indexed(99, Some(100)));
        assert!(!may_be_indexed(101, Some(100)));
        assert!(!may_be_indexed(0, None));
    }

    #[test]
    fn a_burst_larger_than_a_page_neither_loops_nor_skips() {
        let t0 = 1_700_000_000;
        let mut rows: Vec<Row> = (0..25_000).map(|n| (t0 + 10, id(n), true)).collect();
        rows.extend((25_000..25_100).map(|n| (t0 + 5 + (n as i64 % 20), id(n), true)));
        let fake = Fake::of(rows.clone());
        let mut got = Vec::new();
        let (cursor, pages) = run(&fake, None, t0, 10_000, &mut got);
        assert_eq!(got.len(), 25_100, "each record once");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), 25_100);
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            visible(&rows, t0)
        );
        assert!(pages <= 4, "{pages} pages");
        let max = rows.iter().map(|r| (r.0, r.1.clone())).max().unwrap();
        assert_eq!(
            cursor,
            Some(Key {
                created_on: servicenow_time(max.0),
                sys_id: max.1
            })
        );
    }

    #[test]
    fn a_refused_query_skips_its_table_for_this_run_without_retrying() {
        let resp = HttpResponse {
            status: 400,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"error":{"message":"Invalid table sys_audit_delete","detail":null},"status":"failure"}"#.to_vec(),
        };
        let err = read_page(&resp, 0).unwrap_err();
        assert_eq!(
            err,
            PageError::Rejected("Invalid table sys_audit_delete".into())
        );
        let mut pull = TablePull::new("sys_audit_delete", None, 0, 100);
        match pull.on_error(&err, 0.5, 20_000) {
            Recovery::SkipTable { code, detail } => {
                assert_eq!(code, "table_query_rejected");
                assert!(detail.contains("Invalid table"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pull.next_path(), None, "no second ask in this run");
        assert_eq!(pull.cursor, None, "the cursor stays where it was");
    }

    #[test]
    fn a_cursor_far_before_its_read_resumes_exactly_after_itself() {
        let t = 1_700_000_000;
        let k = Key {
            created_on: servicenow_time(t),
            sys_id: "ab".into(),
        };
        // Read a day later (a backfill): nothing before it can still commit.
        assert_eq!(resume_start(&k, t + 86_400, 0), k);
        // Read within the overlap of its time: late commits may land before it.
        let near = resume_start(&k, t + 30, 0);
        assert_eq!(near, Key::start_of(t + 30 - OVERLAP_SECS));
        assert!(near < k);
        assert_eq!(
            resume_start(&k, t + 30, t),
            Key::start_of(t),
            "never before the window"
        );
        let resumed =
            TablePull::new("sysevent", Some(k.clone()), 0, 100).with_read_at(Some(t + 86_400), 0);
        assert_eq!(resumed.after_key(), k);
        let legacy = TablePull::new("sysevent", Some(k.clone()), 0, 100).with_read_at(None, 0);
        assert_eq!(
            legacy.after_key(),
            run_start(Some(&k), 0),
            "no read time: the overlap before the cursor"
        );
    }

    #[test]
    fn late_commits_inside_the_overlap_are_found_by_the_next_run() {
        let t0 = 1_700_000_000;
        let mut rows: Vec<Row> = (0..300).map(|n| (t0 + n as i64, id(n), true)).collect();
        let mut stored = Vec::new();
        let (cursor, _) = run(&Fake::of(rows.clone()), None, t0, 100, &mut stored);
        // Committed now, stamped before the cursor: within the overlap, and
        // one in the cursor's own second with a lower sys_id.
        let last_t = t0 + 299;
        rows.push((last_t - 120, id(10_001), true));
        rows.push((last_t, "0".repeat(32), true));
        rows.extend((300..350).map(|n| (t0 + n as i64, id(n), true)));
        let (_, _) = run(&Fake::of(rows.clone()), cursor, t0, 100, &mut stored);
        let unique: BTreeSet<String> = stored.iter().cloned().collect();
        assert_eq!(unique, visible(&rows, t0), "nothing lost");
        // Re-reads of the overlap are duplicates the store ignores (keyed by sys_id).
        assert!(stored.len() > unique.len());
    }

    #[test]
    fn acl_trimmed_and_wholly_hidden_pages_are_stepped_over() {
        let t0 = 1_700_000_000;
        let rows: Vec<Row> = (0..5_000u64)
            .map(|n| {
                (
                    t0 + (n / 7) as i64,
                    id(n),
                    !(1_000..2_200).contains(&n) && n % 3 != 0,
                )
            })
            .collect();
        let mut got = Vec::new();
        run(&Fake::of(rows.clone()), None, t0, 500, &mut got);
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            visible(&rows, t0)
        );
        assert_eq!(got.len(), visible(&rows, t0).len());
    }

    #[test]
    fn adversarial_orders_of_insertion_give_the_same_result() {
        // Same rows inserted in different orders, with heavy ties.
        let t0 = 1_700_000_000;
        let base: Vec<Row> = (0..2_000u64)
            .map(|n| (t0 + (n % 13) as i64, id(n), true))
            .collect();
        let mut reversed = base.clone();
        reversed.reverse();
        let mut interleaved: Vec<Row> = base.iter().step_by(2).cloned().collect();
        interleaved.extend(base.iter().skip(1).step_by(2).cloned());
        for rows in [base.clone(), reversed, interleaved] {
            for limit in [1, 7, 100, 10_000] {
                let mut got = Vec::new();
                run(&Fake::of(rows.clone()), None, t0, limit, &mut got);
                assert_eq!(got.len(), 2_000, "limit {limit}");
                assert_eq!(
                    got.iter().cloned().collect::<BTreeSet<_>>(),
                    visible(&rows, t0)
                );
            }
        }
    }

    #[test]
    fn errors_recover_as_they_should() {
        let mut p = TablePull::new("sys_audit", None, 0, 10_000);
        assert_eq!(
            p.on_error(&PageError::Unauthorized, 0.0, 60_000),
            Recovery::Refresh
        );
        assert!(matches!(
            p.on_error(&PageError::Unauthorized, 0.0, 60_000),
            Recovery::Stop {
                code: ProblemCode::CredentialsRejected,
                ..
            }
        ));
        let mut p = TablePull::new("sys_audit", None, 0, 10_000);
        assert_eq!(
            p.on_error(&PageError::Cancelled, 0.0, 60_000),
            Recovery::RetryAfterMs(0)
        );
        assert_eq!(p.limit(), 5_000);
        assert!(p.next_path().unwrap().contains("sysparm_limit=5000"));
        assert_eq!(
            p.on_error(&PageError::RateLimited(2), 0.0, 60_000),
            Recovery::RetryAfterMs(2_000)
        );
        assert!(matches!(
            p.on_error(&PageError::RateLimited(3_600), 0.0, 60_000),
            Recovery::Defer {
                retry_in_secs: 3_600,
                ..
            }
        ));
        assert!(matches!(
            p.on_error(&PageError::Hibernating, 0.0, 60_000),
            Recovery::Stop {
                code: ProblemCode::InstanceHibernating,
                ..
            }
        ));
        let mut p = TablePull::new("sys_audit", None, 0, 10_000);
        let waits: Vec<Recovery> = (0..3)
            .map(|_| p.on_error(&PageError::Unavailable(503), 0.5, 600_000))
            .collect();
        assert_eq!(
            waits,
            vec![
                Recovery::RetryAfterMs(375),
                Recovery::RetryAfterMs(750),
                Recovery::RetryAfterMs(1_500)
            ]
        );
        assert!(backoff_ms(20, 0.99) <= 30_000);
    }

    #[test]
    fn queries_are_keyset_and_start_an_overlap_before_the_cursor() {
        let k = Key {
            created_on: "2026-11-20 10:00:00".into(),
            sys_id: "abc".into(),
        };
        assert_eq!(after_query(&k), "sys_created_on=2026-11-20 10:00:00^sys_id>abc^NQsys_created_on>2026-11-20 10:00:00^ORDERBYsys_created_on^ORDERBYsys_id");
        let start = run_start(Some(&k), 0);
        assert_eq!(
            start,
            Key {
                created_on: "2026-11-20 09:50:00".into(),
                sys_id: String::new()
            }
        );
        let floor = parse_servicenow_time("2026-11-20 09:55:00").unwrap();
        assert_eq!(run_start(Some(&k), floor).created_on, "2026-11-20 09:55:00");
        let path = page_path("sysevent", &start, 10_000, 0);
        assert!(path.starts_with(
            "/api/now/v2/table/sysevent?sysparm_query=sys_created_on%3E%3D2026-11-20+09%3A50%3A00"
        ));
        assert!(path.contains("sysparm_exclude_reference_link=true"));
    }

    /// The answer to a split's read of `fields`, for record `sys_id`.
    fn part(sys_id: &str, fields: &str, total: u64) -> PageHead {
        let mut record = serde_json::Map::new();
        record.insert("sys_id".into(), sys_id.into());
        record.insert("sys_created_on".into(), "2026-01-01 00:00:00".into());
        for f in fields.split(',').filter(|f| !KEY_FIELDS.contains(f)) {
            record.insert(f.into(), format!("value of {f}").into());
        }
        let body = serde_json::json!({ "result": [record] });
        let resp = HttpResponse {
            status: 200,
            headers: vec![("X-Total-Count".into(), total.to_string())],
            body: serde_json::to_vec(&body).unwrap(),
        };
        read_page(&resp, 0).unwrap()
    }

    #[test]
    fn a_split_halves_until_each_field_over_the_cap_is_alone_and_keeps_the_rest() {
        // sys_audit: 9 fields besides the key; oldvalue and newvalue are huge.
        let huge = ["oldvalue", "newvalue"];
        let mut split = FieldSplit::new("sys_audit");
        let mut reads = 0;
        let head = loop {
            reads += 1;
            assert!(reads <= 2 * 9, "at most two reads a field");
            let fields = split.fields();
            assert!(fields.starts_with("sys_id,sys_created_on"), "{fields}");
            let step = if huge.iter().any(|h| fields.split(',').any(|f| f == *h)) {
                split.on_too_large()
            } else {
                split.on_part(part("a1", &fields, 7))
            };
            match step {
                SplitStep::Next => continue,
                SplitStep::Done(head) => break head,
                SplitStep::Changed => panic!("the record did not change"),
            }
        };
        let mut truncated = head.truncated.clone();
        truncated.sort();
        assert_eq!(truncated, ["newvalue", "oldvalue"]);
        assert_eq!(head.total, Some(7));
        assert_eq!(head.last.as_ref().map(|k| k.sys_id.as_str()), Some("a1"));
        let events = head.events("c", "sys_audit");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].truncated_fields.len(), 2);
        for kept in ["tablename", "documentkey", "fieldname", "user", "reason"] {
            assert_eq!(
                events[0].raw.field(kept),
                Some(format!("value of {kept}")),
                "{kept}"
            );
        }
        assert_eq!(events[0].raw.field("oldvalue"), None);
    }

    #[test]
    fn a_split_starts_over_when_the_record_under_it_changes() {
        let mut split = FieldSplit::new("sysevent");
        let first = split.fields();
        assert!(matches!(
            split.on_part(part("a1", &first, 3)),
            SplitStep::Next
        ));
        // A late commit now sorts first: its key is not the record's.
        let second = split.fields();
        assert!(matches!(
            split.on_part(part("a0", &second, 4)),
            SplitStep::Changed
        ));
        // Gone (deleted) under the reads.
        let mut split = FieldSplit::new("sysevent");
        let empty = read_page(
            &HttpResponse {
                status: 200,
                headers: vec![],
                body: br#"{"result":[]}"#.to_vec(),
            },
            0,
        )
        .unwrap();
        assert!(matches!(split.on_part(empty), SplitStep::Changed));
        // Every field over the cap alone: the key is read by itself.
        let mut split = FieldSplit::new("sys_audit_delete");
        let mut steps = 0;
        let head = loop {
            steps += 1;
            assert!(steps < 20);
            let fields = split.fields();
            let step = if fields == "sys_id,sys_created_on" {
                split.on_part(part("a1", &fields, 1))
            } else {
                split.on_too_large()
            };
            match step {
                SplitStep::Next => {}
                SplitStep::Done(head) => break head,
                SplitStep::Changed => panic!("unchanged"),
            }
        };
        assert_eq!(head.truncated.len(), 4, "{:?}", head.truncated);
    }

    /// A page refused only for its weight in all (no record over the cap
    /// alone): once as many records as it asked for are read whole, the
    /// table is no longer isolating (no extra calls, no false note).
    #[test]
    fn isolating_ends_once_the_refused_pages_records_are_read_whole() {
        let page = |n: usize, from: usize| {
            let records: Vec<serde_json::Value> = (from..from + n)
                .map(|i| serde_json::json!({"sys_id": format!("{i:032x}"), "sys_created_on": "2026-01-01 00:00:00"}))
                .collect();
            let resp = HttpResponse {
                status: 200,
                headers: vec![("X-Total-Count".into(), "100000".into())],
                body: serde_json::to_vec(&serde_json::json!({ "result": records })).unwrap(),
            };
            read_page(&resp, 0).unwrap()
        };
        let mut pull = TablePull::new("sysevent", None, 0, 1_000).with_answer_cap(usize::MAX);
        assert!(!pull.isolating());
        assert_eq!(
            pull.on_error(&PageError::TooLarge, 0.0, 60_000),
            Recovery::RetryAfterMs(0)
        );
        assert!(pull.isolating());
        assert_eq!(pull.limit(), 500);
        pull.on_page(&page(500, 0));
        assert!(pull.isolating(), "half the refused page read");
        pull.on_page(&page(500, 500));
        assert!(
            !pull.isolating(),
            "the whole refused page read: it was heavy in all"
        );
        // A page of one record over the cap: halved to it, then read field
        // by field; isolating until that record is taken.
        let mut pull = TablePull::new("sysevent", None, 0, 4).with_answer_cap(usize::MAX);
        for _ in 0..3 {
            pull.on_error(&PageError::TooLarge, 0.0, 60_000);
        }
        assert_eq!(pull.limit(), 1);
        assert!(pull.isolating());
        assert!(
            pull.next_path()
                .is_some_and(|p| p.contains("sysparm_fields=sys_id%2Csys_created_on%2C")),
            "read field by field"
        );
    }
}
