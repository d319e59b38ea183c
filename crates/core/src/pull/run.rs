//! One pull run of one connection, as a state machine with no I/O and no
//! clock of its own (quinn-proto's shape): the host asks `poll(now_ms)` for
//! the next action, performs it, and hands the outcome back with
//! `handle_response` or `handle_stored`. Everything a run decides lives here:
//! the call and time budgets, one Batch API call or a call per table,
//! refreshing the token before it expires (and once for all tables when it
//! is refused), deferrals, smaller pages after a cancellation, which pages
//! to fetch while the previous one is stored, and when the next run is due.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::connect::input::{AuthMethod, OAuthClient};
use crate::http::{CallError, HttpRequest, HttpResponse};
use crate::problem::ProblemCode;
use crate::pull::cursor::{
    read_page, Key, PageError, PageHead, Recovery, TablePull, MAX_PAGE, OVERLAP_SECS,
};
use crate::pull::events::parse_servicenow_time;
use crate::pull::events::Event;
use crate::pull::own_calls::{CursorHold, OwnCall, OwnCalls, OwnFilter};
use crate::pull::schedule::PullInterval;
use crate::secret::{AccessToken, OpenedSecret, Password, RefreshToken, SecretKind};
use crate::servicenow::batch::{self, ReadRoute};
use crate::servicenow::instance_url::InstanceUrl;
use crate::servicenow::oauth;
use crate::servicenow::table::{self, ApiAuth, PULL_TABLES};
use crate::watch::inventory::{self, InventoryGate, SyncEnd};

/// A hibernating instance is tried again hourly.
pub const HIBERNATION_RETRY_SECS: i64 = 3_600;

/// Slices that failed inside the worker (its object's storage, the
/// archive, D1), not at the instance: each is a failed run in the history,
/// and this many in a row show on the connection as a warning.
pub const FAILED_SLICES_BEFORE_WARNING: u32 = 3;

/// When to try again after the `n`-th slice in a row (from 1) failed
/// inside the worker: `base_secs`, doubling, at most an hour. Pages stored
/// before the failure are kept; the next slice resumes at their cursor.
pub fn retry_after_failed_slice(n: u32, base_secs: i64) -> i64 {
    let doubling = 1i64 << n.saturating_sub(1).min(16);
    base_secs
        .max(1)
        .saturating_mul(doubling)
        .min(HIBERNATION_RETRY_SECS)
}

/// The worker's own error text (storage and archive errors carry no
/// secret), cut to what a run's detail or a warning shows.
fn slice_error(error: &str) -> String {
    error.chars().take(300).collect()
}

/// How a pull slice ended, as the run history shows it.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Caught up on every table.
    Done,
    /// The budget ran out with work left: the next alarm continues at once.
    More,
    /// Disabled, in error, or gone: nothing to do.
    Skipped,
    /// Stopped on a lasting problem (the connection is now in error).
    Failed,
    /// A passing problem (rate limit, outage): retried at `next`.
    Deferred,
    /// The connection was changed (reconnect, disable, delete) under the
    /// run: it stopped without writing the connection's state.
    Superseded,
}

impl RunOutcome {
    pub const ALL: [RunOutcome; 6] = [
        RunOutcome::Done,
        RunOutcome::More,
        RunOutcome::Skipped,
        RunOutcome::Failed,
        RunOutcome::Deferred,
        RunOutcome::Superseded,
    ];

    /// Whether the run history keeps a run that ended so: a skipped one
    /// (disabled, in error) did nothing worth a row.
    pub fn recorded(self) -> bool {
        self != RunOutcome::Skipped
    }

    pub fn parse(s: &str) -> Option<RunOutcome> {
        RunOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Done => "done",
            RunOutcome::More => "more",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Failed => "failed",
            RunOutcome::Deferred => "deferred",
            RunOutcome::Superseded => "superseded",
        }
    }
}

/// Whether a finished run found every table's backfill done (caught up to
/// the present once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackfillState {
    Done,
    Going,
}

impl BackfillState {
    pub fn of(caught_up: bool) -> BackfillState {
        if caught_up {
            BackfillState::Done
        } else {
            BackfillState::Going
        }
    }
}

/// The alarm of a connection that is not pulling (disabled, or in an error
/// only an admin can clear) still fires daily, to apply the retention.
pub const MAINTENANCE_SECS: i64 = 86_400;

/// When the pull after a slice that ended with `outcome` is due: at once
/// (one second) after the admin changed the connection under it, when the
/// run asked, or a maintenance day later.
pub fn next_pull_at(outcome: RunOutcome, asked: Option<i64>, now: i64) -> i64 {
    match (outcome, asked) {
        (RunOutcome::Superseded, _) => now + 1,
        (_, Some(at)) => at,
        (_, None) => now + MAINTENANCE_SECS,
    }
}

/// The detail of a run that failed inside the worker.
pub fn failed_slice_detail(error: &str) -> String {
    format!(
        "internal: the pull stopped inside the worker ({}); pages stored before it are kept and the next pull resumes after them",
        slice_error(error)
    )
}

/// What a slice that failed inside the worker means, after `before` such
/// slices in a row: the count to keep, the run's detail, the connection's
/// warning once there are enough, and when to try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedSlice {
    pub in_a_row: u32,
    pub detail: String,
    pub warning: Option<crate::connect::warning::Warning>,
    pub retry_in_secs: i64,
}

pub fn failed_slice(before: u32, error: &str, base_secs: i64) -> FailedSlice {
    let n = before.saturating_add(1);
    FailedSlice {
        in_a_row: n,
        detail: failed_slice_detail(error),
        warning: (n >= FAILED_SLICES_BEFORE_WARNING).then(|| pulls_failing_warning(n, error)),
        retry_in_secs: retry_after_failed_slice(n, base_secs),
    }
}

/// The warning shown after `n` failed slices in a row.
pub fn pulls_failing_warning(n: u32, error: &str) -> crate::connect::warning::Warning {
    let error = slice_error(error);
    crate::connect::warning::Warning {
        code: crate::connect::warning::WarningCode::PullsFailing,
        message: format!(
            "The last {n} pulls stopped inside the worker, not at the instance ({error}). \
             They are retried from the stored cursor, so no event is lost, and this warning \
             clears after the next pull that completes. If it stays, read the worker's log \
             (wrangler tail) and check the Durable Object's and R2's limits."
        ),
    }
}
/// Calls a run may add to its budget to get past a record over the answer
/// cap: the halvings down to it (14 from 10,000) and two reads a field.
pub const ISOLATING_CALLS: u32 = 40;

/// A token this close to its expiry is refreshed before it is used.
pub const REFRESH_SKEW_SECS: i64 = 60;

/// A run's limits, from the deployment's settings.
#[derive(Clone, Copy, Debug)]
pub struct PullConfig {
    pub budget_ms: u64,
    pub max_calls: u32,
    pub page_size: u32,
    /// The transport's cap on one answer (bytes): pages are sized to fill
    /// at most half of it.
    pub answer_cap: usize,
    /// Whether the instance has a Batch API (connect did not warn otherwise).
    pub route: ReadRoute,
    /// Whether the run brings the inventory up to now before its first page.
    pub inventory: InventoryFirst,
    /// Seconds from a caught-up run to the next.
    pub interval: PullInterval,
}

/// Whether a run syncs the inventory before it reads a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventoryFirst {
    /// Ask for it (`Action::SyncInventory`), and judge no page until it is
    /// read up to now (see `inventory::gate`).
    Sync,
    /// The run reads events only.
    Skip,
}

/// Where a table's pull stands in storage.
#[derive(Clone, Debug, Default)]
pub struct StoredCursor {
    pub cursor: Option<Key>,
    /// The page size a cancellation taught.
    pub page_size: Option<u32>,
    /// When the run that wrote the cursor started (unix seconds).
    pub read_at: Option<i64>,
    /// The table's backfill has reached the present once.
    pub caught_up: bool,
    /// The first backfill's total, once counted (see `Action::RememberTotal`).
    pub total: Option<u64>,
}

/// The credentials a run calls with.
#[derive(Clone, Debug)]
pub enum RunAuth {
    OAuth {
        client: OAuthClient,
        renewal: TokenRenewal,
        /// The stored access token and its expiry (unix seconds).
        access: Option<(AccessToken, i64)>,
    },
    Basic {
        username: String,
        password: Password,
    },
}

impl RunAuth {
    /// The credentials a run of a connection made with `method` calls with,
    /// from its opened secrets; `None` when one the method needs is not
    /// stored (the connection must be reconnected).
    pub fn from_stored(
        method: AuthMethod,
        username: &str,
        client_id: Option<&str>,
        secrets: Vec<OpenedSecret>,
    ) -> Option<RunAuth> {
        let (mut password, mut client_secret, mut refresh, mut access) = (None, None, None, None);
        for s in secrets {
            match s.kind {
                SecretKind::Password => password = Some(s.secret.into_kind()),
                SecretKind::ClientSecret => client_secret = Some(s.secret.into_kind()),
                SecretKind::RefreshToken => refresh = Some(s.secret.into_kind()),
                SecretKind::AccessToken => {
                    access = Some((s.secret.into_kind(), s.expires_at.unwrap_or(0)))
                }
            }
        }
        let client = client_id
            .zip(client_secret)
            .map(|(client_id, client_secret)| OAuthClient {
                client_id: client_id.to_string(),
                client_secret,
            });
        match (method, client, refresh, password) {
            (AuthMethod::Oauth, Some(client), Some(refresh), _) => Some(RunAuth::OAuth {
                client,
                renewal: TokenRenewal::RefreshToken(refresh),
                access,
            }),
            (AuthMethod::ClientCredentials, Some(client), _, _) => Some(RunAuth::OAuth {
                client,
                renewal: TokenRenewal::ClientCredentials,
                access,
            }),
            (AuthMethod::Basic, _, _, Some(password)) => Some(RunAuth::Basic {
                username: username.to_string(),
                password,
            }),
            _ => None,
        }
    }
}

/// How an OAuth connection gets its next access token.
#[derive(Clone, Debug)]
pub enum TokenRenewal {
    /// The password grant's refresh token.
    RefreshToken(RefreshToken),
    /// The client-credentials grant, asked again (it has no refresh token).
    ClientCredentials,
}

/// One page to archive and index, with the cursor it moves the table to.
#[derive(Debug)]
pub struct PageToStore {
    pub source: &'static str,
    /// Where the page was read from: with `cursor`, it names its archive object.
    pub before: Key,
    pub events: Vec<Event>,
    pub cursor: Option<Key>,
    /// The cursor a page of the connector's own calls left where it was
    /// (`own_calls::CursorHold`): written after all if the store finds a
    /// record of the page new (`cursor_to_write`).
    pub held: Option<Key>,
    /// `X-Total-Count` of a table's first page ever: the progress bar's total.
    pub total: Option<u64>,
    pub caught_up: bool,
    pub page_size: u32,
    /// The run's start (unix seconds): stored with the cursor, it tells the
    /// next run whether late commits can still land before the cursor.
    pub read_at: i64,
}

