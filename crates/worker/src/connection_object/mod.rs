//! One Durable Object per connection: the only writer of its cursors, run
//! history, page index and event index, and the scheduler of its pulls (its
//! alarm fires to the second: the next pull, a Retry-After, an hourly
//! hibernation retry, or the next slice of a long backfill).
//!
//! The worker talks to it through `client.rs` (`wake`, `delete`, `events`,
//! `runs`, …); the object answers internal requests only, never the public
//! API. Its storage is `plane/`, its reads of events `reads.rs`.

mod client;
mod inventory;
mod outbox;
mod plane;
mod posture;
pub mod pull;
mod reads;
mod upgrade;

use std::cell::Cell;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use worker::{
    console_log, durable_object, Bucket, DurableObject, Env, Method, Request, Response, Result,
    State,
};

use crate::config::Config;
use crate::d1::connections::{Fence, Store};
use crate::{now, now_ms};
pub use client::*;
pub use plane::{AccountsQuery, IndexQuery};
use plane::{Plane, RunRow};
use pull::{RunOutcome, Slice};
use reads::{read_events, EventsRead};
use snc_core::pull::own_calls::OwnCall;
use snc_core::pull::schedule::{EndedRun, RunShape, WatchdogCopy};

/// The object's count of slices failed in a row (meta key).
const FAILED_SLICES: &str = "failed_slices";
/// How long a delete waits for a running slice to reach its next step.
const STOP_WAIT_MS: u64 = 120_000;
/// Index members reaching across the retention's cutoff trimmed per pull.
const TRIMS_PER_PULL: usize = 8;
/// Rows of an upgraded object's old row-per-event index deleted per pull.
const EVENT_ROWS_PER_PULL: u32 = 50_000;
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
            (Method::Get, "/pull_times") => {
                let schedule = self.plane()?.schedule()?;
                Response::from_json(&snc_core::api::connection::PullTimes {
                    last_pull_at: schedule.last_pull_at,
                    next_pull_at: schedule.pull_at,
                })
            }
            (Method::Get, "/runs") => {
                let plane = self.plane()?;
                let schedule = plane.schedule()?;
                Response::from_json(&Runs {
                    runs: plane.runs(50)?,
                    pulls: schedule.pulls,
                    last_pull_at: schedule.last_pull_at.map(snc_core::clock::rfc3339),
                    asked: schedule.asked,
                    asked_done: schedule.asked_done,
                })
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
                Response::from_json(&PostureRead {
                    latest: plane
                        .latest_posture()?
                        .and_then(|r| serde_json::from_str(&r).ok()),
                    history: plane.posture_history(400)?,
                })
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

/// Applies the retention at `cutoff`: members wholly past it go with their
/// archive objects, and those reaching across it count out what passed it,
/// a few per pull (each is one ranged read of its member). Returns the
/// events dropped.
async fn retain(plane: &Plane, bucket: &Bucket, cutoff: i64) -> Result<u64> {
    let (mut dropped, expired) = plane.apply_retention(cutoff)?;
    crate::archive::delete(bucket, &expired).await?;
    for spot in plane.straddling(cutoff, TRIMS_PER_PULL)? {
        let times = match reads::member_times(bucket, &spot).await {
            Ok(times) => times,
            Err(e) => {
                console_log!(
                    "retention: a member of {} could not be read ({e}); next pull",
                    spot.key
                );
                continue;
            }
        };
        let trim = snc_core::pull::index::trim(&times, spot.first_at, cutoff);
        dropped += plane.trim_member(&spot, &trim)?;
    }
    Ok(dropped)
}

/// What the pull part of an alarm ended with.
struct PullEnd {
    /// When the next pull is due.
    next: i64,
    /// What D1's `alarm_at` holds now.
    watchdog: WatchdogCopy,
    /// The run to record, and how it ended (none: no pull ran).
    run: Option<(RunRow, EndedRun)>,
    /// The calls the pull made (`own_calls`).
    made: Vec<OwnCall>,
}

impl PullEnd {
    fn unrun(next: i64) -> PullEnd {
        PullEnd {
            next,
            watchdog: WatchdogCopy::AsRead,
            run: None,
            made: Vec::new(),
        }
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
        let base = Config::from_env(&self.env).slice_retry_secs;
        let Ok(plane) = self.plane() else {
            return now() + base;
        };
        let before = plane
            .meta(FAILED_SLICES)
            .ok()
            .flatten()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let failed = snc_core::pull::run::failed_slice(before, error, base);
        let kept = plane
            .set_meta(FAILED_SLICES, &failed.in_a_row.to_string())
            .and_then(|()| self.count_failed_slice(&plane))
            .and_then(|()| {
                plane.record_run(&RunRow {
                    started_at: snc_core::clock::rfc3339(started),
                    finished_at: snc_core::clock::rfc3339(now()),
                    outcome: RunOutcome::Failed,
                    detail: Some(failed.detail),
                    events: 0,
                    calls: 0,
                    statements: 0,
                    pulls: 1,
                })
            });
        if let Err(e) = kept {
            console_log!("connection object: could not record the failed slice: {e}");
        }
        if let Some(warning) = failed.warning {
            self.set_pulls_failing(&plane, Some(warning)).await;
        }
        now() + failed.retry_in_secs
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

    async fn set_pulls_failing(
        &self,
        plane: &Plane,
        warning: Option<snc_core::connect::warning::Warning>,
    ) {
        let Ok(Some(id)) = plane.meta("connection_id") else {
            return;
        };
        let set = match self.env.d1("DB") {
            Ok(db) => {
                Store::new(db)
                    .set_warning(
                        &id,
                        snc_core::connect::warning::WarningCode::PullsFailing,
                        warning,
                    )
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
        let config = Config::from_env(&self.env);
        let mut schedule = plane.schedule()?;
        let pulled = schedule.on_alarm(now()).pull;
        if pulled {
            let at_start = schedule.clone();
            let Some(end) = self.pull(&plane, &bucket, store, &row, &config).await? else {
                return Ok(None);
            };
            // Read again: a pull asked for while this one ran stays due.
            schedule = plane.schedule()?;
            schedule.pulled_since(&at_start, end.next);
            // After the comparison above: the calls are not an ask.
            schedule.own_calls = schedule.own_calls.merged(&end.made, now());
            if let Some((run, mut ended)) = end.run {
                ended.asked_at_start = at_start.asked;
                // One object row for a pull that found nothing: this
                // schedule, which counts it into the hour's idle row.
                let rows = schedule.ended(ended, now());
                if let Some(hour) = rows.closed_hour {
                    plane.record_run(&RunRow::idle(&hour))?;
                }
                if rows.own {
                    plane.record_run(&run)?;
                }
            }
            plane.save_schedule(&schedule)?;
            // The watchdog's copy: a lease past the pull's time, renewed
            // when a pull would pass it (a sink's retries never write D1,
            // and an idle pull about once an hour).
            if let Some(lease) = end.watchdog.lease(row.row_facts().alarm_at, end.next) {
                Store::new(self.env.d1("DB")?)
                    .set_alarm_at(&id, Some(lease))
                    .await?;
            }
        }
        if self.deleted.get() {
            return Ok(None);
        }
        if config.pulls_paused {
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
        let sinks_at = match outbox::run(&self.env, &config, &plane, &bucket, &row, &stopping).await
        {
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
        config: &Config,
    ) -> Result<Option<PullEnd>> {
        let id = row.id.as_str();
        if config.pulls_paused {
            return Ok(Some(PullEnd::unrun(now() + config.pull_interval.secs())));
        }
        // A deployment upgraded from before the event plane: this
        // connection's rows move over first, a bounded chunk per alarm.
        if !upgrade::step(plane, bucket, &self.env.d1("DB")?, id).await? {
            return Ok(Some(PullEnd::unrun(now())));
        }
        let started = now();
        let fence = Fence::new(store, row);
        let stopping = || self.deleted.get();
        let mut slice = Slice::new(&self.env, config, plane, bucket, &fence, row, &stopping);
        // Alerts a failed D1 write left behind go first.
        slice.flush_alerts().await;
        let end = pull::run(&mut slice).await?;
        if self.deleted.get() {
            return Ok(None);
        }
        let stats = &slice.stats;
        let shape = RunShape::of(end.outcome, stats.events, stats.detail.is_some());
        // Retention after the pull, so a backfill's last slice already drops
        // what it fetched from before the retention; a pull that found
        // nothing applies it hourly (it would write on every pull).
        let retained = plane.schedule()?.retention_due(shape, now());
        let dropped = if retained {
            retain(plane, bucket, now() - config.retention_days * 86_400).await?
        } else {
            0
        };
        // An upgraded object's old event rows, a bounded step a pull.
        plane.drop_event_rows(EVENT_ROWS_PER_PULL)?;
        if dropped > 0 {
            fence.progress(&plane.progress(now())?).await?;
        }
        pull::log_line(id, end.outcome, stats);
        let run = end.outcome.recorded().then(|| {
            let ended = EndedRun {
                started_at: started,
                shape,
                calls: stats.calls,
                // Set from the schedule the pull started with.
                asked_at_start: 0,
                retained,
            };
            let row = RunRow {
                started_at: snc_core::clock::rfc3339(started),
                finished_at: snc_core::clock::rfc3339(now()),
                outcome: end.outcome,
                detail: stats.detail.clone(),
                events: stats.events.try_into().unwrap_or(i64::MAX),
                calls: i64::from(stats.calls),
                statements: stats.statements.try_into().unwrap_or(i64::MAX),
                pulls: 1,
            };
            (row, ended)
        });
        // Superseded: the admin changed the connection under the slice; it
        // looks again with the new row (its change also woke the object).
        Ok(Some(PullEnd {
            next: snc_core::pull::run::next_pull_at(end.outcome, end.next_at, now()),
            watchdog: end.watchdog,
            run,
            made: std::mem::take(&mut slice.stats.made),
        }))
    }

    /// A failed slice counts as a pull, and ends the hour's idle row
    /// first, so the history stays in order.
    fn count_failed_slice(&self, plane: &Plane) -> Result<()> {
        let mut schedule = plane.schedule()?;
        if let Some(hour) = schedule.failed() {
            plane.record_run(&RunRow::idle(&hour))?;
        }
        plane.save_schedule(&schedule)
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
        let config = Config::from_env(&self.env);
        let (budget, faults) = (config.purge_objects_per_step, config.test_purge_faults);
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
        let budget = Config::from_env(&self.env).events_members_per_read;
        read_events(&self.plane()?, &self.bucket()?, q, budget).await
    }
}
