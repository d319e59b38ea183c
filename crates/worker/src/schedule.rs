//! The cron's work and the queue producer: pulls are spread by Cloudflare's
//! queue, not by a scheduler of ours.

use worker::{Env, Result};

use crate::now;
use crate::pull::PullMessage;
use crate::store::Store;

pub async fn enqueue(env: &Env, connection_id: &str) -> Result<()> {
    env.queue("PULLS")?
        .send(PullMessage {
            connection_id: connection_id.to_string(),
        })
        .await
}

/// Queues every due connection and drops events past the retention.
pub async fn run(env: &Env) -> Result<usize> {
    let store = Store::new(env.d1("DB")?);
    let due = store.due(now()).await?;
    for id in &due {
        enqueue(env, id).await?;
    }
    let retention_days: i64 = env
        .var("EVENT_RETENTION_DAYS")
        .ok()
        .and_then(|v| v.to_string().trim().parse().ok())
        .filter(|d| *d > 0)
        .unwrap_or(90);
    store
        .apply_retention(now() - retention_days * 86_400)
        .await?;
    Ok(due.len())
}
