//! What the routes and the cron use to reach a connection's object: one
//! function per request the object answers, over its internal URLs, and
//! the messages both sides read.

use serde::{Deserialize, Serialize};
use worker::{Env, Method, Request, RequestInit, Response, Result};

use super::plane::{Account, AccountsQuery, IndexQuery, PosturePoint, RunRow};
use super::reads::EventsRead;
use crate::d1::connections::Store;
use crate::now;

#[derive(Serialize, Deserialize)]
pub(super) struct Wake {
    pub connection_id: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct KeepPosture {
    pub connection_id: String,
    pub report: snc_core::watch::posture::PostureReport,
    /// The checked properties' sys_ids → names.
    #[serde(default)]
    pub property_ids: std::collections::HashMap<String, String>,
}

/// An alert to send to the connection's sinks again (its status changed).
#[derive(Serialize, Deserialize)]
pub(super) struct FeedAlert {
    pub connection_id: String,
    pub alert: snc_core::watch::detect::Alert,
}

/// The latest posture report (none before the first check) and the score
/// history, as the object answers `GET /posture`.
#[derive(Serialize, Deserialize)]
pub struct PostureRead {
    pub latest: Option<snc_core::watch::posture::PostureReport>,
    pub history: Vec<PosturePoint>,
}

/// The run history, as the object answers `GET /runs` (and the API shows).
#[derive(Serialize, Deserialize)]
pub struct Runs {
    pub runs: Vec<RunRow>,
    /// Pulls the connection has run (idle ones fold into one row an hour).
    #[serde(default)]
    pub pulls: u64,
    /// When the last of them ended.
    #[serde(default)]
    pub last_pull_at: Option<String>,
    /// Pulls asked for ("pull now", connect, …) so far, wrapping.
    #[serde(default)]
    pub asked: u32,
    /// The `asked` count the last pull that ended started with: a pull
    /// asked for has run once this reaches the count after the ask.
    #[serde(default)]
    pub asked_done: u32,
}

async fn call(
    env: &Env,
    connection_id: &str,
    method: Method,
    op: &str,
    body: Option<String>,
) -> Result<Response> {
    let stub = env
        .durable_object("CONN")?
        .id_from_name(connection_id)?
        .get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(body) = body {
        init.with_body(Some(body.into()));
    }
    let req = Request::new_with_init(&format!("https://connection/{op}"), &init)?;
    stub.fetch_with_request(req).await
}

fn wake_body(connection_id: &str) -> Result<String> {
    Ok(serde_json::to_string(&Wake {
        connection_id: connection_id.to_string(),
    })?)
}

/// Sends `op` about the connection to its object; `Ok` when it answers one
/// of `done`.
async fn command(env: &Env, connection_id: &str, op: &str, done: &[u16]) -> Result<()> {
    let body = wake_body(connection_id)?;
    command_with(env, connection_id, op, body, done).await
}

/// A command with its own body; an answer outside `done` is an error.
async fn command_with(
    env: &Env,
    connection_id: &str,
    op: &str,
    body: String,
    done: &[u16],
) -> Result<()> {
    let status = call(env, connection_id, Method::Post, op, Some(body))
        .await?
        .status_code();
    if done.contains(&status) {
        return Ok(());
    }
    Err(worker::Error::RustError(format!(
        "the connection's object answered {status} to {op}"
    )))
}

/// Pull now (after connect, reconnect, enable, or an admin's "pull now"),
/// or re-arm a lost alarm.
pub async fn wake(env: &Env, connection_id: &str) -> Result<()> {
    command(env, connection_id, "wake", &[202]).await
}

/// Forwards now (a sink's replay asked), without pulling.
pub async fn forward_now(env: &Env, connection_id: &str) -> Result<()> {
    command(env, connection_id, "forward", &[202]).await
}

/// Purges a deleted connection: its object and archive, then what an
/// older deployment left in D1; true once nothing of it remains (its
/// tombstone then says so). Asked by `DELETE` and, until it ends, by the
/// object's alarm and the cron.
pub async fn delete(env: &Env, connection_id: &str) -> Result<bool> {
    let status = call(
        env,
        connection_id,
        Method::Post,
        "delete",
        Some(wake_body(connection_id)?),
    )
    .await?
    .status_code();
    match status {
        204 => purge_rest(env, connection_id).await,
        202 => Ok(false),
        other => Err(worker::Error::RustError(format!(
            "the connection's object answered {other} to delete"
        ))),
    }
}

/// After the object: D1's legacy rows, then the tombstone marked purged.
pub(super) async fn purge_rest(env: &Env, connection_id: &str) -> Result<bool> {
    let store = Store::new(env.d1("DB")?);
    if !store
        .purge_legacy(connection_id, LEGACY_ROWS_PER_STEP)
        .await?
    {
        return Ok(false);
    }
    store.mark_purged(connection_id, now()).await?;
    Ok(true)
}

/// Legacy event rows deleted per step of a purge.
const LEGACY_ROWS_PER_STEP: u32 = 5_000;

/// Asks the object for JSON: anything but a 200 is an error naming `op`.
async fn ask<T: serde::de::DeserializeOwned>(
    env: &Env,
    connection_id: &str,
    method: Method,
    op: &str,
    body: Option<String>,
) -> Result<T> {
    let mut resp = call(env, connection_id, method, op, body).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "the connection's object answered {} to {op}",
            resp.status_code()
        )));
    }
    resp.json().await
}

