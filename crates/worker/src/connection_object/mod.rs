//! One Durable Object per connection: the only writer of its cursors, run
//! history, page index and event index, and the scheduler of its pulls (its
//! alarm fires to the second: the next pull, a Retry-After, an hourly
//! hibernation retry, or the next slice of a long backfill).
//!
//! The worker talks to it through the functions at the bottom (`wake`,
//! `delete`, `events`, `runs`); the object answers internal requests only,
//! never the public API.

mod inventory;
mod outbox;
mod plane;
mod posture;
pub mod pull;
mod upgrade;

use std::cell::Cell;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use snc_core::archive;
use snc_core::events::Event;
use worker::{
    console_log, durable_object, Bucket, DurableObject, Env, Method, Request, RequestInit,
    Response, Result, State,
};

use crate::d1::connections::{Fence, Store};
use crate::{now, now_ms};
pub use plane::{Account, AccountsQuery, IndexQuery, RunRow};
use plane::{Order, Plane};
use pull::{RunOutcome, Slice};

/// The alarm of a connection that is not pulling (disabled, or in an error
/// only an admin can clear) still fires daily, to apply the retention.
const MAINTENANCE_SECS: i64 = 86_400;
/// The object's count of slices failed in a row (meta key).
const FAILED_SLICES: &str = "failed_slices";
/// How long a delete waits for a running slice to reach its next step.
const STOP_WAIT_MS: u64 = 120_000;
/// The object's meta key of a delete under way.
const TOMBSTONE: &str = "tombstone";

#[durable_object]
pub struct ConnectionObject {
    state: State,
    env: Env,
    /// A slice is running (alarms never overlap; requests interleave with
    /// them at each await).
    running: Cell<bool>,
    /// A pull was asked for while a slice ran: the next alarm fires at once.
    again: Cell<bool>,
    /// Deleted: every later step and request is refused.
    deleted: Cell<bool>,
    /// This instance has created its tables: later opens skip the DDL (and
    /// a deleted object's tables are never made again by a late step).
    schema_ready: Cell<bool>,
}

#[derive(Serialize, Deserialize)]
struct Wake {
    connection_id: String,
}

#[derive(Serialize, Deserialize)]
struct KeepPosture {
    connection_id: String,
    report: snc_core::posture::PostureReport,
    /// The checked properties' sys_ids → names.
    #[serde(default)]
    property_ids: std::collections::HashMap<String, String>,
}

/// An alert to send to the connection's sinks again (its status changed).
#[derive(Serialize, Deserialize)]
struct FeedAlert {
    connection_id: String,
    alert: snc_core::detect::Alert,
}

