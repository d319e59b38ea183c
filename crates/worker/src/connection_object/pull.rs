//! One pull slice of one connection, run by its Durable Object's alarm: a
//! short loop around core's `PullRun` (which decides everything) that moves
//! the bytes, archives each page to R2, then indexes it in the object. The connection's row in D1 is written only
//! through `Fence` (its generation): a reconnect, an enable or a disable
//! made while this slice runs cannot be overwritten by it.

use std::collections::HashSet;

use snc_core::problem::ProblemCode;
use snc_core::pull::archive;
use snc_core::pull::cursor::Key;
use snc_core::pull::events::{parse_servicenow_time, Event};
pub use snc_core::pull::run::RunOutcome;
use snc_core::pull::run::{
    Action, BackfillState, InventoryFirst, Outcome, PageToStore, PullConfig, PullRun, RunAuth,
    StoredCursor,
};
use snc_core::secret::OpenedSecret;
use snc_core::watch::detect::Detector;
use worker::{console_log, Bucket, Env, Result};

use super::plane::{Plane, StoredPage};
use crate::config::Config;
use crate::d1::alerts::AlertStore;
use crate::d1::connections::{ConnectionRow, Fence};
use crate::{now, now_ms, transport};
use snc_core::pull::index::{self, IndexedEvent};
use snc_core::pull::own_calls::OwnCall;
use snc_core::pull::schedule::{row_after_pull, RowFacts, WatchdogCopy};

/// The connection's row gets the progress at most this often during a run.
const PROGRESS_EVERY_MS: u64 = 1_000;

/// What a slice decided: its outcome and when the next alarm should fire
/// (`None`: no pull until something changes).
pub struct SliceEnd {
    pub outcome: RunOutcome,
    pub next_at: Option<i64>,
    pub watchdog: WatchdogCopy,
}

impl SliceEnd {
    fn new(outcome: RunOutcome, next_at: Option<i64>) -> Self {
        SliceEnd {
            outcome,
            next_at,
            watchdog: WatchdogCopy::AsRead,
        }
    }
}

#[derive(Default)]
pub struct RunStats {
    /// Where a run's wall time went, for the log line: from the slice's
    /// start, until the first page's read (secrets opened, inventory read).
    pub setup_ms: u64,
    pub fetch_ms: u64,
    pub parse_ms: u64,
    pub encode_ms: u64,
    pub archive_ms: u64,
    pub index_ms: u64,
    /// The rules over the page's new events, their state and alerts saved.
    pub detect_ms: u64,
    /// From the slice's start until its pull decided to end.
    pub run_ms: u64,
    pub calls: u32,
    /// The calls themselves, kept so the next pulls know their records in
    /// `syslog_transaction` (`own_calls`).
    pub made: Vec<OwnCall>,
    /// R2 PUTs (archive objects written).
    pub statements: usize,
    /// Writes to the connection's D1 row (progress, schedule, tokens).
    pub d1_writes: u32,
    /// Rows the pages' stores wrote in the object (members, page, keys,
    /// cursor, count, index entries): what the object bills.
    pub object_rows: u64,
    pub events: u64,
    pub detail: Option<String>,
}

/// A page's archive object: its key, its members' offsets and its size.
struct ArchivedPage {
    key: String,
    members: String,
    bytes: usize,
}

/// Everything one slice works with.
pub struct Slice<'a> {
    pub env: &'a Env,
    /// Read once by the alarm.
    pub config: &'a Config,
    pub plane: &'a Plane,
    pub bucket: &'a Bucket,
    pub fence: &'a Fence,
    pub row: &'a ConnectionRow,
    /// Asked between steps: true once the connection is being deleted.
    pub stopping: &'a dyn Fn() -> bool,
    pub stats: RunStats,
    started_ms: u64,
    last_progress_ms: u64,
    /// Restored from the object at the slice's first page, kept for the
    /// others (its state is still saved with every page).
    detector: Option<Detector>,
    /// What the connection's row holds as far as this slice knows: it is
    /// written only when a value the list shows changes.
    held: RowFacts,
}

