//! The cron's work: a watchdog, not a scheduler. Each connection's object
//! schedules its own pulls with its alarm and copies the alarm's time to the
//! connection's row; a row whose alarm time is missing or long past belongs
//! to an object whose alarm was lost (or to a deployment just upgraded), and
//! waking it re-arms it.

use worker::{console_log, Env, Result};

use crate::connection_object;
use crate::d1::connections::Store;
use crate::now;

/// An alarm this late counts as lost.
const GRACE_SECS: i64 = 600;
/// Objects woken per cron run: each is a subrequest.
const WAKE_PER_RUN: u32 = 500;

/// Deleted connections whose purge the cron carries on per run.
const PURGES_PER_RUN: u32 = 50;

/// Values sealed again under the current key per cron run.
const RESEAL_PER_RUN: u32 = 200;

/// Refusals of ended windows that were counted but not audited one by one
/// (past an address's or the deployment's limit) get their summary entry
/// before the sweep drops the windows: nothing refused is dropped silently.
async fn summarise_refusals(
    env: &Env,
    access: &crate::d1::credentials::AccessStore,
    now: i64,
    failures: &snc_core::api::access::FailurePolicy,
) -> Result<()> {
    use snc_core::api::access::{refusals_summary, Actor, ActorKind};
    let (named, (more, addresses)) = access.unsummarised(now, failures).await?;
    let log = crate::d1::audit::AuditLog::new(env.d1("DB")?);
    let actor = Actor {
        kind: ActorKind::AdminToken,
        id: None,
        name: Some("unknown caller".into()),
    };
    let rest = (more > 0).then(|| (None, refusals_summary(more, addresses.max(2))));
    let entries = named
        .into_iter()
        .map(|(ip, n)| (Some(ip), refusals_summary(n, 1)))
        .chain(rest);
    for (ip, target) in entries {
        log.write(&crate::d1::audit::Entry {
            at_ms: crate::now_ms(),
            actor: &actor,
            action: "credential.refused",
            target: Some(&target),
            outcome: snc_core::problem::ProblemCode::RateLimited.as_str(),
            ip: ip.as_deref(),
        })
        .await;
    }
    access.clear_carried().await
}

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
        let sinks = crate::d1::sinks::SinkStore::new(env.d1("DB")?);
        for row in sinks.list().await? {
            if row.secret.split('.').nth(1) == Some(ring.current().id()) {
                continue;
            }
            let Some(secret) = row.secret(&ring) else {
                console_log!("rotation: sink {} opens under no configured key", row.id);
                continue;
            };
            let context = crate::d1::sinks::seal_context(&row.id);
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
    let access = crate::d1::credentials::AccessStore::new(env.d1("DB")?);
    summarise_refusals(env, &access, now, &failures).await?;
    access.sweep(now, &failures).await?;
    crate::d1::audit::AuditLog::new(env.d1("DB")?)
        .trim(now - crate::config::Config::from_env(env).retention_days * 86_400)
        .await?;
    // Deleted connections whose purge stopped (a failure, a lost alarm):
    // on with it; tombstones purged before the retention go.
    for id in store.unpurged(PURGES_PER_RUN).await? {
        if let Err(e) = connection_object::delete(env, &id).await {
            console_log!("cron: the purge of {id} goes on later: {e}");
        }
    }
    store
        .forget_tombstones(now - crate::config::Config::from_env(env).retention_days * 86_400)
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