impl PageToStore {
    /// The cursor the store writes, given how many of the page's events it
    /// found new: a held cursor stays unwritten only while nothing is (an
    /// overlap's late commit needs the cursor's write and its recent keys,
    /// or the next pull would store it again).
    pub fn cursor_to_write(&self, fresh: usize) -> Option<&Key> {
        self.cursor
            .as_ref()
            .or(self.held.as_ref().filter(|_| fresh > 0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Caught up on every table.
    Done,
    /// The budget ran out with work left: the next run starts at once.
    More,
    /// A lasting problem: the connection goes to error.
    Failed,
    /// A passing problem: the next run is due at `next_at`.
    Deferred,
}

/// How a run ended and what the connection's row should say.
#[derive(Debug)]
pub struct RunEnd {
    pub outcome: Outcome,
    /// When the next run is due (`None`: only an admin's change restarts it).
    pub next_at: Option<i64>,
    pub caught_up: bool,
    /// For `Failed`: the problem code and its message.
    pub error: Option<(ProblemCode, String)>,
    /// What the health history shows.
    pub detail: Option<String>,
}

#[derive(Debug)]
pub enum Action {
    /// Send this; answer with `handle_response`.
    Send(HttpRequest),
    /// Send this, and poll again without waiting for the answer: it is the
    /// next page to read (of the table being stored, or the first page of
    /// the next table when this page is its table's last), fetched while
    /// this page is normalized and stored. Its answer goes to `handle_stored`.
    SendAhead(HttpRequest),
    /// Archive and index this page; then `handle_stored`, with the answer to
    /// the `SendAhead` before it, if there was one.
    Store(PageToStore),
    /// A refresh succeeded: keep these tokens (sealed). No answer.
    KeepTokens {
        access: AccessToken,
        expires_at: i64,
        /// A new refresh token, when ServiceNow sent one that differs.
        refresh: Option<RefreshToken>,
    },
    /// A cancellation taught this table a smaller page: keep it. No answer.
    RememberPageSize {
        source: &'static str,
        page_size: u32,
    },
    /// How many records a table's first backfill holds (the progress bar's
    /// total), known before its first page is read: keep it. No answer.
    RememberTotal { source: &'static str, total: u64 },
    /// Bring the inventory up to now (within its own call budget), starting
    /// from what the run's Batch API call already answered for it; answer
    /// with `handle_inventory`.
    SyncInventory(InventoryStart),
    /// Wait this long, then poll again.
    Sleep(u64),
    /// The run is over.
    Finish(RunEnd),
}

/// What a sync starts with.
#[derive(Debug)]
pub struct InventoryStart {
    pub auth: ApiAuth,
    pub answered: InventoryAnswers,
}

/// What the run's Batch API call brought for the sync's first reads
/// (`with_inventory_reads`).
#[derive(Debug, Default)]
pub enum InventoryAnswers {
    /// They did not ride (or the call was refused as unknown, or its token
    /// was): the sync makes its first call itself.
    #[default]
    NotAsked,
    /// As `Reads::answers` gives them: the served reads, or the whole
    /// call's failing answer (a rate limit, an outage, a web page).
    Answered(FirstAnswers),
    /// The call got no answer: the sync does not call again.
    Unreached,
}

/// What the sync reads first, as `Reads::answers` would give them.
pub type FirstAnswers = Result<Vec<(String, HttpResponse)>, HttpResponse>;

impl InventoryAnswers {
    /// The answers the sync starts from (`None`: it calls first), or how it
    /// ends at once: the run's call got no answer, and one unanswered call
    /// is not followed by another.
    pub fn first(self) -> Result<Option<FirstAnswers>, SyncEnd> {
        match self {
            InventoryAnswers::NotAsked => Ok(None),
            InventoryAnswers::Answered(answers) => Ok(Some(answers)),
            InventoryAnswers::Unreached => Err(SyncEnd::Failed),
        }
    }
}

/// Batch items of the inventory's reads carry this before their id.
const INVENTORY_ITEM: &str = "inventory:";

#[derive(Debug, PartialEq, Eq)]
enum Waiting {
    Nothing,
    Inventory,
    Batch,
    Page,
    Refresh,
    Stored,
}

/// A page whose next one is asked for before its records are normalized:
/// everything of its `PageToStore` but the events, still raw in `head`.
struct UnreadPage {
    head: PageHead,
    page: PageToStore,
}

impl Table {
    /// In its first backfill with no total stored yet (a run that ended
    /// before the table's first page does not count it again).
    fn counted_in_batch(&self) -> bool {
        !self.caught_up && self.first_ever && self.uncounted
    }
}

struct Table {
    pull: TablePull,
    /// The cursor as the run found it: a run that ends without moving any
    /// past it only read again what it had.
    found: Option<Key>,
    /// When the run that wrote `found` read it.
    found_read_at: Option<i64>,
    /// Pages of this table read in this run.
    pages: u32,
    first_ever: bool,
    first_page: bool,
    /// Its backfill reached the present once: the batch may carry its page.
    caught_up: bool,
    /// Its first backfill's total is not stored yet: the batch counts it.
    uncounted: bool,
    /// An answer already here: from the batch, or fetched during a store.
    ready: Option<Result<HttpResponse, CallError>>,
}

pub struct PullRun {
    instance: InstanceUrl,
    connection_id: String,
    config: PullConfig,
    auth: RunAuth,
    tables: Vec<Table>,
    current: usize,
    started_ms: u64,
    calls: u32,
    waiting: Waiting,
    /// The inventory sync is still to ask for (`InventoryFirst::Sync`).
    inventory_due: bool,
    /// A refused sync had its refresh: a second refusal ends the run.
    inventory_refreshed: bool,
    /// The sync's first reads, to ride in the run's Batch API call.
    inventory_reads: Vec<batch::BatchItem>,
    /// Which `syslog_transaction` records are the connector's own calls.
    own: Option<OwnFilter>,
    /// The calls this run made, for the next runs' filter.
    made: Vec<OwnCall>,
    /// Which of them is the page asked for ahead (`SendAhead`).
    ahead_call: Option<usize>,
    /// Their answers, once the batch brought them.
    inventory_answered: InventoryAnswers,
    /// They rode in the batch.
    inventory_rode: bool,
    batch_done: bool,
    /// The token was refused for the batch: refresh before the tables.
    refresh_first: bool,
    /// Actions decided, to hand out before anything else.
    queued: VecDeque<Action>,
    /// The page read before its `SendAhead`: stored at the next poll.
    unread: Option<UnreadPage>,
    /// The table the `SendAhead` in flight reads.
    ahead_for: Option<usize>,
    /// Pages read in this run.
    pages_read: u32,
    /// Records stored without their oversize fields in this run.
    truncated: u32,
    notes: Vec<String>,
    finished: bool,
}

impl PullRun {
    /// A run over `PULL_TABLES`, from their stored cursors.
    pub fn new(
        instance: InstanceUrl,
        connection_id: &str,
        config: PullConfig,
        auth: RunAuth,
        stored: &[(&str, StoredCursor)],
        backfill_from: i64,
        now_ms: u64,
    ) -> PullRun {
        let page_size = config.page_size.clamp(1, MAX_PAGE);
        let tables = PULL_TABLES
            .iter()
            .map(|source| {
                let found = stored.iter().find(|(t, _)| t == source).map(|(_, c)| c);
                let cursor = found.and_then(|c| c.cursor.clone());
                let learned = found.and_then(|c| c.page_size).filter(|p| *p > 0);
                let read_at = found.and_then(|c| c.read_at);
                Table {
                    found: cursor.clone(),
                    found_read_at: read_at,
                    pages: 0,
                    first_ever: cursor.is_none(),
                    first_page: true,
                    caught_up: found.is_some_and(|c| c.caught_up),
                    uncounted: found.and_then(|c| c.total).is_none(),
                    pull: TablePull::new(
                        source,
                        cursor,
                        backfill_from,
                        learned.map_or(page_size, |l| l.min(page_size)),
                    )
                    .with_read_at(read_at, backfill_from)
                    .with_answer_cap(config.answer_cap),
                    ready: None,
                }
            })
            .collect();
        PullRun {
            instance,
            connection_id: connection_id.to_string(),
            config,
            auth,
            tables,
            current: 0,
            started_ms: now_ms,
            calls: 0,
            waiting: Waiting::Nothing,
            inventory_due: config.inventory == InventoryFirst::Sync,
            inventory_refreshed: false,
            inventory_reads: Vec::new(),
            own: None,
            made: Vec::new(),
            ahead_call: None,
            inventory_answered: InventoryAnswers::NotAsked,
            inventory_rode: false,
            batch_done: false,
            refresh_first: false,
            queued: VecDeque::new(),
            unread: None,
            ahead_for: None,
            pages_read: 0,
            truncated: 0,
            notes: Vec::new(),
            finished: false,
        }
    }

    /// The inventory sync's first reads (`InventorySync::riding_items`): where
    /// the run reads by the Batch API, they ride in its one call, so a
    /// caught-up pull that finds nothing is one call in all.
    pub fn with_inventory_reads(mut self, items: Vec<batch::BatchItem>) -> Self {
        self.inventory_reads = items;
        self
    }

    /// The connection's `account` (its `sys_user.user_name`) and the calls
    /// it made lately (`own_calls`): their `syslog_transaction` records are
    /// not stored, so a pull after an idle one finds nothing.
    pub fn with_own_calls(mut self, account: &str, calls: &OwnCalls) -> Self {
        self.own = OwnFilter::new(account, calls);
        self
    }

    /// The calls to ServiceNow this run made (its token refreshes aside).
    pub fn made_calls(&self) -> &[OwnCall] {
        &self.made
    }

    /// The run's call `n` ended with `answer` (at `now_ms` when known): a
    /// 2xx keeps it as the connector's own, anything else drops it.
    fn call_ended(
        &mut self,
        n: Option<usize>,
        now_ms: Option<u64>,
        answer: &Result<HttpResponse, CallError>,
    ) {
        let kept = matches!(answer, Ok(r) if (200..300).contains(&r.status));
        let Some(call) = n.and_then(|n| self.made.get_mut(n)) else {
            return;
        };
        call.answered(now_ms.map(|ms| (ms / 1000) as i64), kept);
        let call = *call;
        if let (Some(own), Some(n)) = (&mut self.own, n) {
            own.set(n, call);
        }
    }

    /// A call leaves at `now_ms`: counted, and kept as the connector's own.
    fn sent(&mut self, req: HttpRequest, now_ms: u64) -> HttpRequest {
        self.calls += 1;
        let call = OwnCall::sent(&req.url, (now_ms / 1000) as i64);
        self.made.push(call);
        if let Some(own) = &mut self.own {
            own.add(call);
        }
        req
    }

    /// Whether the first Batch API call carries the inventory's reads.
    fn inventory_rides(&self) -> bool {
        self.inventory_due
            && !self.batch_done
            && !self.inventory_reads.is_empty()
            && self.config.route == ReadRoute::Batch
            && self.config.max_calls > 1
    }

    /// ServiceNow calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// How to call the instance without a refresh first: the stored token
    /// while it is not about to expire.
    pub fn ready_auth(&self, now_ms: u64) -> Option<ApiAuth> {
        if self.token_expiring(now_ms) {
            return None;
        }
        self.api_auth()
    }

    /// How to call the instance now (None: an OAuth run with no live token).
    pub fn api_auth(&self) -> Option<ApiAuth> {
        match &self.auth {
            RunAuth::OAuth {
                access: Some((token, _)),
                ..
            } => Some(ApiAuth::Bearer(token.clone())),
            RunAuth::OAuth { access: None, .. } => None,
            RunAuth::Basic { username, password } => Some(ApiAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
        }
    }

    /// An OAuth run whose token is missing or about to expire.
    fn token_expiring(&self, now_ms: u64) -> bool {
        let now = (now_ms / 1000) as i64;
        match &self.auth {
            RunAuth::OAuth { access, .. } => access
                .as_ref()
                .is_none_or(|(_, exp)| *exp - REFRESH_SKEW_SECS <= now),
            RunAuth::Basic { .. } => false,
        }
    }

    fn refresh_request(&mut self) -> Option<Action> {
        let RunAuth::OAuth {
            client, renewal, ..
        } = &self.auth
        else {
            return None;
        };
        let req = match renewal {
            TokenRenewal::RefreshToken(refresh) => {
                oauth::refresh_grant(&self.instance, client, refresh)
            }
            TokenRenewal::ClientCredentials => {
                oauth::client_credentials_grant(&self.instance, client)
            }
        };
        self.calls += 1;
        self.waiting = Waiting::Refresh;
        Some(Action::Send(req))
    }

    fn within_budget(&self, now_ms: u64) -> bool {
        self.calls < self.config.max_calls
            && now_ms.saturating_sub(self.started_ms) < self.config.budget_ms
    }

    /// Whether a run must stop asking for pages: out of calls, or out of
    /// time once it has read one (a slow batch that brought no page must
    /// not end run after run with nothing stored). A table narrowing a
    /// page over the answer cap to its oversize record gets up to
    /// `ISOLATING_CALLS` more calls and three times the time: a run that
    /// stopped half way would start the narrowing over, run after run.
    fn out_of_budget(&self, now_ms: u64) -> bool {
        let isolating = self
            .tables
            .get(self.current)
            .is_some_and(|t| t.pull.isolating());
        if !isolating {
            return self.calls >= self.config.max_calls
                || (self.pages_read > 0 && !self.within_budget(now_ms));
        }
        let elapsed = now_ms.saturating_sub(self.started_ms);
        self.calls >= self.config.max_calls.saturating_add(ISOLATING_CALLS)
            || elapsed >= self.config.budget_ms.saturating_mul(3)
    }

    /// A run out of budget that read pages but moved no cursor past where
    /// it found it: it read again the overlap kept for late commits (see
    /// `cursor::resume_start`), which holds more than a run reads. The next
    /// run at once would start at the same place and read the same pages,
    /// run after run, until the cursor leaves the overlap. So: when it
    /// leaves it (the cursor's second plus `OVERLAP_SECS`, never more than
    /// that from now: a cursor stamped in the future must not stop the
    /// pulls), for the table being read, if it read pages in this run;
    /// `None` when a cursor moved, or it has left already.
    fn rereading_until(&self, now: i64) -> Option<(&'static str, i64)> {
        let moved = self
            .tables
            .iter()
            .any(|t| t.pull.cursor.as_ref() > t.found.as_ref());
        let t = self.tables.get(self.current)?;
        if moved || t.pages == 0 {
            return None;
        }
        let cursor = parse_servicenow_time(&t.found.as_ref()?.created_on)?;
        let at = cursor.min(now) + OVERLAP_SECS + 1;
        let source = PULL_TABLES.get(self.current)?;
        (at > now).then_some((source, at))
    }

    fn detail(&self, lead: Option<String>) -> Option<String> {
        let mut parts: Vec<String> = lead.into_iter().collect();
        parts.extend(self.notes.iter().cloned());
        if self.truncated > 3 {
            parts.push(format!(
                "record_truncated: {} records in all were stored without their oversize fields.",
                self.truncated
            ));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    fn finish(&mut self, outcome: Outcome, next_at: Option<i64>, lead: Option<String>) -> Action {
        self.finished = true;
        if let Some(t) = self.tables.iter().find(|t| t.pull.isolating()) {
            self.notes.push(format!(
                "record_isolating: a {} page is over the answer cap; the run ended while narrowing it to the record that passes the cap alone, and the next run starts the narrowing again.",
                t.pull.source
            ));
        }
        Action::Finish(RunEnd {
            outcome,
            next_at,
            caught_up: outcome == Outcome::Done,
            error: None,
            detail: self.detail(lead),
        })
    }

    fn fail(&mut self, code: ProblemCode, message: String, retry_at: Option<i64>) -> Action {
        self.finished = true;
        Action::Finish(RunEnd {
            outcome: Outcome::Failed,
            next_at: retry_at,
            caught_up: false,
            error: Some((code, message.clone())),
            detail: self.detail(Some(message)),
        })
    }

    /// The next thing to do.
    pub fn poll(&mut self, now_ms: u64) -> Action {
        if let Some(a) = self.queued.pop_front() {
            return a;
        }
        if self.finished || self.waiting != Waiting::Nothing {
            // Out of turn: the host must answer first. Ending is safe.
            return self.finish(
                Outcome::Deferred,
                Some((now_ms / 1000) as i64 + 60),
                Some("the run was driven out of order".into()),
            );
        }
        if let Some(page) = self.unread.take() {
            return self.store(page);
        }
        let now = (now_ms / 1000) as i64;
        if self.refresh_first || (!self.batch_done && self.token_expiring(now_ms)) {
            self.refresh_first = false;
            if let Some(a) = self.refresh_request() {
                return a;
            }
        }
        // After any refresh (its tokens kept first), before any page: the
        // inventory's first reads and the tables' in one call, then the
        // sync from its answers (the pages wait for it).
        if self.inventory_rides() && !self.token_expiring(now_ms) {
            if let Some(auth) = self.api_auth() {
                self.batch_done = true;
                self.inventory_rode = true;
                let mut items: Vec<batch::BatchItem> = self
                    .inventory_reads
                    .iter()
                    .map(|(id, path)| (format!("{INVENTORY_ITEM}{id}"), path.clone()))
                    .collect();
                items.extend(self.batch_items());
                self.waiting = Waiting::Batch;
                let req = batch::request(&self.instance, &auth, "pull", &items);
                return Action::Send(self.sent(req, now_ms));
            }
        }
        if self.inventory_due && !self.token_expiring(now_ms) {
            self.inventory_due = false;
            if let Some(auth) = self.api_auth() {
                self.waiting = Waiting::Inventory;
                return Action::SyncInventory(InventoryStart {
                    auth,
                    answered: std::mem::take(&mut self.inventory_answered),
                });
            }
        }
        if !self.batch_done {
            self.batch_done = true;
            let items = self.batch_items();
            if self.config.route == ReadRoute::Batch && self.config.max_calls > 1 && items.len() > 1
            {
                if let Some(auth) = self.api_auth() {
                    self.waiting = Waiting::Batch;
                    let req = batch::request(&self.instance, &auth, "pull", &items);
                    return Action::Send(self.sent(req, now_ms));
                }
            }
        }
        while self.current < self.tables.len() {
            let i = self.current;
            if self.tables[i].pull.next_path().is_none() {
                self.current += 1;
                continue;
            }
            if let Some(answer) = self.tables[i].ready.take() {
                return self.on_answer(now_ms, answer);
            }
            if self.out_of_budget(now_ms) {
                return match self.rereading_until(now) {
                    Some((source, at)) => {
                        let lead = format!(
                            "The records of the last {} minutes on {source} are more than one run reads: this run read them again without passing its cursor. The next run starts after the cursor at {}, once nothing before it can still be committed late, instead of reading them again and again.",
                            OVERLAP_SECS / 60,
                            crate::clock::rfc3339(at)
                        );
                        self.finish(Outcome::Deferred, Some(at), Some(lead))
                    }
                    None => self.finish(Outcome::More, Some(now), None),
                };
            }
            if self.token_expiring(now_ms) {
                if let Some(a) = self.refresh_request() {
                    return a;
                }
            }
            let Some(auth) = self.api_auth() else {
                return self.fail(
                    ProblemCode::CredentialsRejected,
                    "No stored credentials. Reconnect.".into(),
                    None,
                );
            };
            let path = self.tables[i].pull.next_path().unwrap_or_default();
            self.waiting = Waiting::Page;
            let req = table::get(&self.instance, &path, &auth);
            return Action::Send(self.sent(req, now_ms));
        }
        self.finish(Outcome::Done, Some(now + self.config.interval.secs()), None)
    }

    /// The answer to the last `Send` (or the transport's failure).
    pub fn handle_response(&mut self, now_ms: u64, answer: Result<HttpResponse, CallError>) {
        if matches!(self.waiting, Waiting::Batch | Waiting::Page) {
            let call = self.made.len().checked_sub(1);
            self.call_ended(call, Some(now_ms), &answer);
        }
        let waiting = std::mem::replace(&mut self.waiting, Waiting::Nothing);
        match waiting {
            Waiting::Batch => self.on_batch(answer),
            Waiting::Page => {
                if let Some(t) = self.tables.get_mut(self.current) {
                    t.ready = Some(answer);
                }
            }
            Waiting::Refresh => {
                let action = self.on_refresh(now_ms, answer);
                if let Some(a) = action {
                    self.queued.push_back(a);
                }
            }
            Waiting::Nothing | Waiting::Stored | Waiting::Inventory => {}
        }
    }

    /// How the `SyncInventory` ended, and since when the inventory has been
    /// behind (kept by the host: the first sync that was not current). A
    /// run whose inventory is not read up to now reads no page: it ends, to
    /// go on at once when pages are left to sync, shortly after a
    /// failure; after `WAIT_FOR_INVENTORY_SECS` behind it pulls anyway and
    /// its detail says so.
    pub fn handle_inventory(&mut self, now_ms: u64, synced: SyncEnd, behind_since: Option<i64>) {
        if self.waiting != Waiting::Inventory {
            return;
        }
        self.waiting = Waiting::Nothing;
        let now = (now_ms / 1000) as i64;
        match synced {
            // A token refused: refreshed once, and the sync asked again.
            SyncEnd::Refused if !self.inventory_refreshed => {
                self.inventory_refreshed = true;
                let next = match self.refresh_request() {
                    Some(refresh) => {
                        self.inventory_due = true;
                        refresh
                    }
                    None => self.fail(
                        ProblemCode::CredentialsRejected,
                        "ServiceNow refused the stored user name and password. Reconnect with new credentials.".into(),
                        None,
                    ),
                };
                self.queued.push_back(next);
                return;
            }
            SyncEnd::Refused => {
                let end = self.fail(
                    ProblemCode::CredentialsRejected,
                    "ServiceNow refused a token it had just issued. Reconnect with new credentials.".into(),
                    None,
                );
                self.queued.push_back(end);
                return;
            }
            SyncEnd::Hibernating => {
                let end = self.fail(
                    ProblemCode::InstanceHibernating,
                    "The instance answered with a web page instead of JSON, as a hibernating instance does. Wake it; pulls resume by themselves.".into(),
                    Some(now + HIBERNATION_RETRY_SECS),
                );
                self.queued.push_back(end);
                return;
            }
            _ => {}
        }
        const WHY: &str = "Events are pulled once the accounts and roles are read up to now, so each is judged knowing who is an admin or inactive.";
        match inventory::gate(synced, behind_since, now) {
            InventoryGate::Current => {}
            InventoryGate::Stale { since } => self.notes.push(format!(
                "The accounts and roles could not be read up to now (behind since {}): this run's events were judged with the inventory as last read.",
                crate::clock::rfc3339(since)
            )),
            InventoryGate::Wait { retry_at } => {
                let wait = retry_at - now;
                let (outcome, lead) = match synced {
                    SyncEnd::Behind => (
                        Outcome::More,
                        "The accounts and roles are still being read; events are pulled once they are complete.".to_string(),
                    ),
                    SyncEnd::Throttled { wait_secs } => (
                        Outcome::Deferred,
                        format!("ServiceNow refused the inventory read for now (HTTP 429; it asks to wait {wait_secs} s): trying again in {wait} s. {WHY}"),
                    ),
                    _ => (
                        Outcome::Deferred,
                        format!("The instance is failing or not answering at the inventory read: trying again in {wait} s. {WHY}"),
                    ),
                };
                let end = self.finish(outcome, Some(retry_at), Some(lead));
                self.queued.push_back(end);
            }
        }
    }

    /// The page of the last `Store` is archived and indexed; `ahead` is
    /// the answer to the `SendAhead` before it, if one was sent.
    pub fn handle_stored(&mut self, ahead: Option<Result<HttpResponse, CallError>>) {
        if self.waiting == Waiting::Stored {
            self.waiting = Waiting::Nothing;
        }
        if let Some(t) = self.tables.get_mut(self.current) {
            t.first_page = false;
        }
        let reader = self.ahead_for.take().unwrap_or(self.current);
        let call = self.ahead_call.take();
        match &ahead {
            Some(answer) => self.call_ended(call, None, answer),
            // Never awaited (the run stopped before): it may have left a
            // record, or none; none is assumed, so nothing is dropped for it.
            None => self.call_ended(call, None, &Err(CallError::Failed(String::new()))),
        }
        if let (Some(t), Some(answer)) = (self.tables.get_mut(reader), ahead) {
            t.ready = Some(answer);
        }
    }

    /// What the run's one Batch API call asks. A caught-up table's next
    /// page comes in it: the few minutes since the last run, all six in one
    /// call. A table still backfilling would bring a whole page (a batch of
    /// six pages was 14 MB and a third of a second before the first store
    /// could start, with nothing to overlap it): its pages come one call at
    /// a time, each asked while the one before is stored, and the batch
    /// asks only the total of a table's first backfill, so the progress
    /// shows every table's count from the start.
    fn batch_items(&self) -> Vec<batch::BatchItem> {
        self.tables
            .iter()
            .filter_map(|t| {
                let path = if t.caught_up {
                    t.pull.next_path()
                } else if t.counted_in_batch() {
                    t.pull.count_path()
                } else {
                    None
                }?;
                Some((t.pull.source.clone(), path))
            })
            .collect()
    }

    fn on_batch(&mut self, answer: Result<HttpResponse, CallError>) {
        let refused = answer.as_ref().is_ok_and(|r| r.status == 401);
        let parsed = answer.as_ref().ok().and_then(batch::parse);
        if self.inventory_rode {
            self.inventory_answered = match (&answer, &parsed) {
                // Over the answer cap: the sync reads on its own.
                (Err(CallError::TooLarge { .. }), _) => InventoryAnswers::NotAsked,
                (Err(_), _) => InventoryAnswers::Unreached,
                (Ok(_), Some(_)) => InventoryAnswers::Answered(Ok(Vec::new())),
                // A refused token (refreshed first) or no Batch API (the
                // sync finds its way one read at a time): its own call.
                (Ok(r), None)
                    if r.status == 401
                        || (!crate::servicenow::answers::is_html(r)
                            && matches!(r.status, 400 | 404 | 405)) =>
                {
                    InventoryAnswers::NotAsked
                }
                (Ok(r), None) => InventoryAnswers::Answered(Err(r.clone())),
            };
        }
        let items = parsed.unwrap_or_default();
        let mut items_refused = false;
        let mut inventory = Vec::new();
        for (id, resp) in items {
            if let Some(read) = id.strip_prefix(INVENTORY_ITEM) {
                // Its own: a refusal there is the sync's to handle.
                inventory.push((read.to_string(), resp));
            } else if resp.status == 401 {
                // Left to the per-table calls, after one refresh.
                items_refused = true;
            } else if let Some(t) = self.tables.iter_mut().find(|t| t.pull.source == id) {
                // Nothing between the batch and its answer changes this.
                if !t.counted_in_batch() {
                    t.ready = Some(Ok(resp));
                    continue;
                }
                let total = (resp.status == 200)
                    .then(|| resp.header("x-total-count")?.trim().parse().ok())
                    .flatten();
                if let (Some(total), Some(source)) = (total, PULL_TABLES.iter().find(|s| **s == id))
                {
                    self.queued
                        .push_back(Action::RememberTotal { source, total });
                }
            }
        }
        if let InventoryAnswers::Answered(Ok(served)) = &mut self.inventory_answered {
            *served = inventory;
        }
        if (refused || items_refused) && matches!(self.auth, RunAuth::OAuth { .. }) {
            self.refresh_first = true;
            // Its answers were refused too: the sync reads with the new
            // token, not from them (which would refresh a second time).
            self.inventory_answered = InventoryAnswers::NotAsked;
        }
    }

    fn on_refresh(
        &mut self,
        now_ms: u64,
        answer: Result<HttpResponse, CallError>,
    ) -> Option<Action> {
        let now = (now_ms / 1000) as i64;
        let resp = match answer {
            Ok(r) => r,
            Err(_) => {
                return Some(self.finish(
                    Outcome::Deferred,
                    Some(now + 60),
                    Some("token endpoint unreachable".into()),
                ))
            }
        };
        match oauth::parse_token_response(&resp, now) {
            Ok(grant) => {
                let expires_at = grant.expires_at(now);
                let RunAuth::OAuth {
                    renewal, access, ..
                } = &mut self.auth
                else {
                    return None;
                };
                let new_refresh = match renewal {
                    TokenRenewal::RefreshToken(refresh) => {
                        let new = grant
                            .refresh_token
                            .filter(|r| r.expose() != refresh.expose());
                        if let Some(r) = &new {
                            *refresh = r.clone();
                        }
                        new
                    }
                    TokenRenewal::ClientCredentials => None,
                };
                *access = Some((grant.access_token.clone(), expires_at));
                Some(Action::KeepTokens {
                    access: grant.access_token,
                    expires_at,
                    refresh: new_refresh,
                })
            }
            Err(p) if p.is(ProblemCode::CredentialsRejected) => {
                let message = match &self.auth {
                    RunAuth::OAuth {
                        renewal: TokenRenewal::ClientCredentials,
                        ..
                    } => "ServiceNow refused the client credentials (the secret changed, the application or its user was deactivated, or the client-credentials grant was switched off). Reconnect with the current client secret; pulls resume from where they stopped.",
                    _ => "ServiceNow rejected the refresh token (expired, revoked, or the OAuth client changed). Reconnect with the user's password; pulls resume from where they stopped.",
                };
                Some(self.fail(ProblemCode::CredentialsRejected, message.into(), None))
            }
            Err(p) => Some(self.finish(
                Outcome::Deferred,
                Some(now + p.retry_after.unwrap_or(60) as i64),
                Some(format!("token refresh failed: {}", p.code)),
            )),
        }
    }

    /// A page's answer for the current table.
    fn on_answer(&mut self, now_ms: u64, answer: Result<HttpResponse, CallError>) -> Action {
        let now = (now_ms / 1000) as i64;
        let i = self.current;
        let source = PULL_TABLES[i];
        let page = match answer {
            Ok(resp) => read_page(&resp, now),
            Err(CallError::TooLarge { .. }) => Err(PageError::TooLarge),
            Err(CallError::Failed(_)) => Err(PageError::Unavailable(0)),
        };
        let page = match self.tables[i].pull.take_part(page) {
            Ok(Some(head)) => Ok(head),
            // A record read field by field has more to read.
            Ok(None) => return self.poll(now_ms),
            Err(e) => Err(e),
        };
        match page {
            Ok(head) => {
                self.pages_read += 1;
                self.tables[i].pages += 1;
                if !head.truncated.is_empty() {
                    self.truncated += 1;
                    if let (true, Some(key)) = (self.truncated <= 3, &head.last) {
                        self.notes.push(format!(
                            "record_truncated: {source}:{} was larger than the answer cap on its own; it is stored without {} (its event's truncated_fields).",
                            key.sys_id,
                            head.truncated.join(", ")
                        ));
                    }
                }
                let table = &mut self.tables[i];
                let before = table.pull.after_key();
                let cursor = table.pull.on_page(&head);
                let read_at = crate::pull::cursor::read_at_to_keep(
                    table.found.as_ref().zip(table.found_read_at),
                    cursor.as_ref(),
                    (self.started_ms / 1000) as i64,
                );
                // Kept with the page (`PageToStore::page_size`).
                let page = UnreadPage {
                    page: PageToStore {
                        source,
                        before,
                        events: Vec::new(),
                        cursor,
                        held: None,
                        total: (table.first_ever && table.first_page)
                            .then_some(head.total)
                            .flatten(),
                        caught_up: table.pull.done,
                        page_size: table.pull.page_size(),
                        read_at,
                    },
                    head,
                };
                // The next page is asked for before this one is normalized
                // and stored, when the budget allows it and the token is not
                // about to expire: the instance builds it meanwhile. After
                // a table's last page, the next table's first.
                let reader =
                    (i..self.tables.len()).find(|&j| self.tables[j].pull.next_path().is_some());
                let ahead = reader
                    .filter(|&j| self.tables[j].ready.is_none())
                    .filter(|_| self.within_budget(now_ms) && !self.token_expiring(now_ms))
                    .and_then(|j| {
                        let path = self.tables[j].pull.next_path()?;
                        Some((j, table::get(&self.instance, &path, &self.api_auth()?)))
                    });
                match ahead {
                    Some((j, req)) => {
                        self.unread = Some(page);
                        self.ahead_for = Some(j);
                        let req = self.sent(req, now_ms);
                        self.ahead_call = Some(self.made.len() - 1);
                        Action::SendAhead(req)
                    }
                    None => self.store(page),
                }
            }
            Err(err) => {
                let left = self
                    .config
                    .budget_ms
                    .saturating_sub(now_ms.saturating_sub(self.started_ms));
                // Jitter from the clock's low bits: deterministic under a
                // fake clock, spread enough between connections.
                let jitter = f64::from((now_ms % 1000) as u32) / 1000.0;
                let taught = self.tables[i].pull.page_size();
                match self.tables[i].pull.on_error(&err, jitter, left) {
                    Recovery::RetryAfterMs(ms) => {
                        let page_size = self.tables[i].pull.page_size();
                        if page_size != taught {
                            self.queued.push_back(Action::RememberPageSize { source, page_size });
                        }
                        if ms > 0 {
                            self.queued.push_back(Action::Sleep(ms));
                        }
                        self.poll_queued(now_ms)
                    }
                    Recovery::Refresh => match self.refresh_request() {
                        Some(a) => a,
                        None => self.fail(
                            ProblemCode::CredentialsRejected,
                            "ServiceNow refused the stored user name and password. Reconnect with new credentials.".into(),
                            None,
                        ),
                    },
                    Recovery::Stop { code, detail } => {
                        let retry = (code == ProblemCode::InstanceHibernating)
                            .then_some(now + HIBERNATION_RETRY_SECS);
                        self.fail(code, detail, retry)
                    }
                    Recovery::Defer {
                        retry_in_secs,
                        detail,
                    } => self.finish(
                        Outcome::Deferred,
                        Some(now + retry_in_secs as i64),
                        Some(detail),
                    ),
                    Recovery::SkipTable { code, detail } => {
                        self.notes.push(format!("{code}: {detail}"));
                        self.poll(now_ms)
                    }
                }
            }
        }
    }

    fn store(&mut self, UnreadPage { head, mut page }: UnreadPage) -> Action {
        page.events = head.events(&self.connection_id, page.source);
        if let Some(own) = &mut self.own {
            // A table's one page that reads to the present may leave its
            // cursor behind the connector's own young records (`CursorHold`).
            let table = self.tables.iter().find(|t| t.pull.source == page.source);
            let mut hold = table
                .filter(|t| t.pages == 1 && page.caught_up && page.cursor.is_some())
                .and_then(|t| CursorHold::new(t.found.as_ref()));
            page.events.retain(|e| {
                let mine = own.is_own(e);
                if let Some(hold) = &mut hold {
                    hold.saw(e, mine);
                }
                !mine
            });
            if hold.is_some_and(|h| h.holds((self.started_ms / 1000) as i64)) {
                page.held = page.cursor.take();
            }
        }
        self.waiting = Waiting::Stored;
        Action::Store(page)
    }

    fn poll_queued(&mut self, now_ms: u64) -> Action {
        match self.queued.pop_front() {
            Some(a) => a,
            None => self.poll(now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_run_but_a_skipped_one_is_recorded() {
        for outcome in RunOutcome::ALL {
            assert_eq!(outcome.recorded(), outcome != RunOutcome::Skipped);
        }
    }

    #[test]
    fn a_held_cursor_is_written_once_the_store_finds_a_record_of_the_page_new() {
        let key = |at: &str| Key {
            created_on: at.into(),
            sys_id: "x".into(),
        };
        let held = PageToStore {
            source: "syslog_transaction",
            before: key("2026-01-01 00:00:00"),
            events: Vec::new(),
            cursor: None,
            held: Some(key("2026-01-01 00:05:00")),
            total: None,
            caught_up: true,
            page_size: 100,
            read_at: 0,
        };
        assert_eq!(held.cursor_to_write(0), None, "only own calls: not written");
        // A late commit in the overlap, new to the index: the cursor and
        // its recent keys are written, so the next pull skips it.
        assert_eq!(held.cursor_to_write(1), held.held.as_ref());
        let moved = PageToStore {
            cursor: Some(key("2026-01-01 00:06:00")),
            held: None,
            ..held
        };
        assert_eq!(moved.cursor_to_write(0), moved.cursor.as_ref());
    }

    #[test]
    fn the_next_pull_is_what_the_run_asked_or_a_maintenance_day() {
        assert_eq!(next_pull_at(RunOutcome::Superseded, Some(500), 100), 101);
        assert_eq!(next_pull_at(RunOutcome::Done, Some(500), 100), 500);
        assert_eq!(
            next_pull_at(RunOutcome::Skipped, None, 100),
            100 + MAINTENANCE_SECS
        );
    }

    #[test]
    fn a_run_calls_with_what_its_method_needs_of_the_stored_secrets() {
        let opened = |kind, value: &str, expires_at| OpenedSecret {
            kind,
            secret: Secret::new(value),
            expires_at,
        };
        let stored = vec![
            opened(SecretKind::RefreshToken, "r", None),
            opened(SecretKind::AccessToken, "a", Some(99)),
            opened(SecretKind::ClientSecret, "s", None),
        ];
        match RunAuth::from_stored(AuthMethod::Oauth, "svc", Some("cid"), stored.clone()) {
            Some(RunAuth::OAuth {
                client,
                renewal: TokenRenewal::RefreshToken(r),
                access: Some((a, 99)),
            }) => {
                assert_eq!(
                    (client.client_id.as_str(), client.client_secret.expose()),
                    ("cid", "s")
                );
                assert_eq!((r.expose(), a.expose()), ("r", "a"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            RunAuth::from_stored(
                AuthMethod::ClientCredentials,
                "",
                Some("cid"),
                stored.clone()
            ),
            Some(RunAuth::OAuth {
                renewal: TokenRenewal::ClientCredentials,
                ..
            })
        ));
        // Without its client ID or a needed secret, nothing to call with.
        assert!(RunAuth::from_stored(AuthMethod::Oauth, "svc", None, stored.clone()).is_none());
        assert!(RunAuth::from_stored(AuthMethod::Basic, "svc", None, stored).is_none());
        match RunAuth::from_stored(
            AuthMethod::Basic,
            "svc",
            None,
            vec![opened(SecretKind::Password, "pw", None)],
        ) {
            Some(RunAuth::Basic { username, password }) => {
                assert_eq!((username.as_str(), password.expose()), ("svc", "pw"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_third_failed_slice_in_a_row_warns_and_each_waits_longer() {
        let first = super::failed_slice(0, "r2 down", 60);
        assert_eq!((first.in_a_row, first.retry_in_secs), (1, 60));
        assert!(first.warning.is_none());
        assert!(first.detail.starts_with("internal:"));
        let third = super::failed_slice(2, "r2 down", 60);
        assert_eq!((third.in_a_row, third.retry_in_secs), (3, 240));
        assert_eq!(
            third.warning.map(|w| w.code),
            Some(crate::connect::warning::WarningCode::PullsFailing)
        );
        assert_eq!(super::failed_slice(u32::MAX, "x", 60).in_a_row, u32::MAX);
    }

    #[test]
    fn failed_slices_back_off_to_an_hour_and_warn_with_the_count() {
        use super::{failed_slice_detail, pulls_failing_warning, retry_after_failed_slice};
        let waits: Vec<i64> = (1..=8).map(|n| retry_after_failed_slice(n, 60)).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_after_failed_slice(u32::MAX, 60), 3600);
        assert_eq!(retry_after_failed_slice(1, 0), 1);
        let w = pulls_failing_warning(3, &"x".repeat(1000));
        assert_eq!(w.code, crate::connect::warning::WarningCode::PullsFailing);
        assert!(w.message.starts_with("The last 3 pulls"));
        assert!(
            w.message.len() < 700,
            "the error is cut: {}",
            w.message.len()
        );
        let detail = failed_slice_detail(&"y".repeat(1000));
        assert!(detail.starts_with("internal: the pull stopped inside the worker (yyy"));
        assert!(detail.len() < 450, "the error is cut: {}", detail.len());
    }

    use super::*;
    use crate::pull::cursor::tests::{id, Fake, Row};
    use crate::pull::cursor::MIN_PAGE;
    use crate::secret::Secret;
    use crate::servicenow::instance_url::{parse, HostPolicy};
    use base64::Engine;
    use std::collections::{BTreeSet, HashMap, HashSet};

    const T0: i64 = 1_700_000_000;

    /// A fake instance: a Table API per pulled table, the Batch API, and the
    /// token endpoint, with the faults a run must meet.
    struct Instance {
        tables: HashMap<&'static str, Fake>,
        valid_tokens: HashSet<String>,
        refresh_ok: bool,
        grant_types: Vec<String>,
        token_requests: u32,
        page_requests: u32,
        /// One-record reads (a backfill's totals).
        counts: u32,
        retry_after: Option<u64>,
        cancel_above: Option<u32>,
        /// Answers longer than this many bytes pass the transport's cap.
        too_large_above: Option<usize>,
        /// (table, sys_id, field): an answer holding this record with this
        /// field passes the transport's cap, however few records it has.
        huge: Option<(&'static str, String, &'static str)>,
        /// (sys_id, bytes): this record comes with that much more JSON,
        /// heavy but under the cap alone.
        heavy: Option<(String, usize)>,
        hibernating: bool,
        basic_ok: bool,
        /// Logs every call it answers with a 2xx in `syslog_transaction`,
        /// under this account, as real instances do.
        logs_calls: Option<&'static str>,
        /// The instance's clock (unix seconds), for the log.
        now: i64,
    }

    impl Instance {
        fn new(per_table: u64) -> Instance {
            let tables = PULL_TABLES
                .iter()
                .enumerate()
                .map(|(t, name)| {
                    let rows: Vec<Row> = (0..per_table)
                        .map(|n| (T0 + (n / 3) as i64, id(n * 7 + t as u64), true))
                        .collect();
                    (*name, Fake::of(rows))
                })
                .collect();
            Instance {
                tables,
                valid_tokens: HashSet::from(["at-0".to_string()]),
                refresh_ok: true,
                grant_types: Vec::new(),
                token_requests: 0,
                page_requests: 0,
                counts: 0,
                retry_after: None,
                cancel_above: None,
                too_large_above: None,
                huge: None,
                heavy: None,
                hibernating: false,
                basic_ok: true,
                logs_calls: None,
                now: T0,
            }
        }

        /// A call's answer, logged when the instance logs its calls.
        fn answer(&mut self, req: &HttpRequest) -> HttpResponse {
            let a = self.serve(req);
            if let (Some(by), true) = (self.logs_calls, (200..300).contains(&a.status)) {
                let path = req.url.trim_start_matches("https://acme.service-now.com");
                self.log_transaction(by, path, self.now);
            }
            a
        }

        /// A `syslog_transaction` record at `at`; its sys_id.
        fn log_transaction(&mut self, by: &str, url: &str, at: i64) -> String {
            let log = self
                .tables
                .get_mut(crate::pull::own_calls::TRANSACTIONS)
                .unwrap();
            let sys_id = format!("tx{:06}", log.logged.len());
            log.rows.push((at, sys_id.clone(), true));
            log.logged
                .insert(sys_id.clone(), (by.to_string(), url.to_string()));
            sys_id
        }

        fn truth(&self) -> BTreeSet<(String, String)> {
            self.tables
                .iter()
                .flat_map(|(t, f)| f.rows.iter().map(move |r| (t.to_string(), r.1.clone())))
                .collect()
        }

        fn authorized(&self, req: &HttpRequest) -> bool {
            req.headers.iter().any(|(k, v)| {
                k == "Authorization"
                    && (v
                        .strip_prefix("Bearer ")
                        .is_some_and(|t| self.valid_tokens.contains(t))
                        || (v.starts_with("Basic ") && self.basic_ok))
            })
        }

        fn json(
            status: u16,
            body: serde_json::Value,
            headers: Vec<(&str, String)>,
        ) -> HttpResponse {
            let mut h: Vec<(String, String)> =
                vec![("Content-Type".into(), "application/json".into())];
            h.extend(headers.into_iter().map(|(k, v)| (k.to_string(), v)));
            HttpResponse {
                status,
                headers: h,
                body: serde_json::to_vec(&body).unwrap(),
            }
        }

        fn table(&mut self, path: &str) -> HttpResponse {
            self.page_requests += 1;
            if self.hibernating {
                return HttpResponse {
                    status: 200,
                    headers: vec![("Content-Type".into(), "text/html".into())],
                    body: b"<html>hibernating</html>".to_vec(),
                };
            }
            if let Some(secs) = self.retry_after {
                return Self::json(
                    429,
                    serde_json::json!({"error":{"message":"Too many"}}),
                    vec![("Retry-After", secs.to_string())],
                );
            }
            let limit = sysparm_limit(path);
            self.counts += u32::from(limit == 1);
            if self.cancel_above.is_some_and(|max| limit > max) {
                return Self::json(
                    500,
                    serde_json::json!({"error":{"message":"Transaction cancelled: maximum execution time exceeded"}}),
                    vec![],
                );
            }
            let name = path
                .split("/table/")
                .nth(1)
                .unwrap()
                .split('?')
                .next()
                .unwrap();
            match self.tables.get_mut(name) {
                Some(table) => table.answer(path),
                // The inventory's tables: read, with nothing new.
                None => Self::json(200, serde_json::json!({"result": []}), vec![]),
            }
        }

        /// The transport's view of an answer: a page of more records than
        /// `too_large_above` passes its cap and is not read.
        fn through_transport(
            &self,
            req: &HttpRequest,
            mut a: HttpResponse,
        ) -> Result<HttpResponse, CallError> {
            if let Some((sys_id, bytes)) = &self.heavy {
                let mut body: serde_json::Value =
                    serde_json::from_slice(&a.body).unwrap_or_default();
                if let Some(records) = body["result"].as_array_mut() {
                    for r in records
                        .iter_mut()
                        .filter(|r| r["sys_id"] == sys_id.as_str())
                    {
                        r["pad"] = "x".repeat(*bytes).into();
                    }
                    a.body = serde_json::to_vec(&body).unwrap();
                }
            }
            let path = req.url.trim_start_matches("https://acme.service-now.com");
            if let Some((table, sys_id, field)) = &self.huge {
                let asks_field =
                    form_urlencoded::parse(path.split_once('?').map_or("", |p| p.1).as_bytes())
                        .any(|(k, v)| k == "sysparm_fields" && v.split(',').any(|f| f == *field));
                if path.contains(&format!("/table/{table}?"))
                    && asks_field
                    && String::from_utf8_lossy(&a.body).contains(sys_id.as_str())
                {
                    return Err(CallError::TooLarge { cap: 1 });
                }
            }
            match self.too_large_above {
                Some(max) if path.contains("/table/") && a.body.len() > max => {
                    Err(CallError::TooLarge { cap: max })
                }
                _ => Ok(a),
            }
        }

        fn serve(&mut self, req: &HttpRequest) -> HttpResponse {
            let path = req.url.trim_start_matches("https://acme.service-now.com");
            if path == "/oauth_token.do" {
                self.token_requests += 1;
                let grant = form_urlencoded::parse(&req.body)
                    .find(|(k, _)| k == "grant_type")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                self.grant_types.push(grant);
                if !self.refresh_ok {
                    return Self::json(
                        401,
                        serde_json::json!({"error_description":"access_denied","error":"server_error"}),
                        vec![],
                    );
                }
                let token = format!("at-{}", self.token_requests);
                self.valid_tokens.insert(token.clone());
                return Self::json(
                    200,
                    serde_json::json!({"access_token": token, "refresh_token": "rt", "expires_in": 1799, "token_type": "Bearer"}),
                    vec![],
                );
            }
            if !self.authorized(req) {
                return Self::json(
                    401,
                    serde_json::json!({"error":{"message":"User Not Authenticated"}}),
                    vec![],
                );
            }
            if path == "/api/now/v1/batch" {
                let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                let served: Vec<serde_json::Value> = body["rest_requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| {
                        let a = self.table(item["url"].as_str().unwrap());
                        let headers: Vec<serde_json::Value> = a.headers.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect();
                        serde_json::json!({"id": item["id"], "status_code": a.status, "headers": headers,
                            "body": base64::engine::general_purpose::STANDARD.encode(&a.body)})
                    })
                    .collect();
                return Self::json(
                    200,
                    serde_json::json!({"serviced_requests": served, "unserviced_requests": []}),
                    vec![],
                );
            }
            self.table(path)
        }
    }

    /// What the host keeps between runs: cursors, page sizes, the index.
    #[derive(Default)]
    struct Host {
        cursors: HashMap<&'static str, StoredCursor>,
        index: BTreeSet<(String, String)>,
        archived: usize,
        tokens_kept: u32,
        /// Each table's backfill total, as the progress shows it.
        totals: HashMap<&'static str, u64>,
        /// Events stored without some fields: (id, raw, truncated_fields).
        truncated: Vec<(String, String, Vec<String>)>,
        /// Syncs that started from answers the run's batch brought.
        inventory_rode: u32,
        /// The inventory's first reads the runs are given.
        inventory_reads: Vec<batch::BatchItem>,
        /// Calls sent to the instance.
        sent: u32,
        /// The connection's account and its last calls (`OwnCalls`), kept
        /// from run to run as the object's schedule keeps them.
        own: Option<(&'static str, OwnCalls)>,
        /// Pages whose store moved a table's cursor, per table.
        cursor_moves: HashMap<&'static str, u32>,
    }

    fn config(max_calls: u32, use_batch: bool) -> PullConfig {
        PullConfig {
            budget_ms: 60_000,
            max_calls,
            page_size: 50,
            answer_cap: crate::http::SERVICENOW_ANSWER_CAP,
            route: if use_batch {
                ReadRoute::Batch
            } else {
                ReadRoute::OneByOne
            },
            inventory: InventoryFirst::Skip,
            // Not the default, so a test sees the configured one is used.
            interval: PullInterval::new(120).unwrap_or_default(),
        }
    }

    fn oauth(access_expires_at: i64) -> RunAuth {
        RunAuth::OAuth {
            client: OAuthClient {
                client_id: "cid".into(),
                client_secret: Secret::new("sec"),
            },
            renewal: TokenRenewal::RefreshToken(Secret::new("rt")),
            access: Some((Secret::new("at-0"), access_expires_at)),
        }
    }

    /// One run, driven as the worker drives it, on a fake clock.
    fn drive(
        inst: &mut Instance,
        host: &mut Host,
        clock: &mut u64,
        cfg: PullConfig,
        auth: RunAuth,
    ) -> RunEnd {
        let stored: Vec<(&str, StoredCursor)> =
            host.cursors.iter().map(|(k, v)| (*k, v.clone())).collect();
        let instance = parse("acme", &HostPolicy::default()).unwrap();
        let mut run = PullRun::new(instance, "c", cfg, auth, &stored, T0, *clock)
            .with_inventory_reads(host.inventory_reads.clone());
        if let Some((account, calls)) = &host.own {
            run = run.with_own_calls(account, calls);
        }
        // Answered when sent, handed back when the page is stored.
        let mut ahead = None;
        for _ in 0..100_000 {
            *clock += 10;
            inst.now = now_s(*clock);
            match run.poll(*clock) {
                Action::Send(req) => {
                    host.sent += 1;
                    let a = inst.answer(&req);
                    run.handle_response(*clock, inst.through_transport(&req, a));
                }
                Action::SendAhead(req) => {
                    host.sent += 1;
                    let a = inst.answer(&req);
                    ahead = Some(inst.through_transport(&req, a));
                }
                Action::Store(page) => {
                    host.archived += page.events.len();
                    host.truncated.extend(
                        page.events
                            .iter()
                            .filter(|e| !e.truncated_fields.is_empty())
                            .map(|e| {
                                (
                                    e.id.clone(),
                                    e.raw.as_str().to_string(),
                                    e.truncated_fields.clone(),
                                )
                            }),
                    );
                    for e in &page.events {
                        host.index.insert((
                            page.source.to_string(),
                            e.id.split_once(':').unwrap().1.to_string(),
                        ));
                    }
                    let entry = host.cursors.entry(page.source).or_default();
                    if page.cursor.is_some() && page.cursor != entry.cursor {
                        *host.cursor_moves.entry(page.source).or_default() += 1;
                    }
                    if page.cursor.is_some() {
                        entry.cursor = page.cursor.clone();
                        entry.read_at = Some(page.read_at);
                    }
                    entry.page_size = Some(page.page_size);
                    entry.caught_up |= page.caught_up;
                    if let Some(total) = page.total {
                        entry.total = Some(total);
                        host.totals.insert(page.source, total);
                    }
                    run.handle_stored(ahead.take());
                }
                Action::RememberTotal { source, total } => {
                    host.cursors.entry(source).or_default().total = Some(total);
                    host.totals.insert(source, total);
                }
                Action::KeepTokens { .. } => host.tokens_kept += 1,
                Action::RememberPageSize { source, page_size } => {
                    host.cursors.entry(source).or_default().page_size = Some(page_size)
                }
                Action::SyncInventory(start) => {
                    if matches!(start.answered, InventoryAnswers::Answered(_)) {
                        host.inventory_rode += 1;
                    }
                    run.handle_inventory(*clock, SyncEnd::Current, None)
                }
                Action::Sleep(ms) => *clock += ms,
                Action::Finish(end) => {
                    if let Some((_, calls)) = &mut host.own {
                        *calls = calls.merged(run.made_calls(), now_s(*clock));
                    }
                    return end;
                }
            }
        }
        panic!("the run never finished");
    }

    /// A run with a token good for days.
    fn drive_oauth(
        inst: &mut Instance,
        host: &mut Host,
        clock: &mut u64,
        cfg: PullConfig,
    ) -> RunEnd {
        drive(inst, host, clock, cfg, oauth(T0 + 10 * 86_400))
    }

    /// Runs after runs until one ends other than `More` (a backfill split
    /// over slices); that run's end.
    fn drive_past_more(
        inst: &mut Instance,
        host: &mut Host,
        clock: &mut u64,
        cfg: PullConfig,
    ) -> RunEnd {
        loop {
            let end = drive_oauth(inst, host, clock, cfg);
            if end.outcome != Outcome::More {
                return end;
            }
        }
    }

    fn now_s(clock: u64) -> i64 {
        (clock / 1000) as i64
    }

    /// A connection's first run over 120 records a table (pages of 50:
    /// 50, 50, then 20), a day after they were written.
    fn first_run(use_batch: bool) -> (Instance, PullRun, u64) {
        let instance = parse("acme", &HostPolicy::default()).unwrap();
        let clock = (T0 as u64 + 86_400) * 1000;
        let auth = oauth(T0 + 10 * 86_400);
        let run = PullRun::new(instance, "c", config(1000, use_batch), auth, &[], T0, clock);
        (Instance::new(120), run, clock)
    }

    #[test]
    fn the_next_page_is_asked_for_before_a_page_is_normalized_and_stored() {
        let (mut inst, mut run, clock) = first_run(false);
        let mut seen = Vec::new();
        let mut ahead = None;
        loop {
            match run.poll(clock) {
                Action::Send(req) => {
                    seen.push("send".to_string());
                    let answer = inst.answer(&req);
                    run.handle_response(clock, Ok(answer));
                }
                Action::SendAhead(req) => {
                    seen.push("ahead".into());
                    assert!(ahead.is_none(), "one call ahead at most");
                    ahead = Some(Ok(inst.answer(&req)));
                }
                Action::Store(page) => {
                    seen.push(format!("store {} {}", page.source, page.events.len()));
                    run.handle_stored(ahead.take());
                }
                Action::Finish(end) => {
                    assert_eq!(end.outcome, Outcome::Done, "{end:?}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        // Only the first page waits for its answer: a table's last page is
        // stored while the next table's first is fetched.
        let mut expected = vec!["send".to_string()];
        for (n, t) in PULL_TABLES.iter().enumerate() {
            expected.extend([
                "ahead".into(),
                format!("store {t} 50"),
                "ahead".into(),
                format!("store {t} 50"),
            ]);
            if n + 1 < PULL_TABLES.len() {
                expected.push("ahead".into());
            }
            expected.push(format!("store {t} 20"));
        }
        assert_eq!(seen, expected);
        assert_eq!(
            run.calls() as usize,
            3 * PULL_TABLES.len(),
            "each page asked once"
        );
        assert_eq!(inst.page_requests as usize, 3 * PULL_TABLES.len());
    }

    /// The paths a Batch API request asks, by item id.
    fn batch_paths(req: &HttpRequest) -> Vec<(String, String)> {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        body["rest_requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_string(),
                    i["url"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn sysparm_limit(path: &str) -> u32 {
        form_urlencoded::parse(path.split_once('?').unwrap().1.as_bytes())
            .find(|(k, _)| k == "sysparm_limit")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap()
    }

    #[test]
    fn a_first_backfill_batches_only_its_totals_and_pages_come_one_call_at_a_time() {
        let (mut inst, mut run, clock) = first_run(true);
        let mut totals = Vec::new();
        let mut seen = Vec::new();
        let mut ahead = None;
        loop {
            match run.poll(clock) {
                Action::Send(req) if req.url.ends_with("/batch") => {
                    let paths = batch_paths(&req);
                    assert_eq!(paths.len(), PULL_TABLES.len(), "{paths:?}");
                    assert!(
                        paths.iter().all(|(_, p)| sysparm_limit(p) == 1),
                        "a count, not a page: {paths:?}"
                    );
                    seen.push("batch".to_string());
                    let answer = inst.answer(&req);
                    run.handle_response(clock, Ok(answer));
                }
                Action::Send(req) => {
                    assert_eq!(sysparm_limit(&req.url), 50);
                    seen.push("send".into());
                    let answer = inst.answer(&req);
                    run.handle_response(clock, Ok(answer));
                }
                Action::RememberTotal { source, total } => {
                    assert!(
                        seen.iter().all(|s| !s.starts_with("store")),
                        "before any page"
                    );
                    totals.push((source, total));
                }
                Action::SendAhead(req) => {
                    assert!(ahead.is_none(), "one call ahead at most");
                    ahead = Some(Ok(inst.answer(&req)));
                }
                Action::Store(page) => {
                    seen.push(format!("store {}", page.events.len()));
                    run.handle_stored(ahead.take());
                }
                Action::Finish(end) => {
                    assert_eq!(end.outcome, Outcome::Done, "{end:?}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        let expected: Vec<(&str, u64)> = PULL_TABLES.iter().map(|t| (*t, 120)).collect();
        assert_eq!(totals, expected, "every table's total, from the start");
        assert_eq!(seen[..2], ["batch", "send"], "{seen:?}");
        assert_eq!(
            seen.len(),
            2 + 3 * PULL_TABLES.len(),
            "no other wait: {seen:?}"
        );
        assert_eq!(run.calls() as usize, 1 + 3 * PULL_TABLES.len());
    }

    #[test]
    fn a_batch_answered_after_the_time_budget_still_lets_the_run_store_a_page() {
        let (mut inst, mut run, mut clock) = first_run(true);
        let Action::Send(batch) = run.poll(clock) else {
            panic!("the batch first")
        };
        let answer = inst.answer(&batch);
        clock += 61_000; // past the run's 60 s
        run.handle_response(clock, Ok(answer));
        let mut stored = 0;
        loop {
            match run.poll(clock) {
                Action::RememberTotal { .. } => {}
                Action::Send(req) => {
                    let answer = inst.answer(&req);
                    run.handle_response(clock, Ok(answer));
                }
                Action::Store(page) => {
                    stored += page.events.len();
                    run.handle_stored(None);
                }
                Action::Finish(end) => {
                    assert_eq!(end.outcome, Outcome::More, "{end:?}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(stored, 50, "one page, then the budget ends the run");
    }

    /// More records in the last ten minutes than a run reads (a burst, all
    /// in one second): the run after the first reads the overlap again and
    /// cannot pass its cursor. It waits until the cursor leaves the overlap
    /// instead of reading the same pages run after run, then goes on.
    #[test]
    fn a_burst_larger_than_a_run_in_the_overlap_is_not_read_again_and_again() {
        let mut inst = Instance::new(0);
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let burst_at = now_s(clock) - 60;
        inst.tables
            .get_mut("sysevent")
            .unwrap()
            .rows
            .extend((0..3_000).map(|n| (burst_at, id(70_000 + n), true)));
        let cfg = PullConfig {
            page_size: 100,
            ..config(PULL_TABLES.len() as u32 + 3, false)
        };
        let mut host = Host::default();
        let mut ends = Vec::new();
        loop {
            let end = drive_oauth(&mut inst, &mut host, &mut clock, cfg);
            assert!(ends.len() < 150, "never done: {:?}", ends.last());
            let (outcome, next_at) = (end.outcome, end.next_at);
            if outcome == Outcome::Deferred {
                let at = next_at.expect("a deferral has a time");
                assert!(at > burst_at + OVERLAP_SECS, "{end:?}");
                assert!(end
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains("more than one run reads")));
                clock = clock.max(at as u64 * 1000);
            }
            ends.push(end);
            if outcome == Outcome::Done {
                break;
            }
        }
        assert_eq!(host.index, inst.truth(), "every record, once");
        let deferred = ends
            .iter()
            .filter(|e| e.outcome == Outcome::Deferred)
            .count();
        assert_eq!(deferred, 1, "one wait, until the burst left the overlap");
        assert!(
            inst.page_requests < 3_000 / 100 * 3,
            "{} page reads for 30 pages: read again at most twice",
            inst.page_requests
        );
    }

    /// The wait is only for a table that read its pages again in this
    /// run, and never longer than the overlap from now.
    #[test]
    fn only_a_table_that_read_its_overlap_again_waits_and_never_past_the_overlap() {
        let mut inst = Instance::new(0);
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let recent = now_s(clock) - 60;
        for (t, name) in PULL_TABLES.iter().enumerate() {
            inst.tables
                .get_mut(name)
                .unwrap()
                .rows
                .extend((0..5).map(|n| (recent, id(80_000 + n * 10 + t as u64), true)));
        }
        let mut host = Host::default();
        let end = drive_oauth(&mut inst, &mut host, &mut clock, config(1_000, false));
        assert_eq!(end.outcome, Outcome::Done);
        // One call: the first table's page again, then out of calls before
        // the second table read anything: that table has nothing to wait for.
        let end = drive_oauth(&mut inst, &mut host, &mut clock, config(1, false));
        assert_eq!(end.outcome, Outcome::More, "{end:?}");

        // A cursor stamped an hour ahead (an instance's clock off): a wait
        // of at most the overlap, not until that hour and ten minutes.
        let mut inst = Instance::new(0);
        let ahead = now_s(clock) + 3_600;
        inst.tables
            .get_mut("sysevent")
            .unwrap()
            .rows
            .extend((0..3_000).map(|n| (ahead, id(90_000 + n), true)));
        let mut host = Host::default();
        let cfg = PullConfig {
            page_size: 100,
            ..config(PULL_TABLES.len() as u32 + 3, false)
        };
        let mut waits = Vec::new();
        for _ in 0..6 {
            let end = drive_oauth(&mut inst, &mut host, &mut clock, cfg);
            if end.outcome == Outcome::Deferred {
                waits.push(end.next_at.unwrap() - now_s(clock));
            }
        }
        assert!(!waits.is_empty(), "the run reading its overlap again waits");
        assert!(waits.iter().all(|w| *w <= OVERLAP_SECS + 1), "{waits:?}");
    }

    #[test]
    fn a_backfill_split_over_many_runs_stores_every_record_once() {
        let mut inst = Instance::new(420);
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let mut outcomes = Vec::new();
        loop {
            let end = drive_oauth(&mut inst, &mut host, &mut clock, config(4, true));
            outcomes.push(end.outcome);
            assert!(outcomes.len() < 200, "the backfill never ends");
            if end.outcome == Outcome::Done {
                assert_eq!(end.next_at, Some(now_s(clock) + 120));
                assert!(end.caught_up);
                break;
            }
            assert_eq!(end.outcome, Outcome::More, "{end:?}");
            assert_eq!(
                end.next_at,
                Some(now_s(clock)),
                "the next slice starts at once"
            );
        }
        assert!(
            outcomes.len() > 5,
            "{} runs: the call budget splits the backfill",
            outcomes.len()
        );
        assert_eq!(host.index, inst.truth(), "every record, once");
        let expected: HashMap<&str, u64> = PULL_TABLES.iter().map(|t| (*t, 420)).collect();
        assert_eq!(host.totals, expected, "each table's backfill total");
        assert_eq!(
            inst.counts as usize,
            PULL_TABLES.len(),
            "each total counted once, though most tables' first pages came runs later"
        );
        // A caught-up run is one Batch API call, with every table's page.
        let before = inst.page_requests;
        let instance = parse("acme", &HostPolicy::default()).unwrap();
        let stored: Vec<(&str, StoredCursor)> =
            host.cursors.iter().map(|(k, v)| (*k, v.clone())).collect();
        let mut run = PullRun::new(
            instance,
            "c",
            config(4, true),
            oauth(T0 + 10 * 86_400),
            &stored,
            T0,
            clock,
        );
        match run.poll(clock) {
            Action::Send(req) => {
                let paths = batch_paths(&req);
                assert_eq!(paths.len(), PULL_TABLES.len());
                assert!(
                    paths.iter().all(|(_, p)| sysparm_limit(p) == 50),
                    "{paths:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        let end = drive_oauth(&mut inst, &mut host, &mut clock, config(4, true));
        assert_eq!(end.outcome, Outcome::Done);
        assert_eq!(
            inst.page_requests - before,
            PULL_TABLES.len() as u32,
            "one batch of six items"
        );
    }

    #[test]
    fn a_caught_up_pull_that_finds_nothing_is_one_call_with_the_inventorys_reads() {
        let mut inst = Instance::new(30);
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let sync = PullConfig {
            inventory: InventoryFirst::Sync,
            ..config(40, true)
        };
        drive_past_more(&mut inst, &mut host, &mut clock, sync);
        // Long after: nothing new, the overlap behind every cursor.
        clock += 3_600_000;
        host.inventory_reads = vec![(
            "sys_user_group".into(),
            "/api/now/table/sys_user_group?sysparm_limit=100".into(),
        )];
        host.sent = 0;
        let end = drive_oauth(&mut inst, &mut host, &mut clock, sync);
        assert_eq!(end.outcome, Outcome::Done, "{end:?}");
        assert_eq!(
            host.sent, 1,
            "the inventory's reads rode in the pull's batch"
        );
        assert_eq!(host.inventory_rode, 1);
        // Without a Batch API, the sync makes its own calls.
        host.sent = 0;
        let one_by_one = PullConfig {
            inventory: InventoryFirst::Sync,
            ..config(40, false)
        };
        drive_oauth(&mut inst, &mut host, &mut clock, one_by_one);
        assert_eq!(host.inventory_rode, 1, "nothing rode");
        assert_eq!(host.sent as usize, PULL_TABLES.len());
    }

    /// An instance that logs every call it answers, as real ones do: the
    /// pulls after the backfill read their predecessors' records, store
    /// none, and move `syslog_transaction`'s cursor (an object row) once
    /// every `HOLD_SECS`; a call under the account the connector did not
    /// make is stored.
    #[test]
    fn where_the_instance_logs_its_calls_idle_pulls_store_nothing_and_move_the_cursor_rarely() {
        use crate::pull::own_calls::{HOLD_SECS, TRANSACTIONS};
        let mut inst = Instance::new(30);
        inst.logs_calls = Some("svc");
        let mut host = Host {
            own: Some(("svc", OwnCalls::default())),
            ..Host::default()
        };
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let cfg = config(40, true);
        let end = drive_past_more(&mut inst, &mut host, &mut clock, cfg);
        assert_eq!(end.outcome, Outcome::Done, "{end:?}");
        assert_eq!(
            host.archived,
            30 * PULL_TABLES.len(),
            "the backfill's own calls are not stored"
        );
        let moves = |host: &Host| host.cursor_moves.get(TRANSACTIONS).copied().unwrap_or(0);
        let mut moved_at = Vec::new();
        for minute in 1..=20 {
            clock += 60_000;
            let before = moves(&host);
            host.sent = 0;
            let end = drive_oauth(&mut inst, &mut host, &mut clock, cfg);
            assert_eq!(end.outcome, Outcome::Done, "{end:?}");
            assert_eq!(host.sent, 1);
            if moves(&host) > before {
                moved_at.push(minute);
            }
        }
        assert_eq!(host.archived, 30 * PULL_TABLES.len(), "none of its calls");
        assert!((3..=4).contains(&moved_at.len()), "{moved_at:?}");
        assert!(
            moved_at.windows(2).all(|w| w[1] - w[0] == 5),
            "once every 5 pulls: {moved_at:?}"
        );
        let cursor = host.cursors[TRANSACTIONS].cursor.clone().unwrap();
        let cursor_at = parse_servicenow_time(&cursor.created_on).unwrap();
        assert!(
            cursor_at >= now_s(clock) - HOLD_SECS - 60,
            "never far behind"
        );
        // A batch call under the account half a minute after the last one:
        // not the connector's, stored by the next pull.
        let stranger = inst.log_transaction("svc", "/api/now/v1/batch", now_s(clock) + 30);
        clock += 60_000;
        drive_oauth(&mut inst, &mut host, &mut clock, cfg);
        assert!(host.index.contains(&(TRANSACTIONS.to_string(), stranger)));
        assert_eq!(host.archived, 30 * PULL_TABLES.len() + 1);
    }

    #[test]
    fn a_sync_starts_from_what_rode_calls_when_nothing_did_and_stops_when_the_call_got_no_answer() {
        assert_eq!(
            InventoryAnswers::NotAsked.first().map(|a| a.is_none()),
            Ok(true)
        );
        let rode = InventoryAnswers::Answered(Ok(Vec::new())).first();
        assert!(matches!(rode, Ok(Some(Ok(ref v))) if v.is_empty()));
        assert_eq!(
            InventoryAnswers::Unreached.first().err(),
            Some(SyncEnd::Failed)
        );
    }

    #[test]
    fn a_refused_token_is_refreshed_once_for_every_table() {
        let mut inst = Instance::new(30);
        inst.valid_tokens.clear(); // revoked: the batch is refused
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let end = drive_oauth(&mut inst, &mut host, &mut clock, config(40, true));
        assert_eq!(end.outcome, Outcome::Done, "{end:?}");
        assert_eq!(inst.token_requests, 1);
        assert_eq!(host.tokens_kept, 1);
        assert_eq!(host.index, inst.truth());
    }

    #[test]
    fn a_token_about_to_expire_is_refreshed_before_it_is_used() {
        let mut inst = Instance::new(10);
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let expiring = now_s(clock) + REFRESH_SKEW_SECS - 1;
        let end = drive(
            &mut inst,
            &mut host,
            &mut clock,
            config(40, true),
            oauth(expiring),
        );
        assert_eq!(end.outcome, Outcome::Done);
        assert_eq!(inst.token_requests, 1);
        assert_eq!(host.tokens_kept, 1);
    }

    #[test]
    fn client_credentials_are_granted_again_when_the_token_expires() {
        let mut inst = Instance::new(10);
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let auth = RunAuth::OAuth {
            client: OAuthClient {
                client_id: "cid".into(),
                client_secret: Secret::new("sec"),
            },
            renewal: TokenRenewal::ClientCredentials,
            access: Some((Secret::new("at-0"), now_s(clock) - 1)),
        };
        let end = drive(
            &mut inst,
            &mut host,
            &mut clock,
            config(40, true),
            auth.clone(),
        );
        assert_eq!(end.outcome, Outcome::Done);
        assert_eq!(inst.token_requests, 1);
        assert!(
            inst.grant_types.iter().all(|g| g == "client_credentials"),
            "{:?}",
            inst.grant_types
        );
        assert_eq!(host.index, inst.truth());

        inst.valid_tokens.clear();
        inst.refresh_ok = false;
        let end = drive(
            &mut inst,
            &mut Host::default(),
            &mut clock,
            config(40, true),
            auth,
        );
        assert_eq!(
            end.error.as_ref().map(|e| e.0),
            Some(ProblemCode::CredentialsRejected)
        );
        assert!(end.error.is_some_and(|e| e.1.contains("client secret")));
    }

    #[test]
    fn a_long_retry_after_defers_the_next_run_to_exactly_then() {
        let mut inst = Instance::new(10);
        inst.retry_after = Some(120);
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let end = drive_oauth(&mut inst, &mut host, &mut clock, config(40, false));
        assert_eq!(end.outcome, Outcome::Deferred);
        assert_eq!(end.next_at, Some(now_s(clock) + 120));
        assert!(end.detail.unwrap_or_default().contains("120 s"));
    }

    /// Drives a backfill of pages of 1,000 on `inst` to the end: every
    /// record stored, and every table's page size at most 300 afterwards.
    fn backfills_with_pages_of_at_most_300(mut inst: Instance) {
        let cfg = PullConfig {
            page_size: 1_000,
            ..config(400, false)
        };
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let end = drive_past_more(&mut inst, &mut host, &mut clock, cfg);
        assert_eq!(end.outcome, Outcome::Done, "{end:?}");
        assert_eq!(host.index, inst.truth());
        assert!(
            host.cursors
                .values()
                .all(|c| c.page_size.is_some_and(|p| p <= 300)),
            "the smaller size learned and kept"
        );
    }

    #[test]
    fn a_cancelled_page_is_asked_again_smaller_and_the_size_kept() {
        let mut inst = Instance::new(200);
        inst.cancel_above = Some(300);
        backfills_with_pages_of_at_most_300(inst);
    }

    /// A page too large for the transport's cap (a deployed isolate has
    /// 128 MB) is asked again smaller, as a cancelled one is, and nothing
    /// is lost: the cursor never waits on a page it cannot read.
    #[test]
    fn a_page_over_the_answer_cap_is_asked_again_smaller_and_the_size_kept() {
        // A record weighs about 100 bytes: 40 KB holds about 400, and a page
        // fills at most half of it.
        let cap = 40_000;
        let mut inst = Instance::new(400);
        inst.too_large_above = Some(cap);
        let cfg = PullConfig {
            page_size: 1_000,
            answer_cap: cap,
            ..config(400, false)
        };
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let end = drive_past_more(&mut inst, &mut host, &mut clock, cfg);
        assert_eq!(end.outcome, Outcome::Done, "{end:?}");
        assert_eq!(host.index, inst.truth());
        let sizes: Vec<Option<u32>> = host.cursors.values().map(|c| c.page_size).collect();
        assert!(
            sizes
                .iter()
                .all(|p| p.is_some_and(|p| (150..=250).contains(&p))),
            "a page fills half the cap, by what the records weigh: {sizes:?}"
        );
        // The next run asks pages of the kept size: none over the cap.
        let before = inst.page_requests;
        inst.tables
            .get_mut("sysevent")
            .unwrap()
            .rows
            .extend((0..150).map(|n| (T0 + 5_000, id(50_000 + n), true)));
        let end = drive_oauth(&mut inst, &mut host, &mut clock, cfg);
        assert_eq!(end.outcome, Outcome::Done, "{end:?}");
        assert_eq!(host.index, inst.truth());
        assert!(
            inst.page_requests - before <= 6 + 6,
            "{}",
            inst.page_requests - before
        );
    }

    /// A record too large for the cap on its own: the pages around it
    /// shrink until it is read alone, then field by field; it is stored
    /// without the field over the cap, named on its event and in the run's
    /// detail, the cursor moves past it, every other record is stored, and
    /// the table keeps a page size of at least `MIN_PAGE`.
    #[test]
    fn a_record_over_the_answer_cap_alone_is_stored_without_its_oversize_field() {
        let mut inst = Instance::new(300);
        let huge = inst.tables["sysevent"].rows[150].1.clone();
        inst.huge = Some(("sysevent", huge.clone(), "parm1"));
        let cfg = PullConfig {
            page_size: 1_000,
            ..config(400, false)
        };
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let mut ends = vec![drive_oauth(&mut inst, &mut host, &mut clock, cfg)];
        while ends.last().is_some_and(|e| e.outcome == Outcome::More) {
            ends.push(drive_oauth(&mut inst, &mut host, &mut clock, cfg));
        }
        let last = ends.last().unwrap();
        assert_eq!(last.outcome, Outcome::Done, "{ends:?}");
        assert_eq!(
            host.index,
            inst.truth(),
            "every record stored, the huge one too"
        );
        assert_eq!(host.truncated.len(), 1, "{:?}", host.truncated);
        let (id, raw, fields) = &host.truncated[0];
        assert_eq!(id, &format!("sysevent:{huge}"));
        assert_eq!(fields, &vec!["parm1".to_string()]);
        let raw: serde_json::Value = serde_json::from_str(raw).unwrap();
        assert_eq!(raw["sys_id"], huge.as_str());
        assert_eq!(raw["name"], "login", "the other fields are kept");
        assert!(raw.get("parm1").is_none());
        let details: Vec<String> = ends.iter().filter_map(|e| e.detail.clone()).collect();
        assert!(
            details
                .iter()
                .any(|d| d.contains("record_truncated") && d.contains(&huge)),
            "{details:?}"
        );
        assert!(
            host.cursors
                .values()
                .all(|c| c.page_size.is_none_or(|p| p >= MIN_PAGE)),
            "probing below {MIN_PAGE} is not kept: {:?}",
            host.cursors
                .values()
                .map(|c| c.page_size)
                .collect::<Vec<_>>()
        );
        // A later run reads the table again from its cursor, not the huge record.
        let before = inst.page_requests;
        let end = drive_oauth(&mut inst, &mut host, &mut clock, cfg);
        assert_eq!(end.outcome, Outcome::Done);
        assert!(inst.page_requests - before <= PULL_TABLES.len() as u32 * 2);
    }

    /// A record heavy enough to fill more than half the cap, but under it
    /// alone: read whole, and the table's pages are sized by their middle
    /// record, not by it (an average would shrink them for good).
    #[test]
    fn a_heavy_record_under_the_cap_does_not_shrink_the_tables_pages() {
        let cap = 40_000;
        let mut inst = Instance::new(400);
        let heavy = inst.tables["sysevent"].rows[150].1.clone();
        inst.heavy = Some((heavy, 25_000));
        inst.too_large_above = Some(cap);
        let cfg = PullConfig {
            page_size: 1_000,
            answer_cap: cap,
            ..config(400, false)
        };
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let end = drive_past_more(&mut inst, &mut host, &mut clock, cfg);
        assert_eq!(end.outcome, Outcome::Done, "{end:?}");
        assert_eq!(host.index, inst.truth());
        assert!(host.truncated.is_empty(), "it fits alone: stored whole");
        let kept = host.cursors["sysevent"].page_size;
        assert!(
            kept.is_some_and(|p| p >= 150),
            "sized by the middle record: {kept:?}"
        );
    }

    /// However few calls a run may make, a record over the cap is got past
    /// in one run: the narrowing takes its own few calls more.
    #[test]
    fn a_small_call_budget_still_gets_past_a_record_over_the_cap() {
        let mut inst = Instance::new(300);
        let huge = inst.tables["sysevent"].rows[200].1.clone();
        inst.huge = Some(("sysevent", huge.clone(), "parm1"));
        // A call for each table and one more: the narrowing (about 14
        // halvings and a few reads of fields) is far over it.
        let cfg = PullConfig {
            page_size: 10_000,
            ..config(PULL_TABLES.len() as u32 + 1, false)
        };
        let mut host = Host::default();
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let mut runs = 0;
        loop {
            runs += 1;
            assert!(
                runs < 200,
                "the record is never got past: {:?}",
                host.cursors
                    .get("sysevent")
                    .map(|c| (c.cursor.clone(), c.page_size))
            );
            let end = drive_oauth(&mut inst, &mut host, &mut clock, cfg);
            if end.outcome != Outcome::More {
                assert_eq!(end.outcome, Outcome::Done, "{end:?}");
                break;
            }
        }
        assert_eq!(host.index, inst.truth());
        assert_eq!(host.truncated.len(), 1);
        assert_eq!(host.truncated[0].0, format!("sysevent:{huge}"));
    }

    #[test]
    fn lasting_problems_fail_the_run_with_their_code() {
        let mut clock = (T0 as u64 + 86_400) * 1000;
        let mut inst = Instance::new(10);
        inst.valid_tokens.clear();
        inst.refresh_ok = false;
        let end = drive(
            &mut inst,
            &mut Host::default(),
            &mut clock,
            config(40, true),
            oauth(T0 + 10 * 86_400),
        );
        assert_eq!(end.outcome, Outcome::Failed);
        assert_eq!(
            end.error.map(|e| e.0),
            Some(ProblemCode::CredentialsRejected)
        );

        let mut inst = Instance::new(10);
        inst.hibernating = true;
        let end = drive(
            &mut inst,
            &mut Host::default(),
            &mut clock,
            config(40, false),
            oauth(T0 + 10 * 86_400),
        );
        assert_eq!(
            end.error.map(|e| e.0),
            Some(ProblemCode::InstanceHibernating)
        );
        assert_eq!(end.next_at, Some(now_s(clock) + HIBERNATION_RETRY_SECS));

        let basic = || RunAuth::Basic {
            username: "svc".into(),
            password: Secret::new("pw"),
        };
        let mut inst = Instance::new(10);
        let end = drive(
            &mut inst,
            &mut Host::default(),
            &mut clock,
            config(40, false),
            basic(),
        );
        assert_eq!(end.outcome, Outcome::Done, "basic needs no token");
        assert_eq!(inst.token_requests, 0);
        inst.basic_ok = false;
        inst.tables
            .get_mut("sysevent")
            .unwrap()
            .rows
            .push((T0 + 5_000, id(99_999), true));
        let end = drive(
            &mut inst,
            &mut Host::default(),
            &mut clock,
            config(40, false),
            basic(),
        );
        assert_eq!(end.outcome, Outcome::Failed);
        assert_eq!(
            end.error.map(|e| e.0),
            Some(ProblemCode::CredentialsRejected)
        );
        assert_eq!(inst.token_requests, 0, "basic has nothing to refresh");
    }

    fn syncing(auth: RunAuth) -> (Instance, PullRun, u64) {
        let clock = T0 as u64 * 1000;
        let instance = parse("acme", &HostPolicy::default()).unwrap();
        let cfg = PullConfig {
            inventory: InventoryFirst::Sync,
            ..config(1000, true)
        };
        let run = PullRun::new(instance, "c", cfg, auth, &[], T0, clock);
        (Instance::new(120), run, clock)
    }

    #[test]
    fn no_page_is_read_before_the_inventory_is_read_up_to_now() {
        // An expiring token: refreshed and kept first, then the sync with it.
        let (mut inst, mut run, clock) = syncing(oauth(T0 + 30));
        let Action::Send(refresh) = run.poll(clock) else {
            panic!("the refresh first")
        };
        assert!(refresh.url.ends_with("/oauth_token.do"), "{}", refresh.url);
        let a = inst.answer(&refresh);
        run.handle_response(clock, Ok(a));
        assert!(matches!(run.poll(clock), Action::KeepTokens { .. }));
        let Action::SyncInventory(start) = run.poll(clock) else {
            panic!("the inventory before any page")
        };
        assert_ne!(
            start.auth.header_value(),
            "Bearer at-0",
            "the refreshed token"
        );
        // It failed: the run ends without a page, to try again in a minute.
        run.handle_inventory(clock, SyncEnd::Failed, None);
        let Action::Finish(end) = run.poll(clock) else {
            panic!("the run ends")
        };
        assert_eq!(end.outcome, Outcome::Deferred);
        assert_eq!(
            end.next_at,
            Some(T0 + crate::watch::inventory::INVENTORY_RETRY_SECS)
        );
        assert_eq!(run.calls(), 1, "the refresh only");
        assert!(end.detail.unwrap().contains("accounts and roles"));

        // Pages left to sync: the next slice goes on at once.
        let (_, mut run, clock) = syncing(oauth(T0 + 86_400));
        assert!(matches!(run.poll(clock), Action::SyncInventory(_)));
        run.handle_inventory(clock, SyncEnd::Behind, Some(T0 - 60));
        let Action::Finish(end) = run.poll(clock) else {
            panic!("the run ends")
        };
        assert_eq!((end.outcome, end.next_at), (Outcome::More, Some(T0)));
        assert_eq!(run.calls(), 0);
    }

    #[test]
    fn a_current_inventory_lets_the_run_pull_and_a_stale_one_is_said() {
        let (_, mut run, mut clock) = syncing(oauth(T0 + 86_400));
        assert!(matches!(run.poll(clock), Action::SyncInventory(_)));
        run.handle_inventory(clock, SyncEnd::Current, Some(T0 - 600));
        let Action::Send(first) = run.poll(clock) else {
            panic!("the pull goes on")
        };
        assert!(first.url.ends_with("/batch"));

        // Behind for longer than the wait: events are pulled, and the run says so.
        let (mut inst, mut run, _) = syncing(oauth(T0 + 86_400));
        assert!(matches!(run.poll(clock), Action::SyncInventory(_)));
        let since = T0 - crate::watch::inventory::WAIT_FOR_INVENTORY_SECS;
        run.handle_inventory(clock, SyncEnd::Failed, Some(since));
        let mut stored = 0;
        let mut ahead = None;
        let end = loop {
            clock += 10;
            match run.poll(clock) {
                Action::Send(req) => {
                    let a = inst.answer(&req);
                    run.handle_response(clock, Ok(a));
                }
                Action::SendAhead(req) => ahead = Some(Ok(inst.answer(&req))),
                Action::Store(page) => {
                    stored += page.events.len();
                    run.handle_stored(ahead.take());
                }
                Action::Finish(end) => break end,
                _ => {}
            }
        };
        assert!(stored > 0, "{end:?}");
        assert!(end
            .detail
            .unwrap()
            .contains("judged with the inventory as last read"));
    }

    #[test]
    fn a_refused_inventory_read_costs_one_refresh_and_a_throttled_one_waits_as_asked() {
        let (mut inst, mut run, clock) = syncing(oauth(T0 + 86_400));
        assert!(matches!(run.poll(clock), Action::SyncInventory(_)));
        run.handle_inventory(clock, SyncEnd::Refused, None);
        let Action::Send(refresh) = run.poll(clock) else {
            panic!("a refresh")
        };
        assert!(refresh.url.ends_with("/oauth_token.do"));
        let a = inst.answer(&refresh);
        run.handle_response(clock, Ok(a));
        assert!(matches!(run.poll(clock), Action::KeepTokens { .. }));
        assert!(matches!(run.poll(clock), Action::SyncInventory(_)));
        // Refused again with the new token: the credentials are at fault.
        run.handle_inventory(clock, SyncEnd::Refused, None);
        let Action::Finish(end) = run.poll(clock) else {
            panic!("the run ends")
        };
        assert_eq!(end.outcome, Outcome::Failed);
        assert_eq!(end.error.unwrap().0, ProblemCode::CredentialsRejected);

        let (_, mut run, clock) = syncing(oauth(T0 + 86_400));
        assert!(matches!(run.poll(clock), Action::SyncInventory(_)));
        run.handle_inventory(clock, SyncEnd::Throttled { wait_secs: 120 }, None);
        let Action::Finish(end) = run.poll(clock) else {
            panic!("the run ends")
        };
        assert_eq!(
            (end.outcome, end.next_at),
            (Outcome::Deferred, Some(T0 + 120))
        );
        assert!(end.detail.unwrap().contains("120 s"));
    }
}
