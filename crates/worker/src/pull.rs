//! Drives core's cursor with the transport and the store: one connection,
//! within a budget of wall time and calls, under a lease so two runs of one
//! connection never overlap. Every run's outcome is recorded; nothing here
//! returns an error to the queue (that would abort the isolate).

use serde::{Deserialize, Serialize};
use snc_core::batch;
use snc_core::cursor::{read_page, Key, PageError, Recovery, TablePull, MAX_PAGE};
use snc_core::events::Event;
use snc_core::http::HttpResponse;
use snc_core::input::OAuthClient;
use snc_core::instance_url::InstanceUrl;
use snc_core::oauth;
use snc_core::problem::ProblemCode;
use snc_core::secret::Secret;
use snc_core::table::{self, ApiAuth, PULL_TABLES};
use worker::{console_log, Env, Result};

use crate::config::Config;
use crate::store::{RunRecord, Store};
use crate::{now, now_ms, random_bytes, transport};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PullMessage {
    pub connection_id: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Caught up on every table.
    Done,
    /// The budget ran out with work left: queue another run.
    More,
    /// Another run holds the lease.
    Busy,
    /// Disabled, in error, or gone: nothing to do.
    Skipped,
    /// Stopped on a lasting problem (the connection is now in error).
    Failed,
    /// A passing problem (rate limit, outage): the next schedule tries again.
    Deferred,
}

impl RunOutcome {
    fn as_str(&self) -> &'static str {
        match self {
            RunOutcome::Done => "done",
            RunOutcome::More => "more",
            RunOutcome::Busy => "busy",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Failed => "failed",
            RunOutcome::Deferred => "deferred",
        }
    }
}

/// Minutes between scheduled pulls of a caught-up connection.
const INTERVAL_SECS: i64 = 300;

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

/// One event as the JSON array `Store::write_page` binds through
/// `json_each`, serialized once here (no intermediate `Value` tree).
fn event_row(e: &Event) -> String {
    let sys_id = e.id.split_once(':').map(|(_, id)| id).unwrap_or(&e.id);
    let t = e.target.as_ref();
    serde_json::to_string(&(
        sys_id,
        &e.occurred_at,
        e.kind.as_str(),
        &e.actor,
        &e.source_ip,
        t.and_then(|t| t.table.as_deref()),
        t.and_then(|t| t.record.as_deref()),
        t.and_then(|t| t.field.as_deref()),
        &e.old_value,
        &e.new_value,
        &e.raw,
    ))
    .unwrap_or_else(|_| "null".into())
}

/// Runs one pull of one connection and records its outcome.
pub async fn run(env: &Env, connection_id: &str) -> RunOutcome {
    // An operator's switch (maintenance, or tests of connect alone): queued
    // work is dropped and the cron finds it again once pulls resume.
    if env
        .var("PULLS_PAUSED")
        .is_ok_and(|v| v.to_string().trim() == "true")
    {
        return RunOutcome::Skipped;
    }
    let started = now();
    let store = match env.d1("DB") {
        Ok(db) => Store::new(db),
        Err(e) => {
            console_log!("pull {connection_id}: no database: {e}");
            return RunOutcome::Deferred;
        }
    };
    let holder = random_bytes::<8>()
        .map(|b| crate::hex(&b))
        .unwrap_or_else(|_| format!("h{}", now_ms()));
    let lease_secs = env_number(env, "LEASE_SECS", 120);
    let mut stats = RunStats::default();
    let outcome = match store
        .acquire_lease(connection_id, &holder, started, lease_secs)
        .await
    {
        Ok(true) => {
            let outcome = match pull_locked(env, &store, connection_id, &mut stats).await {
                Ok(o) => o,
                Err(e) => {
                    console_log!("pull {connection_id}: stopped by an internal error: {e}");
                    stats.detail =
                        Some("internal error; the next run starts again from the cursor".into());
                    RunOutcome::Deferred
                }
            };
            let _ = store.release_lease(connection_id, &holder).await;
            outcome
        }
        Ok(false) => {
            // Recorded too: the health history shows overlapping triggers.
            stats.detail = Some("another run holds the lease".into());
            RunOutcome::Busy
        }
        Err(e) => {
            console_log!("pull {connection_id}: lease failed: {e}");
            return RunOutcome::Deferred;
        }
    };
    if outcome != RunOutcome::Skipped {
        let _ = store
            .record_run(
                connection_id,
                &RunRecord {
                    started,
                    finished: now(),
                    outcome: outcome.as_str(),
                    detail: stats.detail.as_deref(),
                    events: stats.events,
                    calls: stats.calls,
                    statements: stats.statements,
                },
            )
            .await;
    }
    console_log!(
        "pull {connection_id}: {} ({} calls, {} statements, {} records; fetch {} ms, parse {} ms, rows {} ms, write {} ms, the next page's fetch overlapped)",
        outcome.as_str(),
        stats.calls,
        stats.statements,
        stats.events,
        stats.fetch_ms,
        stats.parse_ms,
        stats.rows_ms,
        stats.write_ms
    );
    outcome
}