pub async fn events(env: &Env, connection_id: &str, q: &IndexQuery) -> Result<EventsRead> {
    let body = Some(serde_json::to_string(q)?);
    ask(env, connection_id, Method::Post, "events", body).await
}

/// Keeps the posture read with the connect as the connection's first check.
pub async fn keep_posture(
    env: &Env,
    connection_id: &str,
    report: &snc_core::watch::posture::PostureReport,
    property_ids: &std::collections::HashMap<String, String>,
) -> Result<()> {
    let body = serde_json::to_string(&KeepPosture {
        connection_id: connection_id.to_string(),
        report: report.clone(),
        property_ids: property_ids.clone(),
    })?;
    command_with(env, connection_id, "posture", body, &[204]).await
}

/// Sends an alert to its connection's sinks again: its status changed.
pub async fn feed_alert(env: &Env, alert: &snc_core::watch::detect::Alert) -> Result<()> {
    let body = serde_json::to_string(&FeedAlert {
        connection_id: alert.connection_id.clone(),
        alert: alert.clone(),
    })?;
    command_with(env, &alert.connection_id, "alerts", body, &[202]).await
}

/// The latest posture report (null before the first) and the score history.
pub async fn posture(env: &Env, connection_id: &str) -> Result<PostureRead> {
    ask(env, connection_id, Method::Get, "posture", None).await
}

/// A page of the connection's accounts.
pub async fn accounts(env: &Env, connection_id: &str, q: &AccountsQuery) -> Result<Vec<Account>> {
    #[derive(Deserialize)]
    struct Accounts {
        accounts: Vec<Account>,
    }
    let body = Some(serde_json::to_string(q)?);
    let answer: Accounts = ask(env, connection_id, Method::Post, "accounts", body).await?;
    Ok(answer.accounts)
}

/// Checks posture at the object's next step, which starts now.
pub async fn check_posture(env: &Env, connection_id: &str) -> Result<()> {
    command(env, connection_id, "posture/check", &[202]).await
}

/// How long the API waits for an object's pull times before it shows the
/// row's (written when a pull last changed something).
const PULL_TIMES_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// When the connection last pulled and pulls next, from its object; `None`
/// when the object does not answer in time.
pub async fn pull_times(
    env: &Env,
    connection_id: &str,
) -> Option<snc_core::api::connection::PullTimes> {
    let asked = Box::pin(ask(env, connection_id, Method::Get, "pull_times", None));
    match futures_util::future::select(asked, worker::Delay::from(PULL_TIMES_WAIT)).await {
        futures_util::future::Either::Left((Ok(times), _)) => Some(times),
        _ => None,
    }
}

/// The connection's latest runs, newest first.
pub async fn runs(env: &Env, connection_id: &str) -> Result<Runs> {
    ask(env, connection_id, Method::Get, "runs", None).await
}
