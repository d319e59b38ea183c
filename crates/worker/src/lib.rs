//! Entry points only; each route lives in `routes/`.

mod archive;
mod auth;
mod config;
mod connection_object;
mod d1;
mod gzip;
mod ip_table;
mod respond;
mod routes;
mod schedule;
mod sealing;
mod transport;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::handle(req, env).await
}

/// Every 5 minutes: the watchdog re-arms connections whose object has no
/// alarm (lost, or a deployment just upgraded). Pulls themselves run on each
/// connection's own alarm. A cron handler cannot report failure, so its
/// outcome is logged.
#[event(scheduled)]
async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    match schedule::run(&env).await {
        Ok(n) => worker::console_log!("cron: woke {n} connection(s)"),
        Err(e) => worker::console_log!("cron: failed: {e}"),
    }
}

/// Unix seconds now: core takes time as an argument, the worker supplies it.
pub(crate) fn now() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Random bytes from the platform CSPRNG (Web Crypto in workerd).
pub(crate) fn random_bytes<const N: usize>() -> std::result::Result<[u8; N], worker::Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| worker::Error::RustError(format!("no randomness: {e}")))?;
    Ok(buf)
}