impl<'a> Slice<'a> {
    pub fn new(
        env: &'a Env,
        config: &'a Config,
        plane: &'a Plane,
        bucket: &'a Bucket,
        fence: &'a Fence,
        row: &'a ConnectionRow,
        stopping: &'a dyn Fn() -> bool,
    ) -> Self {
        Slice {
            env,
            config,
            plane,
            bucket,
            fence,
            row,
            stopping,
            stats: RunStats::default(),
            started_ms: now_ms(),
            last_progress_ms: 0,
            detector: None,
            held: row.row_facts(),
        }
    }

    /// Ends the slice: writes the schedule and progress to the row (fenced).
    async fn finish(
        &mut self,
        outcome: RunOutcome,
        next_at: i64,
        backfill: BackfillState,
    ) -> Result<SliceEnd> {
        // A page's alerts that D1 refused a moment ago go before the run
        // reports itself done: a caught-up connection shows every alert.
        self.flush_alerts().await;
        let progress = self.plane.progress(now())?;
        let facts = RowFacts {
            event_count: progress.event_count,
            backfill_total: progress.backfill_total,
            backfill_done: backfill == BackfillState::Done,
            hibernating: false,
            alarm_at: None,
        };
        // A pull that found nothing writes no row: the API reads its time
        // from the object.
        let Some(alarm_at) = row_after_pull(&self.held, &facts, next_at) else {
            return Ok(SliceEnd::new(outcome, Some(next_at)));
        };
        self.stats.d1_writes += 1;
        let written = self
            .fence
            .finish_run(&progress, next_at, alarm_at, backfill)
            .await?;
        if !written {
            return Ok(SliceEnd::new(RunOutcome::Superseded, None));
        }
        Ok(SliceEnd {
            outcome,
            next_at: Some(next_at),
            watchdog: WatchdogCopy::Wrote(Some(alarm_at)),
        })
    }

    async fn fail(
        &mut self,
        code: ProblemCode,
        detail: &str,
        retry_at: Option<i64>,
    ) -> Result<SliceEnd> {
        self.stats.detail = Some(detail.to_string());
        self.stats.d1_writes += 1;
        let written = self.fence.set_error(code, detail, now(), retry_at).await?;
        Ok(if written {
            SliceEnd {
                outcome: RunOutcome::Failed,
                next_at: retry_at,
                watchdog: WatchdogCopy::Wrote(retry_at),
            }
        } else {
            SliceEnd::new(RunOutcome::Superseded, None)
        })
    }

    /// Progress for the page and the list, at most once a second.
    async fn maybe_progress(&mut self) -> Result<bool> {
        if now_ms().saturating_sub(self.last_progress_ms) < PROGRESS_EVERY_MS {
            return Ok(true);
        }
        self.last_progress_ms = now_ms();
        // Alerts before progress: what reads as caught up has its alerts.
        self.flush_alerts().await;
        let p = self.plane.progress(now())?;
        let counted = RowFacts {
            event_count: p.event_count,
            backfill_total: p.backfill_total,
            ..self.held
        };
        if !self.held.counts_differ(&counted) {
            return Ok(true);
        }
        self.stats.d1_writes += 1;
        self.held.event_count = p.event_count;
        self.held.backfill_total = p.backfill_total;
        self.fence.progress(&p).await
    }

    /// Archives one page's new events, then indexes them with the cursor.
    /// Hands queued alerts to D1; what fails stays queued for the next page.
    pub async fn flush_alerts(&mut self) {
        let Ok(queued) = self.plane.queued_alerts() else {
            return;
        };
        if queued.is_empty() {
            return;
        }
        let store = match self.env.d1("DB") {
            Ok(db) => AlertStore::new(db),
            Err(e) => {
                console_log!("alerts: no D1 binding: {e}");
                return;
            }
        };
        match store.upsert(&queued, now()).await {
            Ok(()) => {
                self.stats.d1_writes += 1;
                // D1 has them: the sinks may send them now.
                if let Err(e) = self
                    .plane
                    .feed_alerts(&queued, now())
                    .and_then(|()| self.plane.forget_alerts(&queued))
                {
                    console_log!("alerts: could not clear the outbox: {e}");
                }
            }
            Err(e) => console_log!("alerts: {} kept for the next page: {e}", queued.len()),
        }
    }