#[derive(Default)]
struct RunStats {
    /// Where a run's wall time went, for the log line.
    fetch_ms: u64,
    parse_ms: u64,
    rows_ms: u64,
    write_ms: u64,
    calls: u32,
    statements: usize,
    events: u64,
    detail: Option<String>,
}

async fn pull_locked(
    env: &Env,
    store: &Store,
    id: &str,
    stats: &mut RunStats,
) -> Result<RunOutcome> {
    let config = Config::from_env(env);
    let Some(row) = store.get(id).await? else {
        return Ok(RunOutcome::Skipped);
    };
    let passing_error =
        row.status == "error" && row.status_code.as_deref() == Some("instance_hibernating");
    if row.enabled == 0.0 || (row.status != "connected" && !passing_error) {
        return Ok(RunOutcome::Skipped);
    }
    let Some(key) = config.sealing_key.as_ref() else {
        stats.detail = Some("ENCRYPTION_KEY is missing or wrong".into());
        return Ok(RunOutcome::Deferred);
    };
    // The URL passed the policy at connect; check again in case it narrowed.
    let Ok(instance) = snc_core::input::check_instance_url(&row.instance_url, &config.policy)
    else {
        store
            .set_error(
                id,
                "instance_url_forbidden",
                "The instance URL is no longer allowed by INSTANCE_HOSTS.",
                now(),
                None,
            )
            .await?;
        return Ok(RunOutcome::Failed);
    };
    let mut creds = Credentials {
        username: row.username.clone(),
        password: None,
        oauth: None,
        access: None,
    };
    let mut client_secret = None;
    let mut refresh = None;
    for s in store.secrets(id).await? {
        let opened = key.open(&s.sealed, &crate::sealing::context(id, &s.kind));
        let Ok(secret) = opened else {
            stats.detail = Some(format!(
                "the stored {} cannot be opened with ENCRYPTION_KEY (rotated?)",
                s.kind
            ));
            store.set_error(id, "credentials_rejected", "The stored credentials cannot be decrypted with the current ENCRYPTION_KEY. Reconnect.", now(), None).await?;
            return Ok(RunOutcome::Failed);
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
    let stored: Vec<_> = store.cursors(id).await?;

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
    // answer (no Batch API, a refused or cancelled batch, an unserviced item)
    // leaves those pages to the per-table calls below.
    let mut batched: Vec<Option<HttpResponse>> = PULL_TABLES.iter().map(|_| None).collect();
    let has_batch_api = !row.warnings.contains("table_access_unchecked");
    if has_batch_api && max_calls > 1 {
        if let Some(outcome) =
            refresh_if_expiring(store, id, key, &instance, &mut creds, stats).await?
        {
            return Ok(outcome);
        }
        let items: Vec<batch::BatchItem> = tables
            .iter()
            .zip(PULL_TABLES)
            .filter_map(|((pull, _), source)| Some((source.to_string(), pull.next_path()?)))
            .collect();
        if let (true, Some(auth)) = (items.len() > 1, creds.auth()) {
            stats.calls += 1;
            let t0 = now_ms();
            let sent = transport::send(&batch::request(&instance, &auth, "pull", &items)).await;
            stats.fetch_ms += now_ms() - t0;
            for (item, resp) in sent
                .ok()
                .as_ref()
                .and_then(batch::parse)
                .unwrap_or_default()
            {
                if let Some(i) = PULL_TABLES.iter().position(|t| *t == item) {
                    batched[i] = Some(resp);
                }
            }
        }
    }

    for (i, (mut pull, first_ever)) in tables.into_iter().enumerate() {
        let source = PULL_TABLES[i];
        let mut first_page = true;
        // The next page: from the batch, or fetched while the previous one
        // was being written.
        let mut prefetched: Option<std::result::Result<HttpResponse, String>> =
            batched[i].take().map(Ok);
        while let Some(path) = pull.next_path() {
            let sent = match prefetched.take() {
                Some(sent) => sent,
                None => {
                    let elapsed = now_ms().saturating_sub(started_ms);
                    if stats.calls >= max_calls || elapsed >= budget_ms {
                        return finish(store, id, false, passing_error, RunOutcome::More).await;
                    }
                    if let Some(outcome) =
                        refresh_if_expiring(store, id, key, &instance, &mut creds, stats).await?
                    {
                        return Ok(outcome);
                    }
                    let Some(auth) = creds.auth() else {
                        store
                            .set_error(
                                id,
                                "credentials_rejected",
                                "No stored credentials. Reconnect.",
                                now(),
                                None,
                            )
                            .await?;
                        return Ok(RunOutcome::Failed);
                    };
                    stats.calls += 1;
                    let t0 = now_ms();
                    let sent = transport::send(&table::get(&instance, &path, &auth)).await;
                    stats.fetch_ms += now_ms() - t0;
                    sent
                }
            };
            let t1 = now_ms();
            let page = match sent {
                Ok(resp) => read_page(id, source, &resp, now()),
                Err(_) => Err(PageError::Unavailable(0)),
            };
            stats.parse_ms += now_ms() - t1;
            match page {
                Ok(page) => {
                    let cursor = pull.on_page(&page);
                    let t2 = now_ms();
                    let rows: Vec<String> = page.events.iter().map(event_row).collect();
                    stats.rows_ms += now_ms() - t2;
                    let t2 = now_ms();
                    let total = (first_ever && first_page).then_some(page.total).flatten();
                    let write = store.write_page(
                        id,
                        source,
                        &rows,
                        cursor
                            .as_ref()
                            .map(|k| (k.created_on.as_str(), k.sys_id.as_str())),
                        total,
                        pull.done,
                        pull.limit(),
                    );
                    // Fetch the next page during the write when the budget
                    // allows it and the token is not about to expire; any
                    // other case goes round the loop and is handled there.
                    let next = pull.next_path().filter(|_| {
                        stats.calls < max_calls
                            && now_ms().saturating_sub(started_ms) < budget_ms
                            && creds
                                .access
                                .as_ref()
                                .is_none_or(|(_, exp)| *exp - 60 > now())
                    });
                    let next =
                        next.and_then(|path| Some(table::get(&instance, &path, &creds.auth()?)));
                    stats.statements += match next {
                        Some(req) => {
                            stats.calls += 1;
                            let (written, sent) =
                                futures_util::future::join(write, transport::send(&req)).await;
                            prefetched = Some(sent);
                            written?
                        }
                        None => write.await?,
                    };
                    stats.write_ms += now_ms() - t2;
                    stats.events += page.events.len() as u64;
                    first_page = false;
                }
                Err(err) => {
                    let left = budget_ms.saturating_sub(now_ms().saturating_sub(started_ms));
                    let jitter =
                        f64::from(random_bytes::<1>().map(|b| b[0]).unwrap_or(128)) / 256.0;
                    match pull.on_error(&err, jitter, left) {
                        Recovery::RetryAfterMs(ms) => {
                            if err == PageError::Cancelled {
                                store.remember_page_size(id, source, pull.limit()).await?;
                                stats.statements += 1;
                            }
                            if ms > 0 {
                                worker::Delay::from(std::time::Duration::from_millis(ms)).await;
                            }
                        }
                        Recovery::Refresh => {
                            if creds.oauth.is_none() {
                                store.set_error(id, "credentials_rejected", "ServiceNow refused the stored user name and password. Reconnect with new credentials.", now(), None).await?;
                                stats.detail = Some("basic credentials refused".into());
                                return Ok(RunOutcome::Failed);
                            }
                            if let Some(outcome) =
                                refresh_token(store, id, key, &instance, &mut creds, stats).await?
                            {
                                return Ok(outcome);
                            }
                        }
                        Recovery::Stop { code, detail } => {
                            // A hibernating instance comes back by itself: retry hourly.
                            let retry = (code == "instance_hibernating").then(|| now() + 3_600);
                            store.set_error(id, code, &detail, now(), retry).await?;
                            stats.detail = Some(detail);
                            return Ok(RunOutcome::Failed);
                        }
                        Recovery::Defer {
                            retry_in_secs,
                            detail,
                        } => {
                            stats.detail = Some(detail);
                            store
                                .finish_run(id, now(), now() + retry_in_secs as i64, false, false)
                                .await?;
                            return Ok(RunOutcome::Deferred);
                        }
                    }
                }
            }
        }
    }
    finish(store, id, true, passing_error, RunOutcome::Done).await
}

/// Every table caught up: the backfill is done and the next pull is a
/// schedule away; otherwise the next run is queued at once.
async fn finish(
    store: &Store,
    id: &str,
    caught_up: bool,
    passing_error: bool,
    outcome: RunOutcome,
) -> Result<RunOutcome> {
    let next = if caught_up {
        now() + INTERVAL_SECS
    } else {
        now()
    };
    store
        .finish_run(id, now(), next, caught_up, passing_error || caught_up)
        .await?;
    Ok(outcome)
}

/// Refreshes a little before expiry rather than meet the 401.
async fn refresh_if_expiring(
    store: &Store,
    id: &str,
    key: &snc_core::seal::SealingKey,
    instance: &InstanceUrl,
    creds: &mut Credentials,
    stats: &mut RunStats,
) -> Result<Option<RunOutcome>> {
    match &creds.access {
        Some((_, exp)) if *exp - 60 <= now() => {
            refresh_token(store, id, key, instance, creds, stats).await
        }
        _ => Ok(None),
    }
}

/// Gets a new access token with the refresh token. `Some(outcome)` ends the run.
async fn refresh_token(
    store: &Store,
    id: &str,
    key: &snc_core::seal::SealingKey,
    instance: &InstanceUrl,
    creds: &mut Credentials,
    stats: &mut RunStats,
) -> Result<Option<RunOutcome>> {
    let Some((client, refresh)) = creds.oauth.clone() else {
        return Ok(None);
    };
    stats.calls += 1;
    let sent_at = now();
    let resp = match transport::send(&oauth::refresh_grant(instance, &client, &refresh)).await {
        Ok(r) => r,
        Err(_) => {
            stats.detail = Some("token endpoint unreachable".into());
            store
                .finish_run(id, now(), now() + 60, false, false)
                .await?;
            return Ok(Some(RunOutcome::Deferred));
        }
    };
    match oauth::parse_token_response(&resp, sent_at) {
        Ok(grant) => {
            let expires_at = grant.expires_at(sent_at);
            let seal = |kind, secret, exp| crate::sealing::seal(key, id, kind, secret, exp);
            store
                .replace_secret(
                    id,
                    &seal("access_token", &grant.access_token, Some(expires_at))?,
                )
                .await?;
            if let Some(new_refresh) = &grant.refresh_token {
                if new_refresh != &refresh {
                    store
                        .replace_secret(id, &seal("refresh_token", new_refresh, None)?)
                        .await?;
                    creds.oauth = Some((client, new_refresh.clone()));
                }
            }
            creds.access = Some((grant.access_token, expires_at));
            Ok(None)
        }
        Err(p) if p.is(ProblemCode::CredentialsRejected) => {
            let msg = "ServiceNow rejected the refresh token (expired, revoked, or the OAuth client changed). Reconnect with the user's password; pulls resume from where they stopped.";
            store
                .set_error(id, "credentials_rejected", msg, now(), None)
                .await?;
            stats.detail = Some("refresh token rejected".into());
            Ok(Some(RunOutcome::Failed))
        }
        Err(p) => {
            stats.detail = Some(format!("token refresh failed: {}", p.code));
            store
                .finish_run(
                    id,
                    now(),
                    now() + p.retry_after.unwrap_or(60) as i64,
                    false,
                    false,
                )
                .await?;
            Ok(Some(RunOutcome::Deferred))
        }
    }
}