impl DurableObject for ConnectionObject {
    fn new(state: State, env: Env) -> Self {
        ConnectionObject {
            state,
            env,
            running: Cell::new(false),
            again: Cell::new(false),
            deleted: Cell::new(false),
            schema_ready: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        if (req.method(), path.as_str()) == (Method::Post, "/delete") {
            // Idempotent: a delete asked again goes on with the purge.
            let wake: Wake = req.json().await?;
            let done = self.delete(&wake.connection_id).await?;
            return Ok(Response::empty()?.with_status(if done { 204 } else { 202 }));
        }
        if self.deleted.get() || self.tombstone().is_some() {
            return Response::error("deleted", 410);
        }
        match (req.method(), path.as_str()) {
            (Method::Post, "/wake") => {
                let wake: Wake = req.json().await?;
                let plane = self.plane()?;
                plane.set_meta("connection_id", &wake.connection_id)?;
                self.pull_now(&plane).await?;
                Ok(Response::empty()?.with_status(202))
            }
            (Method::Post, "/forward") => {
                // A sink's ask (a replay): a step now, without a pull.
                let wake: Wake = req.json().await?;
                self.plane()?
                    .set_meta("connection_id", &wake.connection_id)?;
                self.step_now().await?;
                Ok(Response::empty()?.with_status(202))
            }
            (Method::Post, "/events") => {
                let q: IndexQuery = req.json().await?;
                let read = self.read_events(&q).await?;
                Response::from_json(&read)
            }
            (Method::Get, "/runs") => {
                let runs = self.plane()?.runs(50)?;
                Response::from_json(&json!({ "runs": runs }))
            }
            (Method::Post, "/posture") => {
                // A report read with the connect: kept as the first check.
                let body: KeepPosture = req.json().await?;
                let plane = self.plane()?;
                plane.set_meta("connection_id", &body.connection_id)?;
                let store = Store::new(self.env.d1("DB")?);
                let Some(row) = store.get(&body.connection_id).await? else {
                    return Response::error("no such connection", 404);
                };
                plane.remember_properties(&body.property_ids)?;
                posture::keep(&plane, &Fence::new(store, &row), &body.report).await?;
                Ok(Response::empty()?.with_status(204))
            }
            (Method::Get, "/posture") => {
                let plane = self.plane()?;
                let latest = plane
                    .latest_posture()?
                    .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok());
                Response::from_json(&json!({
                    "latest": latest,
                    "history": plane.posture_history(400)?,
                }))
            }
            (Method::Post, "/posture/check") => {
                let wake: Wake = req.json().await?;
                let plane = self.plane()?;
                plane.set_meta("connection_id", &wake.connection_id)?;
                plane.request_posture()?;
                // The check uses the tokens a pull makes fresh.
                self.pull_now(&plane).await?;
                Ok(Response::empty()?.with_status(202))
            }
            (Method::Post, "/alerts") => {
                // Through the feed the sinks read, so each hears of it once
                // more under the alert's id, with the status as it stands.
                // It goes with the next step's forwarding: waking the object
                // now would also pull, once for every alert an admin closes.
                let body: FeedAlert = req.json().await?;
                let plane = self.plane()?;
                plane.set_meta("connection_id", &body.connection_id)?;
                plane.feed_alerts(std::slice::from_ref(&body.alert), crate::now())?;
                Ok(Response::empty()?.with_status(202))
            }
            (Method::Post, "/accounts") => {
                let q: AccountsQuery = req.json().await?;
                let accounts = self.plane()?.accounts(&q)?;
                Response::from_json(&json!({ "accounts": accounts }))
            }
            (Method::Get, "/size") => {
                let plane = self.plane()?;
                Response::from_json(&json!({
                    "database_bytes": plane.database_size(),
                    "events": plane.event_count()?,
                }))
            }
            _ => Response::error("no such operation", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if self.running.get() {
            return Response::empty();
        }
        // A delete whose purge did not end in its request goes on here,
        // however large the archive, until nothing of the connection remains.
        if let Some(id) = self.tombstone() {
            self.finish_delete(&id).await;
            return Response::empty();
        }
        if self.deleted.get() {
            return Response::empty();
        }
        self.running.set(true);
        self.again.set(false);
        let started = now();
        let next = match self.slice().await {
            Ok(next) => {
                self.slice_succeeded().await;
                next
            }
            Err(e) => Some(self.slice_failed(started, &e.to_string()).await),
        };
        self.running.set(false);
        if self.deleted.get() {
            return Response::empty();
        }
        let next = if self.again.replace(false) {
            Some(now())
        } else {
            next
        };
        if let Some(at) = next {
            let wait_ms = (at * 1000).saturating_sub(now_ms() as i64).max(1);
            if let Err(e) = self
                .state
                .storage()
                .set_alarm(Duration::from_millis(wait_ms as u64))
                .await
            {
                console_log!("connection object: could not set the next alarm: {e}");
            }
        }
        Response::empty()
    }
}

impl ConnectionObject {
    /// Makes a pull due at once and runs the step that does it.
    async fn pull_now(&self, plane: &Plane) -> Result<()> {
        let mut schedule = plane.schedule()?;
        schedule.pull_now(now());
        plane.save_schedule(&schedule)?;
        self.step_now().await
    }

    /// Runs a step now: at once by the alarm, or right after the running one.
    async fn step_now(&self) -> Result<()> {
        if self.running.get() {
            self.again.set(true);
        } else {
            self.state
                .storage()
                .set_alarm(Duration::from_millis(1))
                .await?;
        }
        Ok(())
    }

    /// The object's storage; refused once the connection is deleted, so no
    /// late step reads it or makes its tables again.
    fn plane(&self) -> Result<Plane> {
        if self.deleted.get() {
            return Err(worker::Error::RustError(
                "the connection was deleted".into(),
            ));
        }
        let sql = self.state.storage().sql();
        if self.schema_ready.get() {
            return Ok(Plane::opened(sql));
        }
        let plane = Plane::open(sql)?;
        self.schema_ready.set(true);
        Ok(plane)
    }

    fn bucket(&self) -> Result<Bucket> {
        self.env.bucket("ARCHIVE")
    }

    /// A slice that failed inside the worker (the object's SQL, the
    /// archive, D1) is a failed run in the history, not only a log line;
    /// several in a row show on the connection. Returns when to try again.
    async fn slice_failed(&self, started: i64, error: &str) -> i64 {
        console_log!("connection object: slice failed inside the worker: {error}");
        let base = crate::config::slice_retry_secs(&self.env);
        let Ok(plane) = self.plane() else {
            return now() + base;
        };
        let n = plane
            .meta(FAILED_SLICES)
            .ok()
            .flatten()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        let kept = plane
            .set_meta(FAILED_SLICES, &n.to_string())
            .and_then(|()| {
                plane.record_run(&RunRow {
                    started_at: snc_core::clock::rfc3339(started),
                    finished_at: snc_core::clock::rfc3339(now()),
                    outcome: RunOutcome::Failed.as_str().to_string(),
                    detail: Some(snc_core::pull_run::failed_slice_detail(error)),
                    events: 0,
                    calls: 0,
                    statements: 0,
                })
            });
        if let Err(e) = kept {
            console_log!("connection object: could not record the failed slice: {e}");
        }
        if n >= snc_core::pull_run::FAILED_SLICES_BEFORE_WARNING {
            let warning = snc_core::pull_run::pulls_failing_warning(n, error);
            self.set_pulls_failing(&plane, Some(warning)).await;
        }
        now() + snc_core::pull_run::retry_after_failed_slice(n, base)
    }

    /// After failed slices, the first one that completes clears their count
    /// and the connection's warning.
    async fn slice_succeeded(&self) {
        let Ok(plane) = self.plane() else {
            return;
        };
        let failed = plane.meta(FAILED_SLICES).ok().flatten();
        if failed.is_none_or(|n| n == "0") {
            return;
        }
        if let Err(e) = plane.set_meta(FAILED_SLICES, "0") {
            console_log!("connection object: could not clear the failed slices: {e}");
        }
        self.set_pulls_failing(&plane, None).await;
    }

    async fn set_pulls_failing(&self, plane: &Plane, warning: Option<snc_core::warning::Warning>) {
        let Ok(Some(id)) = plane.meta("connection_id") else {
            return;
        };
        let set = match self.env.d1("DB") {
            Ok(db) => {
                Store::new(db)
                    .set_warning(&id, snc_core::warning::WarningCode::PullsFailing, warning)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = set {
            console_log!("connection object: could not update the pulls_failing warning: {e}");
        }
    }

    /// One alarm's work: what its schedule says is due (the pull with what
    /// rides on it, then the sinks); returns when the next alarm should fire.
    async fn slice(&self) -> Result<Option<i64>> {
        let plane = self.plane()?;
        let Some(id) = plane.meta("connection_id")? else {
            return Ok(None);
        };
        let store = Store::new(self.env.d1("DB")?);
        let Some(row) = store.get(&id).await? else {
            // The connection is gone from the control plane: nothing of it
            // may stay here either. The purge runs at the next alarm, once
            // this slice (which a purge would wait for) has ended.
            self.bury_here(&plane, &id).await?;
            return Ok(None);
        };
        let bucket = self.bucket()?;
        let mut schedule = plane.schedule()?;
        let pulled = schedule.on_alarm(now()).pull;
        if pulled {
            let at_start = schedule;
            let Some(next) = self.pull(&plane, &bucket, store, &row).await? else {
                return Ok(None);
            };
            // Read again: a pull asked for while this one ran stays due.
            schedule = plane.schedule()?;
            schedule.pulled_since(&at_start, next);
            plane.save_schedule(&schedule)?;
            // The watchdog's copy: the pull's time, which a sink's retries
            // do not move (they would write D1 every second).
            Store::new(self.env.d1("DB")?)
                .set_alarm_at(&id, Some(next))
                .await?;
        }
        if self.deleted.get() {
            return Ok(None);
        }
        if crate::config::pulls_paused(&self.env) {
            return Ok(Some(schedule.next_alarm(now(), None)));
        }
        // A delete during the pull (whose call to this object may have
        // failed): no sink hears of the connection again.
        if pulled && Store::new(self.env.d1("DB")?).get(&id).await?.is_none() {
            self.bury_here(&plane, &id).await?;
            return Ok(None);
        }
        // Forwarding, each sink on its own clock: a sink's backlog or retry
        // may want the alarm before the next pull, never the pull sooner.
        let stopping = || self.deleted.get();
        let sinks_at = match outbox::run(&self.env, &plane, &bucket, &row, &stopping).await {
            Ok(at) => at,
            Err(e) => {
                console_log!("forward: {id}: {e}");
                Some(now() + 60)
            }
        };
        Ok(Some(schedule.next_alarm(now(), sinks_at)))
    }

    /// The pull's part of an alarm: a pull slice (which checks the posture
    /// when due and brings the inventory up to now before its first page),
    /// then the retention; returns when the next pull
    /// is due (`None`: the connection is being deleted).
    async fn pull(
        &self,
        plane: &Plane,
        bucket: &Bucket,
        store: Store,
        row: &crate::d1::connections::ConnectionRow,
    ) -> Result<Option<i64>> {
        let id = row.id.as_str();
        let interval = crate::config::pull_interval(&self.env);
        if crate::config::pulls_paused(&self.env) {
            return Ok(Some(now() + interval.secs()));
        }
        // A deployment upgraded from before the event plane: this
        // connection's rows move over first, a bounded chunk per alarm.
        if !upgrade::step(plane, bucket, &self.env.d1("DB")?, id).await? {
            return Ok(Some(now()));
        }
        let started = now();
        let fence = Fence::new(store, row);
        let stopping = || self.deleted.get();
        let mut slice = Slice::new(&self.env, plane, bucket, &fence, row, &stopping);
        // Alerts a failed D1 write left behind go first.
        slice.flush_alerts().await;
        let end = pull::run(&mut slice).await?;
        if self.deleted.get() {
            return Ok(None);
        }
        // Retention after the pull, so a backfill's last slice already drops
        // what it fetched from before the retention.
        let retention_days = crate::config::retention_days(&self.env);
        let (dropped, expired) = plane.apply_retention(now() - retention_days * 86_400)?;
        crate::archive::delete(bucket, &expired).await?;
        // The index keeps the hot window; older events stay in their pages.
        // Never past what a coming run may read again and look up in it.
        let hot_days = crate::config::hot_days(&self.env).min(retention_days);
        let positions: Vec<(i64, i64)> = plane
            .cursors()?
            .iter()
            .filter_map(|c| {
                let at = snc_core::events::parse_servicenow_time(c.created_on.as_deref()?)?;
                Some((at, c.read_at?))
            })
            .collect();
        let floor = snc_core::cursor::reread_floor(&positions).map_or(i64::MAX, |f| f - 60);
        let moved = plane.trim_hot((now() - hot_days * 86_400).min(floor))?;
        if moved > 0 {
            console_log!("hot window: {moved} index rows older than {hot_days} days left the index (their pages keep them)");
        }
        if dropped > 0 {
            fence.progress(&plane.progress(now())?).await?;
        }
        let stats = &slice.stats;
        pull::log_line(id, end.outcome, stats);
        if end.outcome != RunOutcome::Skipped {
            plane.record_run(&RunRow {
                started_at: snc_core::clock::rfc3339(started),
                finished_at: snc_core::clock::rfc3339(now()),
                outcome: end.outcome.as_str().to_string(),
                detail: stats.detail.clone(),
                events: stats.events.try_into().unwrap_or(i64::MAX),
                calls: i64::from(stats.calls),
                statements: stats.statements.try_into().unwrap_or(i64::MAX),
            })?;
        }
        Ok(Some(match (end.outcome, end.next_at) {
            // The admin changed the connection under the slice: look again
            // with the new row (its change also woke the object).
            (RunOutcome::Superseded, _) => now() + 1,
            (_, Some(at)) => at,
            (_, None) => now() + MAINTENANCE_SECS,
        }))
    }

    /// The purge's tombstone in the object's own storage: set by the first
    /// delete, gone with the rest once nothing of the connection remains.
    fn tombstone(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Row {
            v: String,
        }
        // Raw SQL: an object that never opened its plane has no tables.
        let rows: Vec<Row> = self
            .state
            .storage()
            .sql()
            .exec("SELECT v FROM meta WHERE k = ?", vec![TOMBSTONE.into()])
            .ok()?
            .to_array()
            .ok()?;
        rows.into_iter().next().map(|r| r.v)
    }

    /// Stops any running slice, then removes every byte of the connection
    /// this object and the archive hold, at most `PURGE_OBJECTS_PER_STEP`
    /// archive objects a call; true once nothing remains. Otherwise the
    /// object's alarm goes on with it a second later (and the cron after
    /// any failure).
    async fn delete(&self, connection_id: &str) -> Result<bool> {
        if !self.deleted.get() {
            self.plane()?.set_meta(TOMBSTONE, connection_id)?;
        }
        self.deleted.set(true);
        let waited = now_ms();
        while self.running.get() && now_ms().saturating_sub(waited) < STOP_WAIT_MS {
            worker::Delay::from(Duration::from_millis(50)).await;
        }
        let storage = self.state.storage();
        storage.delete_alarm().await?;
        let budget = crate::config::purge_objects_per_step(&self.env);
        let faults = crate::config::test_purge_faults(&self.env);
        let purged = crate::archive::purge(&self.bucket()?, connection_id, budget, faults).await;
        if !matches!(purged, Ok(true)) {
            storage.set_alarm(Duration::from_secs(1)).await?;
            return purged.map(|_| false);
        }
        storage.delete_all().await?;
        Ok(true)
    }

    /// Marks this object deleted from within its own slice, and leaves the
    /// purge to the next alarm (a purge waits for the running slice).
    async fn bury_here(&self, plane: &Plane, connection_id: &str) -> Result<()> {
        plane.set_meta(TOMBSTONE, connection_id)?;
        self.deleted.set(true);
        self.state
            .storage()
            .set_alarm(Duration::from_secs(1))
            .await?;
        Ok(())
    }

    /// A delete driven by the alarm: on to the end, then the control
    /// plane's tombstone is marked purged.
    async fn finish_delete(&self, connection_id: &str) {
        match self.delete(connection_id).await {
            Ok(true) => {
                if let Err(e) = purge_rest(&self.env, connection_id).await {
                    console_log!(
                        "delete: {connection_id}: the legacy rows are left for the cron: {e}"
                    );
                }
            }
            Ok(false) => {}
            Err(e) => {
                console_log!("delete: {connection_id}: the purge stopped ({e}); again in a minute");
                let _ = self
                    .state
                    .storage()
                    .set_alarm(Duration::from_secs(60))
                    .await;
            }
        }
    }

    async fn read_events(&self, q: &IndexQuery) -> Result<EventsRead> {
        let budget = crate::config::events_pages_per_read(&self.env);
        read_events(&self.plane()?, &self.bucket()?, q, budget).await
    }
}

/// An event's place in the listing order.
fn position(e: &Event) -> Option<(i64, &str, &str)> {
    let (table, sys_id) = e.id.split_once(':')?;
    Some((
        snc_core::clock::parse_rfc3339(&e.occurred_at)?,
        table,
        sys_id,
    ))
}

/// The events a query selects over the whole retention: the index's (the
/// hot window, and anything stored since the last trim), then, for a range
/// reaching before the hot window, the archived pages holding events no
/// longer indexed, read whole, newest (or oldest) pages first, until no
/// unread page can hold an event that would make the answer.
pub(super) async fn read_events(
    plane: &Plane,
    bucket: &Bucket,
    q: &IndexQuery,
    budget: u32,
) -> Result<EventsRead> {
    let mut out = read_indexed(plane, bucket, q).await?;
    let done = |events| EventsRead {
        events,
        resume: None,
    };
    let Some(hot_from) = plane.hot_from()? else {
        return Ok(done(out));
    };
    let lower = match (q.from, q.not_before) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if lower.is_some_and(|l| l >= hot_from) {
        return Ok(done(out));
    }
    let mut upper = q.to.map_or(hot_from, |t| t.min(hot_from));
    let order = if q.newest_first {
        Order::NewestFirst
    } else {
        Order::OldestFirst
    };
    // A next page of the listing starts at its cursor: pages wholly on the
    // other side of it are not read again.
    let mut lower = lower;
    if let Some((t, ..)) = &q.after {
        match order {
            Order::NewestFirst => upper = upper.min(t + 1),
            Order::OldestFirst => lower = Some(lower.map_or(*t, |l| l.max(*t))),
        }
    }
    let limit = q.limit as usize;
    // Whether an event comes after the cursor in the listing's order.
    let beyond =
        |a: (i64, &str, &str), c: (i64, &str, &str)| if q.newest_first { a < c } else { a > c };
    let after = q
        .after
        .as_ref()
        .map(|(t, table, sys_id)| (*t, table.as_str(), sys_id.as_str()));
    let cold = archive::ColdRead {
        order,
        upper,
        lower,
        after: q.after.as_ref().map(|a| a.0),
        budget,
    };
    let mut read = 0;
    let mut stopped_at = None;
    for page in plane.cold_pages(lower, upper, order)? {
        // Enough already, and this page (and every later one) lies wholly
        // past the last event kept.
        if out.len() >= limit {
            let edge = out.get(limit - 1).and_then(position).map_or(0, |p| p.0);
            let past = match order {
                Order::NewestFirst => page.last_at < edge,
                Order::OldestFirst => page.first_at > edge,
            };
            if past {
                break;
            }
        }
        // The read's budget is spent: the answer ends where every event is
        // known (pages come in the order of their newest, or oldest, event:
        // nothing beyond this page's edge can hide in a page not read) and
        // says where to go on, even when it holds few events or none.
        if let Some(edge) = cold.stop_before(read, page.first_at, page.last_at) {
            stopped_at = Some(edge);
            break;
        }
        read += 1;
        let lines = crate::archive::member_lines(bucket, &page.key, 0, None).await?;
        for line in lines {
            let Some(e) = archive::read_line(&page.key, &line) else {
                continue;
            };
            let Some(at) = position(&e) else { continue };
            let wanted = at.0 < upper
                && lower.is_none_or(|l| at.0 >= l)
                && q.kind.as_deref().is_none_or(|k| e.kind.as_str() == k)
                && q.actor
                    .as_deref()
                    .is_none_or(|a| e.actor.as_deref() == Some(a))
                && after.is_none_or(|c| beyond(at, c));
            if wanted {
                out.push(e);
            }
        }
        out.sort_by(|a, b| {
            let (a, b) = (position(a), position(b));
            if q.newest_first {
                b.cmp(&a)
            } else {
                a.cmp(&b)
            }
        });
        // A page stored again after a trim would be both indexed and cold.
        out.dedup_by(|a, b| a.id == b.id && a.occurred_at == b.occurred_at);
        out.truncate(limit);
    }
    if read > 0 {
        console_log!("events: {read} archived page(s) read for the range before the hot window");
    }
    let mut resume = None;
    if let Some(edge) = stopped_at {
        // Only what lies wholly on this side of the edge is complete.
        out.retain(|e| position(e).is_some_and(|p| cold.complete(edge, p.0)));
        if out.len() < limit {
            resume = Some(cold.resume(edge));
        }
    }
    Ok(EventsRead {
        events: out,
        resume,
    })
}

/// An events read: the events, and where the next read starts when the
/// read's budget of archived pages ran out before the answer was full.
#[derive(Serialize, Deserialize)]
pub struct EventsRead {
    pub events: Vec<Event>,
    #[serde(default)]
    pub resume: Option<(i64, String, String)>,
}

/// The events the index selects, read whole from their archive members:
/// one ranged read per member, in the index's order.
async fn read_indexed(plane: &Plane, bucket: &Bucket, q: &IndexQuery) -> Result<Vec<Event>> {
    let rows = plane.events(q)?;
    let mut members: Vec<((String, u32), Vec<String>)> = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let line = usize::try_from(row.line).unwrap_or(0);
        let Some((start, end)) = archive::member_range(&row.members, line) else {
            console_log!(
                "index row {}:{} has no member",
                row.source_table,
                row.sys_id
            );
            continue;
        };
        let at = match members
            .iter()
            .position(|((k, s), _)| *k == row.key && *s == start)
        {
            Some(at) => at,
            None => {
                let lines = crate::archive::member_lines(bucket, &row.key, start, end).await?;
                members.push(((row.key.clone(), start), lines));
                members.len() - 1
            }
        };
        let lines = &members[at].1;
        match lines
            .get(line % archive::LINES_PER_MEMBER)
            .and_then(|l| archive::read_line(&row.key, l))
        {
            Some(e) => out.push(e),
            None => console_log!(
                "archive line of {}:{} unreadable",
                row.source_table,
                row.sys_id
            ),
        }
    }
    Ok(out)
}

// ---- the worker's side --------------------------------------------------

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
async fn purge_rest(env: &Env, connection_id: &str) -> Result<bool> {
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
    report: &snc_core::posture::PostureReport,
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
pub async fn feed_alert(env: &Env, alert: &snc_core::detect::Alert) -> Result<()> {
    let body = serde_json::to_string(&FeedAlert {
        connection_id: alert.connection_id.clone(),
        alert: alert.clone(),
    })?;
    command_with(env, &alert.connection_id, "alerts", body, &[202]).await
}

/// The latest posture report (null before the first) and the score history.
pub async fn posture(env: &Env, connection_id: &str) -> Result<serde_json::Value> {
    let mut resp = call(env, connection_id, Method::Get, "posture", None).await?;
    resp.json().await
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

pub async fn runs(env: &Env, connection_id: &str) -> Result<serde_json::Value> {
    let mut resp = call(env, connection_id, Method::Get, "runs", None).await?;
    resp.json().await
}
