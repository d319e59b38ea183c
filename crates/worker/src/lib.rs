//! Entry points only; each route lives in `routes/`.

mod auth;
mod config;
mod pull;
mod respond;
mod routes;
mod schedule;
mod sealing;
mod store;
mod transport;

use worker::{event, Context, Env, MessageExt, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::handle(req, env).await
}

/// Every 5 minutes: queue the connections that are due, and apply retention.
/// A cron handler cannot report failure, so each outcome is logged.
#[event(scheduled)]
async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    match schedule::run(&env).await {
        Ok(n) => worker::console_log!("cron: queued {n} connection(s)"),
        Err(e) => worker::console_log!("cron: failed: {e}"),
    }
}

/// One connection per message. Never returns Err: that would abort the
/// isolate; each message is acked after its run, whose outcome is recorded.
#[event(queue)]
async fn queue(
    batch: worker::MessageBatch<pull::PullMessage>,
    env: Env,
    _ctx: Context,
) -> Result<()> {
    let messages = match batch.messages() {
        Ok(m) => m,
        Err(e) => {
            worker::console_log!("queue: unreadable batch: {e}");
            batch.ack_all();
            return Ok(());
        }
    };
    for message in messages {
        let id = message.body().connection_id.clone();
        let outcome = pull::run(&env, &id).await;
        if outcome == pull::RunOutcome::More {
            if let Err(e) = schedule::enqueue(&env, &id).await {
                worker::console_log!("queue: could not re-queue {id}: {e}");
            }
        }
        message.ack();
    }
    Ok(())
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