    /// Stores one page: its new events archived, then indexed with the
    /// page's cursor in one commit, then judged by the rules.
    async fn store_page(&mut self, page: &PageToStore) -> Result<()> {
        let fresh = self.fresh_events(page)?;
        let events: Vec<&Event> = fresh.iter().map(|(e, _)| *e).collect();
        let cursor = page.cursor_to_write(fresh.len());
        let archived = self.archive_page(page, cursor, &events).await?;
        if (self.stopping)() {
            return Ok(());
        }
        let inserted = self.index_page(page, cursor, &fresh, &archived)?;
        self.judge(&events).await?;
        self.stats.events += inserted;
        Ok(())
    }

    /// The page's events the index does not hold yet, with their times:
    /// only one at or before the table's stored cursor can be held (core's
    /// `may_be_indexed`: the overlap's re-reads), looked up in the table's
    /// recent keys; a record twice in one answer is taken once.
    fn fresh_events<'p>(&self, page: &'p PageToStore) -> Result<Vec<(&'p Event, i64)>> {
        let stored_until = self
            .plane
            .cursors()?
            .into_iter()
            .find(|c| c.source_table == page.source)
            .and_then(|c| c.created_on)
            .and_then(|t| parse_servicenow_time(&t));
        let timed: Vec<(&Event, i64)> = page
            .events
            .iter()
            .filter_map(|e| Some((e, snc_core::clock::parse_rfc3339(&e.occurred_at)?)))
            .collect();
        let recent = if index::needs_recent_keys(timed.iter().map(|(_, at)| *at), stored_until) {
            self.plane.recent_keys(page.source)?
        } else {
            HashSet::new()
        };
        let records = timed.iter().map(|(e, at)| (*at, e.sys_id()));
        Ok(index::fresh(records, stored_until, &recent)
            .into_iter()
            .filter_map(|n| timed.get(n).copied())
            .collect())
    }

    /// The new events' archive object, written before anything points at
    /// it (written again, the same key is overwritten); none for a page
    /// with nothing new.
    async fn archive_page(
        &mut self,
        page: &PageToStore,
        cursor: Option<&Key>,
        fresh: &[&Event],
    ) -> Result<ArchivedPage> {
        let t0 = now_ms();
        let to = cursor.unwrap_or(&page.before);
        let ids: Vec<&str> = fresh.iter().map(|e| e.sys_id()).collect();
        let key = archive::page_key(&self.row.id, page.source, &page.before, to, &ids);
        let mut archived = ArchivedPage {
            key,
            members: String::new(),
            bytes: 0,
        };
        if !fresh.is_empty() {
            let object = crate::archive::encode(fresh).await?;
            self.stats.encode_ms += now_ms() - t0;
            archived.bytes = object.bytes.len();
            archived.members = object.members;
            self.bucket
                .put(&archived.key, object.bytes)
                .execute()
                .await?;
            self.stats.statements += 1;
        }
        self.stats.archive_ms += now_ms() - t0;
        Ok(archived)
    }

    /// One commit: the page row, its member rows and recent keys, the
    /// table's cursor and the count; then the deletions the page shows in the inventory's
    /// tables (a revoked role, a deleted user leave nothing for its sync to
    /// read). Returns how many events were new to the index.
    fn index_page(
        &mut self,
        page: &PageToStore,
        cursor: Option<&Key>,
        fresh: &[(&Event, i64)],
        archived: &ArchivedPage,
    ) -> Result<u64> {
        let t1 = now_ms();
        let entries: Vec<IndexedEvent> = fresh
            .iter()
            .map(|(e, at)| IndexedEvent {
                occurred_at: *at,
                sys_id: e.sys_id(),
                kind: e.kind.as_str(),
                actor: e.actor.as_deref(),
            })
            .collect();
        let cursor_at = cursor.and_then(|k| parse_servicenow_time(&k.created_on));
        let inserted = self.plane.store_page(&StoredPage {
            source_table: page.source,
            key: &archived.key,
            bytes: archived.bytes,
            members: &archived.members,
            recent: cursor_at.and_then(|at| index::recent_keys(&entries, at, page.read_at)),
            keys_floor: cursor_at
                .zip(parse_servicenow_time(&page.before.created_on))
                .map(|(at, before)| index::prune_floor(before, at, page.read_at)),
            entries,
            cursor: cursor.map(|k| (k.created_on.as_str(), k.sys_id.as_str())),
            backfill_total: page.total,
            caught_up: page.caught_up,
            page_size: page.page_size,
            read_at: page.read_at,
        })?;
        self.stats.object_rows += self.plane.take_rows_written();
        for (e, _) in fresh {
            if let Some((table, sys_id)) = snc_core::watch::inventory::deleted_record(e) {
                self.plane.inventory_delete(table, &sys_id)?;
            }
        }
        self.stats.index_ms += now_ms() - t1;
        Ok(inserted)
    }

    /// The rules see each event once (what the index just took), in the
    /// same step as the index: the detector's state and the alerts it
    /// raised commit with the page.
    async fn judge(&mut self, fresh: &[&Event]) -> Result<()> {
        let t2 = now_ms();
        let detector = match self.detector.as_mut() {
            Some(d) => d,
            None => self.detector.insert(
                Detector::restore(self.config.rules(), self.plane.meta("detector")?.as_deref())
                    .with_ip_data(crate::ip_table::get()),
            ),
        };
        let alerts = detector.handle(&self.row.id, fresh, self.plane);
        self.plane.set_meta("detector", &detector.save())?;
        self.plane.queue_alerts(&alerts)?;
        self.stats.detect_ms += now_ms() - t2;
        if !alerts.is_empty() {
            self.flush_alerts().await;
        }
        Ok(())
    }
}

