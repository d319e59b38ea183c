//! The cron's work: a watchdog, not a scheduler. Each connection's object
//! schedules its own pulls with its alarm and copies the alarm's time to the
//! connection's row; a row whose alarm time is missing or long past belongs
//! to an object whose alarm was lost (or to a deployment just upgraded), and
//! waking it re-arms it.

use worker::{console_log, Env, Result};

use crate::connection_object;
use crate::now;
use crate::store::Store;

/// An alarm this late counts as lost.
const GRACE_SECS: i64 = 600;
/// Objects woken per cron run: each is a subrequest.
const WAKE_PER_RUN: u32 = 500;

/// Values sealed again under the current key per cron run.
const RESEAL_PER_RUN: u32 = 200;

pub async fn run(env: &Env) -> Result<usize> {
    let store = Store::new(env.d1("DB")?);
    // After a key rotation: what the old keys sealed moves to the current
    // key, whether or not its connection pulls.
    if let Some(ring) = crate::config::Config::from_env(env).keys {
        let moved = crate::sealing::reseal_stale(&store, &ring, RESEAL_PER_RUN).await?;
        if moved > 0 {
            console_log!("cron: {moved} secrets sealed again under the current key");
        }
        // Sinks' credentials too (few: all of them in one pass).
        let sinks = crate::sinks::SinkStore::new(env.d1("DB")?);
        for row in sinks.list().await? {
            if row.secret.split('.').nth(1) == Some(ring.current().id()) {
                continue;
            }
            let Some(secret) = row.secret(&ring) else {
                console_log!("rotation: sink {} opens under no configured key", row.id);
                continue;
            };
            let context = crate::sinks::seal_context(&row.id);
            if let Ok(fresh) = ring
                .current()
                .seal(&secret, &context, crate::random_bytes::<12>()?)
            {
                sinks.reseal(&row.id, &row.secret, &fresh).await?;
            }
        }
    }
    // Access housekeeping: expired tickets, ended failure windows, and audit
    // entries past the retention that events have.
    let now = now();
    let failures = crate::config::Config::from_env(env).failures;
    crate::access::AccessStore::new(env.d1("DB")?)
        .sweep(now, &failures)
        .await?;
    crate::audit::AuditLog::new(env.d1("DB")?)
        .trim(now - crate::config::retention_days(env) * 86_400)
        .await?;
    let overdue = store.overdue(now - GRACE_SECS, WAKE_PER_RUN).await?;
    let mut woken = 0;
    for id in &overdue {
        match connection_object::wake(env, id).await {
            Ok(()) => woken += 1,
            Err(e) => console_log!("cron: could not wake {id}: {e}"),
        }
    }
    Ok(woken)
}
