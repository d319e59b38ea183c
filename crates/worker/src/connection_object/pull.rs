//! One pull slice of one connection, run by its Durable Object's alarm:
//! drives core's cursor with the transport, archives each page to R2, then
//! indexes it in the object. The connection's row in D1 is written only
//! through `Fence` (its generation): a reconnect, an enable or a disable
//! made while this slice runs cannot be overwritten by it.

use snc_core::archive;
use snc_core::batch;
use snc_core::cursor::{read_page, Key, PageError, Recovery, TablePull, MAX_PAGE};
use snc_core::events::{parse_servicenow_time, Event};
use snc_core::http::HttpResponse;
use snc_core::input::OAuthClient;
use snc_core::instance_url::InstanceUrl;
use snc_core::oauth;
use snc_core::problem::ProblemCode;
use snc_core::secret::Secret;
use snc_core::table::{self, ApiAuth, PULL_TABLES};
use worker::{console_log, Bucket, Env, Result};

use super::plane::{IndexEntry, Plane, StoredPage};
use crate::config::Config;
use crate::store::{ConnectionRow, Fence, Progress};
use crate::{now, now_ms, random_bytes, transport};

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
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

/// Seconds between scheduled pulls of a caught-up connection.
pub const INTERVAL_SECS: i64 = 300;
/// A hibernating instance is tried again hourly.
const HIBERNATION_RETRY_SECS: i64 = 3_600;
/// The connection's row gets the progress at most this often during a run.
const PROGRESS_EVERY_MS: u64 = 1_000;

/// What a slice decided: its outcome and when the next alarm should fire
/// (`None`: no pull until something changes).
pub struct SliceEnd {
    pub outcome: RunOutcome,
    pub next_at: Option<i64>,
}

impl SliceEnd {
    fn new(outcome: RunOutcome, next_at: Option<i64>) -> Self {
        SliceEnd { outcome, next_at }
    }
}

struct Credentials {
    username: String,
    password: Option<Secret>,
    oauth: Option<(OAuthClient, Secret)>,
    access: Option<(Secret, i64)>,
}

impl Credentials {
    fn auth(&self) -> Option<ApiAuth> {
        match (&self.access, &self.password) {
            (Some((token, _)), _) => Some(ApiAuth::Bearer(token.clone())),
            (None, Some(p)) => Some(ApiAuth::Basic {
                username: self.username.clone(),
                password: p.clone(),
            }),
            (None, None) => None,
        }
    }
}