/// The credentials this slice's run calls with, from the connection's
/// sealed secrets (a value sealed under a rotated-out key is sealed again
/// on the way); `Err` ends the slice when they cannot be opened or are not
/// all there.
async fn open_auth(
    slice: &mut Slice<'_>,
    ring: &snc_core::seal::KeyRing,
) -> Result<std::result::Result<RunAuth, SliceEnd>> {
    let row = slice.row;
    let id = row.id.as_str();
    let mut opened = Vec::new();
    for s in slice.fence.store().secrets(id).await? {
        let Ok(secret) = ring.open(&s.sealed, &crate::sealing::context(id, s.kind)) else {
            return slice.fail(ProblemCode::CredentialsRejected, "The stored credentials cannot be opened with ENCRYPTION_KEY or any key in ENCRYPTION_KEYS_PREVIOUS. Put the key that sealed them back in ENCRYPTION_KEYS_PREVIOUS, or reconnect.", None).await.map(Err);
        };
        if ring.is_stale(&s.sealed) {
            crate::sealing::reseal(slice.fence.store(), ring, id, &s).await?;
        }
        opened.push(OpenedSecret {
            kind: s.kind,
            secret,
            expires_at: s
                .expires_at
                .as_deref()
                .and_then(snc_core::clock::parse_rfc3339),
        });
    }
    match RunAuth::from_stored(row.method, &row.username, row.client_id.as_deref(), opened) {
        Some(auth) => Ok(Ok(auth)),
        None => slice
            .fail(
                ProblemCode::CredentialsRejected,
                "No stored credentials. Reconnect.",
                None,
            )
            .await
            .map(Err),
    }
}

