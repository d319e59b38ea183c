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

pub async fn run(env: &Env) -> Result<usize> {
    let store = Store::new(env.d1("DB")?);
    let overdue = store.overdue(now() - GRACE_SECS, WAKE_PER_RUN).await?;
    let mut woken = 0;
    for id in &overdue {
        match connection_object::wake(env, id).await {
            Ok(()) => woken += 1,
            Err(e) => console_log!("cron: could not wake {id}: {e}"),
        }
    }
    Ok(woken)
}