fn env_number(env: &Env, name: &str, default: i64) -> i64 {
    env.var(name)
        .ok()
        .and_then(|v| v.to_string().trim().parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
pub struct RunStats {
    /// Where a run's wall time went, for the log line.
    pub fetch_ms: u64,
    pub parse_ms: u64,
    pub encode_ms: u64,
    pub archive_ms: u64,
    pub index_ms: u64,
    pub calls: u32,
    /// R2 PUTs (archive objects written).
    pub statements: usize,
    /// Writes to the connection's D1 row (progress, schedule, tokens).
    pub d1_writes: u32,
    pub events: u64,
    pub detail: Option<String>,
}

/// Everything one slice works with.
pub struct Slice<'a> {
    pub env: &'a Env,
    pub plane: &'a Plane,
    pub bucket: &'a Bucket,
    pub fence: &'a Fence,
    pub row: &'a ConnectionRow,
    /// Asked between steps: true once the connection is being deleted.
    pub stopping: &'a dyn Fn() -> bool,
    pub stats: RunStats,
    last_progress_ms: u64,
    call_deadline: std::time::Duration,
}

impl<'a> Slice<'a> {
    pub fn new(
        env: &'a Env,
        plane: &'a Plane,
        bucket: &'a Bucket,
        fence: &'a Fence,
        row: &'a ConnectionRow,
        stopping: &'a dyn Fn() -> bool,
    ) -> Self {
        Slice {
            env,
            plane,
            bucket,
            fence,
            row,
            stopping,
            stats: RunStats::default(),
            last_progress_ms: 0,
            call_deadline: Config::from_env(env).call_deadline,
        }
    }

    fn progress(&self, now: i64) -> Result<Progress> {
        Ok(Progress {
            at: now,
            event_count: self.plane.event_count()?,
            backfill_total: self.plane.backfill_total()?,
        })
    }

    /// Ends the slice: writes the schedule and progress to the row (fenced).
    async fn finish(
        &mut self,
        outcome: RunOutcome,
        next_at: i64,
        caught_up: bool,
    ) -> Result<SliceEnd> {
        let passing_error = self.row.status_code.as_deref() == Some("instance_hibernating");
        let progress = self.progress(now())?;
        self.stats.d1_writes += 1;
        let written = self
            .fence
            .finish_run(&progress, next_at, caught_up, passing_error || caught_up)
            .await?;
        if !written {
            return Ok(SliceEnd::new(RunOutcome::Superseded, None));
        }
        Ok(SliceEnd::new(outcome, Some(next_at)))
    }

    async fn fail(&mut self, code: &str, detail: &str, retry_at: Option<i64>) -> Result<SliceEnd> {
        self.stats.detail = Some(detail.to_string());
        self.stats.d1_writes += 1;
        let written = self.fence.set_error(code, detail, now(), retry_at).await?;
        Ok(if written {
            SliceEnd::new(RunOutcome::Failed, retry_at)
        } else {
            SliceEnd::new(RunOutcome::Superseded, None)
        })
    }

    /// Progress for the page and the list, at most once a second.
    async fn maybe_progress(&mut self) -> Result<bool> {
        if now_ms().saturating_sub(self.last_progress_ms) < PROGRESS_EVERY_MS {
            return Ok(true);
        }
        self.last_progress_ms = now_ms();
        self.stats.d1_writes += 1;
        let p = self.progress(now())?;
        self.fence.progress(&p).await
    }

    /// Archives one page's new events, then indexes them with the cursor.
    #[allow(clippy::too_many_arguments)] // one page and where it sits, spelled out
    async fn store_page(
        &mut self,
        source: &str,
        before: &Key,
        events: &[Event],
        cursor: Option<&Key>,
        total: Option<u64>,
        caught_up: bool,
        page_size: u32,
    ) -> Result<()> {
        // The overlap re-reads records the index has: only records at or
        // before the stored cursor's second can be among them.
        let stored_until = self
            .plane
            .cursors()?
            .into_iter()
            .find(|c| c.source_table == source)
            .and_then(|c| c.created_on)
            .and_then(|t| parse_servicenow_time(&t));
        let mut fresh: Vec<&Event> = Vec::with_capacity(events.len());
        let mut times = Vec::with_capacity(events.len());
        for e in events {
            let Some(at) = snc_core::clock::parse_rfc3339(&e.occurred_at) else {
                continue;
            };
            let sys_id = e.id.split_once(':').map_or(e.id.as_str(), |(_, s)| s);
            if stored_until.is_some_and(|until| at <= until)
                && self.plane.has_event(at, source, sys_id)?
            {
                continue;
            }
            fresh.push(e);
            times.push(at);
        }
        let t0 = now_ms();
        let to = cursor.cloned().unwrap_or_else(|| before.clone());
        let key = archive::page_key(&self.row.id, source, before, &to);
        let mut members = String::new();
        let mut bytes = 0;
        if !fresh.is_empty() {
            let owned: Vec<Event> = fresh.iter().map(|e| (*e).clone()).collect();
            let object = crate::archive::encode(&owned)?;
            self.stats.encode_ms += now_ms() - t0;
            bytes = object.bytes.len();
            members = object.members;
            // The object first: the index and the cursor only ever point at
            // archived events. Written again, the same key is overwritten.
            self.bucket.put(&key, object.bytes).execute().await?;
            self.stats.statements += 1;
        }
        self.stats.archive_ms += now_ms() - t0;
        if (self.stopping)() {
            return Ok(());
        }
        let t1 = now_ms();
        let entries = fresh
            .iter()
            .zip(&times)
            .map(|(e, at)| IndexEntry {
                occurred_at: *at,
                sys_id: e.id.split_once(':').map_or(e.id.as_str(), |(_, s)| s),
                kind: e.kind.as_str(),
                actor: e.actor.as_deref(),
            })
            .collect();
        let inserted = self.plane.store_page(&StoredPage {
            source_table: source,
            key: &key,
            bytes,
            members: &members,
            entries,
            cursor: cursor.map(|k| (k.created_on.as_str(), k.sys_id.as_str())),
            backfill_total: total,
            caught_up,
            page_size,
        })?;
        self.stats.index_ms += now_ms() - t1;
        self.stats.events += inserted;
        Ok(())
    }
}

/// Runs one slice of the connection's pulls.
pub async fn run(slice: &mut Slice<'_>) -> Result<SliceEnd> {
    let row = slice.row;
    let env = slice.env;
    let config = Config::from_env(env);
    let passing_error =
        row.status == "error" && row.status_code.as_deref() == Some("instance_hibernating");
    if row.enabled == 0.0 || (row.status != "connected" && !passing_error) {
        return Ok(SliceEnd::new(RunOutcome::Skipped, None));
    }
    let Some(key) = config.sealing_key.as_ref() else {
        slice.stats.detail = Some("ENCRYPTION_KEY is missing or wrong".into());
        return Ok(SliceEnd::new(
            RunOutcome::Deferred,
            Some(now() + INTERVAL_SECS),
        ));
    };
    let id = row.id.as_str();
    // The URL passed the policy at connect; check again in case it narrowed.
    let Ok(instance) = snc_core::input::check_instance_url(&row.instance_url, &config.policy)
    else {
        return slice
            .fail(
                "instance_url_forbidden",
                "The instance URL is no longer allowed by INSTANCE_HOSTS.",
                None,
            )
            .await;
    };
    let mut creds = Credentials {
        username: row.username.clone(),
        password: None,
        oauth: None,
        access: None,
    };
    let mut client_secret = None;
    let mut refresh = None;
    for s in slice.fence.store().secrets(id).await? {
        let opened = key.open(&s.sealed, &crate::sealing::context(id, &s.kind));
        let Ok(secret) = opened else {
            return slice.fail("credentials_rejected", "The stored credentials cannot be decrypted with the current ENCRYPTION_KEY. Reconnect.", None).await;
        };
        match s.kind.as_str() {
            "password" => creds.password = Some(secret),
            "client_secret" => client_secret = Some(secret),
            "refresh_token" => refresh = Some(secret),
            "access_token" => {
                let exp = s
                    .expires_at
                    .as_deref()
                    .and_then(snc_core::clock::parse_rfc3339)
                    .unwrap_or(0);
                creds.access = Some((secret, exp));
            }
            _ => {}
        }
    }
    if let (Some(secret), Some(rt), Some(client_id)) =
        (client_secret, refresh, row.client_id.clone())
    {
        creds.oauth = Some((
            OAuthClient {
                client_id,
                client_secret: secret,
            },
            rt,
        ));
    }
    let backfill_from =
        snc_core::clock::parse_rfc3339(&row.backfill_from).unwrap_or_else(|| now() - 7 * 86_400);
    let budget_ms = env_number(env, "PULL_BUDGET_MS", 20_000).max(1_000) as u64;
    let max_calls = env_number(env, "PULL_MAX_CALLS", 40).max(1) as u32;
    let page_size =
        env_number(env, "PULL_PAGE_SIZE", i64::from(MAX_PAGE)).clamp(1, i64::from(MAX_PAGE)) as u32;
    let started_ms = now_ms();
    let stored = slice.plane.cursors()?;

    let tables: Vec<(TablePull, bool)> = PULL_TABLES
        .iter()
        .map(|source| {
            let cursor_row = stored.iter().find(|c| c.source_table == *source);
            let cursor = cursor_row.and_then(|c| match (&c.created_on, &c.sys_id) {
                (Some(t), Some(s)) => Some(Key {
                    created_on: t.clone(),
                    sys_id: s.clone(),
                }),
                _ => None,
            });
            let first_ever = cursor.is_none();
            let learned = cursor_row
                .and_then(|c| c.page_size)
                .map(|p| p as u32)
                .filter(|p| *p > 0);
            let limit = learned.map_or(page_size, |l| l.min(page_size));
            (
                TablePull::new(source, cursor, backfill_from, limit),
                first_ever,
            )
        })
        .collect();

    // One Batch API call reads the next page of every table: a caught-up
    // connection costs one call per schedule instead of six, and a backfill
    // gets every table's first page at once. Anything but a readable batch
    // answer leaves those pages to the per-table calls below.
    let mut batched: Vec<Option<HttpResponse>> = PULL_TABLES.iter().map(|_| None).collect();
    let has_batch_api = !row.warnings.contains("table_access_unchecked");
    if has_batch_api && max_calls > 1 {
        if let Some(end) = refresh_if_expiring(slice, key, &instance, &mut creds).await? {
            return Ok(end);
        }
        let items: Vec<batch::BatchItem> = tables
            .iter()
            .zip(PULL_TABLES)
            .filter_map(|((pull, _), source)| Some((source.to_string(), pull.next_path()?)))
            .collect();
        if let (true, Some(auth)) = (items.len() > 1, creds.auth()) {
            slice.stats.calls += 1;
            let t0 = now_ms();
            let sent = transport::send_within(
                &batch::request(&instance, &auth, "pull", &items),
                config.call_deadline,
            )
            .await;
            slice.stats.fetch_ms += now_ms() - t0;
            let refused = sent.as_ref().is_ok_and(|r| r.status == 401);
            let mut items_refused = false;
            for (item, resp) in sent
                .ok()
                .as_ref()
                .and_then(batch::parse)
                .unwrap_or_default()
            {
                if resp.status == 401 {
                    // Left to the per-table calls, with the new token.
                    items_refused = true;
                } else if let Some(i) = PULL_TABLES.iter().position(|t| *t == item) {
                    batched[i] = Some(resp);
                }
            }
            // The token was refused for the batch or its items: one refresh
            // for all tables, rather than one per table as each meets its 401.
            if (refused || items_refused) && creds.oauth.is_some() {
                if let Some(end) = refresh_token(slice, key, &instance, &mut creds).await? {
                    return Ok(end);
                }
            }
        }
    }

    for (i, (mut pull, first_ever)) in tables.into_iter().enumerate() {
        let source = PULL_TABLES[i];
        let mut first_page = true;
        // The next page: from the batch, or fetched while the previous one
        // was being stored.
        let mut prefetched: Option<std::result::Result<HttpResponse, String>> =
            batched[i].take().map(Ok);
        while let Some(path) = pull.next_path() {
            if (slice.stopping)() {
                return Ok(SliceEnd::new(RunOutcome::Superseded, None));
            }
            let sent = match prefetched.take() {
                Some(sent) => sent,
                None => {
                    let elapsed = now_ms().saturating_sub(started_ms);
                    if slice.stats.calls >= max_calls || elapsed >= budget_ms {
                        return slice.finish(RunOutcome::More, now(), false).await;
                    }
                    if let Some(end) =
                        refresh_if_expiring(slice, key, &instance, &mut creds).await?
                    {
                        return Ok(end);
                    }
                    let Some(auth) = creds.auth() else {
                        return slice
                            .fail(
                                "credentials_rejected",
                                "No stored credentials. Reconnect.",
                                None,
                            )
                            .await;
                    };
                    slice.stats.calls += 1;
                    let t0 = now_ms();
                    let sent = transport::send_within(
                        &table::get(&instance, &path, &auth),
                        config.call_deadline,
                    )
                    .await;
                    slice.stats.fetch_ms += now_ms() - t0;
                    sent
                }
            };
            let t1 = now_ms();
            let page = match sent {
                Ok(resp) => read_page(id, source, &resp, now()),
                Err(_) => Err(PageError::Unavailable(0)),
            };
            slice.stats.parse_ms += now_ms() - t1;
            match page {
                Ok(page) => {
                    let before = pull.after_key();
                    let cursor = pull.on_page(&page);
                    let total = (first_ever && first_page).then_some(page.total).flatten();
                    // Fetch the next page while this one is stored, when the
                    // budget allows it and the token is not about to expire.
                    let next = pull.next_path().filter(|_| {
                        slice.stats.calls < max_calls
                            && now_ms().saturating_sub(started_ms) < budget_ms
                            && creds
                                .access
                                .as_ref()
                                .is_none_or(|(_, exp)| *exp - 60 > now())
                    });
                    let next =
                        next.and_then(|path| Some(table::get(&instance, &path, &creds.auth()?)));
                    let done = pull.done;
                    let limit = pull.limit();
                    if next.is_some() {
                        slice.stats.calls += 1;
                    }
                    let store = slice.store_page(
                        source,
                        &before,
                        &page.events,
                        cursor.as_ref(),
                        total,
                        done,
                        limit,
                    );
                    match next {
                        Some(req) => {
                            let (stored, sent) = futures_util::future::join(
                                store,
                                transport::send_within(&req, config.call_deadline),
                            )
                            .await;
                            prefetched = Some(sent);
                            stored?
                        }
                        None => store.await?,
                    };
                    if (slice.stopping)() || !slice.maybe_progress().await? {
                        return Ok(SliceEnd::new(RunOutcome::Superseded, None));
                    }
                    first_page = false;
                }
                Err(err) => {
                    let left = budget_ms.saturating_sub(now_ms().saturating_sub(started_ms));
                    let jitter =
                        f64::from(random_bytes::<1>().map(|b| b[0]).unwrap_or(128)) / 256.0;
                    match pull.on_error(&err, jitter, left) {
                        Recovery::RetryAfterMs(ms) => {
                            if err == PageError::Cancelled {
                                slice.plane.remember_page_size(source, pull.limit())?;
                            }
                            if ms > 0 {
                                worker::Delay::from(std::time::Duration::from_millis(ms)).await;
                            }
                        }
                        Recovery::Refresh => {
                            if creds.oauth.is_none() {
                                return slice.fail("credentials_rejected", "ServiceNow refused the stored user name and password. Reconnect with new credentials.", None).await;
                            }
                            if let Some(end) =
                                refresh_token(slice, key, &instance, &mut creds).await?
                            {
                                return Ok(end);
                            }
                        }
                        Recovery::Stop { code, detail } => {
                            // A hibernating instance comes back by itself: retry hourly.
                            let retry = (code == "instance_hibernating")
                                .then(|| now() + HIBERNATION_RETRY_SECS);
                            return slice.fail(code, &detail, retry).await;
                        }
                        Recovery::SkipTable { code, detail } => {
                            console_log!("pull {id}: {code}: {detail}");
                            let note = format!("{code}: {detail}");
                            slice.stats.detail = Some(match slice.stats.detail.take() {
                                Some(before) => format!("{before} {note}"),
                                None => note,
                            });
                        }
                        Recovery::Defer {
                            retry_in_secs,
                            detail,
                        } => {
                            slice.stats.detail = Some(detail);
                            let next = now() + retry_in_secs as i64;
                            let end = slice.finish(RunOutcome::Deferred, next, false).await?;
                            return Ok(end);
                        }
                    }
                }
            }
        }
    }
    slice
        .finish(RunOutcome::Done, now() + INTERVAL_SECS, true)
        .await
}

/// Refreshes a little before expiry rather than meet the 401.
async fn refresh_if_expiring(
    slice: &mut Slice<'_>,
    key: &snc_core::seal::SealingKey,
    instance: &InstanceUrl,
    creds: &mut Credentials,
) -> Result<Option<SliceEnd>> {
    match &creds.access {
        Some((_, exp)) if *exp - 60 <= now() => refresh_token(slice, key, instance, creds).await,
        _ => Ok(None),
    }
}

/// Gets a new access token with the refresh token. `Some(end)` ends the slice.
async fn refresh_token(
    slice: &mut Slice<'_>,
    key: &snc_core::seal::SealingKey,
    instance: &InstanceUrl,
    creds: &mut Credentials,
) -> Result<Option<SliceEnd>> {
    let Some((client, refresh)) = creds.oauth.clone() else {
        return Ok(None);
    };
    let id = slice.row.id.clone();
    slice.stats.calls += 1;
    let sent_at = now();
    let resp = match transport::send_within(
        &oauth::refresh_grant(instance, &client, &refresh),
        slice.call_deadline,
    )
    .await
    {
        Ok(r) => r,
        Err(_) => {
            slice.stats.detail = Some("token endpoint unreachable".into());
            let end = slice
                .finish(RunOutcome::Deferred, now() + 60, false)
                .await?;
            return Ok(Some(end));
        }
    };
    match oauth::parse_token_response(&resp, sent_at) {
        Ok(grant) => {
            let expires_at = grant.expires_at(sent_at);
            let seal = |kind, secret, exp| crate::sealing::seal(key, &id, kind, secret, exp);
            slice.stats.d1_writes += 1;
            let mut written = slice
                .fence
                .replace_secret(&seal(
                    "access_token",
                    &grant.access_token,
                    Some(expires_at),
                )?)
                .await?;
            if let Some(new_refresh) = &grant.refresh_token {
                if new_refresh != &refresh {
                    written &= slice
                        .fence
                        .replace_secret(&seal("refresh_token", new_refresh, None)?)
                        .await?;
                    creds.oauth = Some((client, new_refresh.clone()));
                }
            }
            if !written {
                return Ok(Some(SliceEnd::new(RunOutcome::Superseded, None)));
            }
            creds.access = Some((grant.access_token, expires_at));
            Ok(None)
        }
        Err(p) if p.is(ProblemCode::CredentialsRejected) => {
            let msg = "ServiceNow rejected the refresh token (expired, revoked, or the OAuth client changed). Reconnect with the user's password; pulls resume from where they stopped.";
            Ok(Some(slice.fail("credentials_rejected", msg, None).await?))
        }
        Err(p) => {
            slice.stats.detail = Some(format!("token refresh failed: {}", p.code));
            let next = now() + p.retry_after.unwrap_or(60) as i64;
            Ok(Some(slice.finish(RunOutcome::Deferred, next, false).await?))
        }
    }
}

/// The log line of a slice: where its time went.
pub fn log_line(id: &str, outcome: RunOutcome, s: &RunStats) {
    console_log!(
        "pull {id}: {} ({} calls, {} archive writes, {} d1 writes, {} new events; fetch {} ms, parse {} ms, archive {} ms ({} ms gzip), index {} ms, the next page's fetch overlapped)",
        outcome.as_str(),
        s.calls,
        s.statements,
        s.d1_writes,
        s.events,
        s.fetch_ms,
        s.parse_ms,
        s.archive_ms,
        s.encode_ms,
        s.index_ms
    );
}