/// Runs one slice of the connection's pulls: core's `PullRun` decides,
/// this loop moves the bytes and keeps what it is told to keep.
pub async fn run(slice: &mut Slice<'_>) -> Result<SliceEnd> {
    let row = slice.row;
    let config = slice.config;
    let interval = row.pull_interval(config.pull_interval).secs();
    if !snc_core::api::connection::may_pull(row.enabled, row.status, row.status_code) {
        return Ok(SliceEnd::new(RunOutcome::Skipped, None));
    }
    let Some(ring) = config.keys.as_ref() else {
        slice.stats.detail =
            Some("ENCRYPTION_KEY or ENCRYPTION_KEYS_PREVIOUS is missing or wrong".into());
        return Ok(SliceEnd::new(RunOutcome::Deferred, Some(now() + interval)));
    };
    let id = row.id.as_str();
    // The URL passed the policy at connect; check again in case it narrowed.
    let Ok(instance) =
        snc_core::connect::input::check_instance_url(&row.instance_url, &config.policy)
    else {
        return slice
            .fail(
                ProblemCode::InstanceUrlForbidden,
                "The instance URL is no longer allowed by INSTANCE_HOSTS.",
                None,
            )
            .await;
    };
    let key = ring.current();
    let auth = match open_auth(slice, ring).await? {
        Ok(auth) => auth,
        Err(end) => return Ok(end),
    };
    let backfill_from =
        snc_core::clock::parse_rfc3339(&row.backfill_from).unwrap_or_else(|| now() - 7 * 86_400);
    let run_config = PullConfig {
        budget_ms: config.pull_budget_ms,
        max_calls: config.pull_max_calls,
        page_size: config.pull_page_size,
        answer_cap: config.answer_cap,
        route: row.read_route(),
        inventory: InventoryFirst::Sync,
        interval: row.pull_interval(config.pull_interval),
    };
    let stored: Vec<(String, StoredCursor)> = slice
        .plane
        .cursors()?
        .into_iter()
        .map(|c| c.stored())
        .collect();
    let stored: Vec<(&str, StoredCursor)> = stored
        .iter()
        .map(|(t, c)| (t.as_str(), c.clone()))
        .collect();
    let mut pull = PullRun::new(
        instance.clone(),
        id,
        run_config,
        auth,
        &stored,
        backfill_from,
        now_ms(),
    )
    .with_inventory_reads(super::inventory::from_storage(slice.plane)?.riding_items())
    .with_own_calls(&row.username, &slice.plane.schedule()?.own_calls);
    let deadline = config.call_deadline;
    slice.stats.setup_ms = now_ms().saturating_sub(slice.started_ms);
    // The next page's call, sent before the page being stored was read.
    let mut ahead: Option<transport::InFlight> = None;
    loop {
        if (slice.stopping)() {
            slice.stats.calls = pull.calls();
            slice.stats.made = pull.made_calls().to_vec();
            return Ok(SliceEnd::new(RunOutcome::Superseded, None));
        }
        let t0 = now_ms();
        let action = pull.poll(now_ms());
        // Core's own work: reading and normalizing pages, deciding.
        slice.stats.parse_ms += now_ms() - t0;
        match action {
            Action::Send(req) => {
                let t0 = now_ms();
                let answer = transport::send_capped(&req, deadline, config.answer_cap).await;
                if let Err(e @ snc_core::http::CallError::TooLarge { .. }) = &answer {
                    console_log!("pull {id}: {e}; the page is asked again smaller");
                }
                slice.stats.fetch_ms += now_ms() - t0;
                pull.handle_response(now_ms(), answer);
            }
            Action::SendAhead(req) => {
                ahead = Some(transport::InFlight::start(req, deadline, config.answer_cap).await);
            }
            Action::Store(page) => {
                let answer_ahead = match ahead.take() {
                    Some(call) => {
                        let mut stored_at = 0;
                        let store = async {
                            let stored = slice.store_page(&page).await;
                            stored_at = now_ms();
                            stored
                        };
                        let (answer, stored) =
                            futures_util::future::join(call.answer(), store).await;
                        if let Err(e @ snc_core::http::CallError::TooLarge { .. }) = &answer {
                            console_log!("pull {id}: {e}; the page is asked again smaller");
                        }
                        stored?;
                        // What the page's store left to wait for the next.
                        slice.stats.fetch_ms += now_ms().saturating_sub(stored_at);
                        Some(answer)
                    }
                    None => {
                        slice.store_page(&page).await?;
                        None
                    }
                };
                pull.handle_stored(answer_ahead);
                if (slice.stopping)() || !slice.maybe_progress().await? {
                    slice.stats.calls = pull.calls();
                    slice.stats.made = pull.made_calls().to_vec();
                    return Ok(SliceEnd::new(RunOutcome::Superseded, None));
                }
            }
            Action::KeepTokens {
                access,
                expires_at,
                refresh,
            } => {
                slice.stats.d1_writes += 1;
                let mut written = slice
                    .fence
                    .replace_secret(&crate::sealing::seal(key, id, &access, Some(expires_at))?)
                    .await?;
                if let Some(refresh) = &refresh {
                    slice.stats.d1_writes += 1;
                    written &= slice
                        .fence
                        .replace_secret(&crate::sealing::seal(key, id, refresh, None)?)
                        .await?;
                }
                if !written {
                    slice.stats.calls = pull.calls();
                    slice.stats.made = pull.made_calls().to_vec();
                    return Ok(SliceEnd::new(RunOutcome::Superseded, None));
                }
            }
            Action::RememberPageSize { source, page_size } => {
                slice.plane.remember_page_size(source, page_size)?;
            }
            Action::RememberTotal { source, total } => {
                slice.plane.remember_total(source, total)?;
            }
            Action::SyncInventory(start) => {
                // What the rules ask about, before any page is judged: the
                // posture when due (its property names, for drift) and the
                // accounts and roles up to now. A failed posture check stays
                // due for the next slice.
                if slice.plane.posture_due(now())? && !(slice.stopping)() {
                    super::posture::check(
                        slice.plane,
                        slice.fence,
                        slice.row.method,
                        &instance,
                        &start.auth,
                        run_config.route,
                        deadline,
                    )
                    .await?;
                }
                let synced = super::inventory::sync(
                    slice.plane,
                    &instance,
                    start,
                    run_config.route,
                    deadline,
                    slice.stopping,
                )
                .await?;
                let behind_since = slice.plane.inventory_behind_since(synced, now())?;
                pull.handle_inventory(now_ms(), synced, behind_since);
            }
            Action::Sleep(ms) => {
                worker::Delay::from(std::time::Duration::from_millis(ms)).await;
            }
            Action::Finish(end) => {
                slice.stats.calls = pull.calls();
                slice.stats.made = pull.made_calls().to_vec();
                slice.stats.run_ms = now_ms().saturating_sub(slice.started_ms);
                if end.detail.is_some() {
                    slice.stats.detail = end.detail.clone();
                }
                return match (end.outcome, end.error) {
                    (Outcome::Failed, Some((code, message))) => {
                        slice.fail(code, &message, end.next_at).await
                    }
                    (Outcome::Done, _) => {
                        let next = end.next_at.unwrap_or(now() + interval);
                        slice
                            .finish(RunOutcome::Done, next, BackfillState::of(end.caught_up))
                            .await
                    }
                    (Outcome::More, _) => {
                        slice
                            .finish(RunOutcome::More, now(), BackfillState::Going)
                            .await
                    }
                    (_, _) => {
                        let next = end.next_at.unwrap_or(now() + interval);
                        slice
                            .finish(RunOutcome::Deferred, next, BackfillState::Going)
                            .await
                    }
                };
            }
        }
    }
}

/// The log line of a slice: where its time went.
pub fn log_line(id: &str, outcome: RunOutcome, s: &RunStats) {
    console_log!(
        "pull {id}: {} ({} calls, {} archive writes, {} d1 writes, {} object rows, {} new events; fetch {} ms, parse {} ms, archive {} ms ({} ms gzip), index {} ms, detect {} ms, the next page's fetch overlapped; {} ms in all, {} ms before the first read)",
        outcome.as_str(),
        s.calls,
        s.statements,
        s.d1_writes,
        s.object_rows,
        s.events,
        s.fetch_ms,
        s.parse_ms,
        s.archive_ms,
        s.encode_ms,
        s.index_ms,
        s.detect_ms,
        s.run_ms,
        s.setup_ms
    );
}
