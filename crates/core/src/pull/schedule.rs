//! When a connection's object does what. One alarm serves several clocks
//! (the pull, each sink's retries and backlog, the daily maintenance), and
//! each job runs only when its own clock says so: a sink that fails every
//! second must never make the connection pull its instance every second.
//! No clock of its own: the object passes `now` (unix seconds) in, stores
//! the `Schedule` between alarms, and arms its alarm at `next_alarm`.

use serde::{Deserialize, Serialize};

use crate::pull::own_calls::OwnCalls;

/// Seconds between the pulls of a caught-up connection, unless configured:
/// an attack is seen within a minute or two, at one ServiceNow call a
/// minute when nothing happened (60 an hour; 12 at 300).
pub const DEFAULT_PULL_INTERVAL_SECS: u32 = 60;
/// The shortest interval a deployment or a connection may set.
pub const MIN_PULL_INTERVAL_SECS: u32 = 30;
/// The longest: an hour.
pub const MAX_PULL_INTERVAL_SECS: u32 = 3_600;
/// How far past a pull's due time the watchdog's copy (`alarm_at` in D1)
/// reaches: idle pulls renew it only when the next would pass it, so a
/// caught-up connection writes D1 about once an hour, not once a pull. A
/// lost alarm is found up to this much later (plus the watchdog's grace).
pub const WATCHDOG_LEASE_SECS: i64 = 3_600;
/// Idle pulls fold into one run row for at most this long.
pub const IDLE_FOLD_SECS: i64 = 3_600;
/// A sink's backlog or retry never wakes the object sooner than this after
/// the alarm that served it: the backlog drains at a bounded rate.
pub const SINK_FLOOR_SECS: i64 = 1;

/// Seconds between two pulls of a caught-up connection: 30 to 3,600.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PullInterval(u32);

impl PullInterval {
    pub fn new(secs: u32) -> Result<Self, PullIntervalError> {
        if (MIN_PULL_INTERVAL_SECS..=MAX_PULL_INTERVAL_SECS).contains(&secs) {
            Ok(PullInterval(secs))
        } else {
            Err(PullIntervalError(secs))
        }
    }

    /// A configured value: what does not read or lies outside the range
    /// keeps the default (a typo never pulls every second).
    pub fn from_config(raw: Option<&str>) -> Self {
        raw.and_then(|v| v.trim().parse::<u32>().ok())
            .and_then(|s| PullInterval::new(s).ok())
            .unwrap_or_default()
    }

    pub fn secs(self) -> i64 {
        i64::from(self.0)
    }
}

impl Default for PullInterval {
    fn default() -> Self {
        PullInterval(DEFAULT_PULL_INTERVAL_SECS)
    }
}

impl TryFrom<u32> for PullInterval {
    type Error = PullIntervalError;
    fn try_from(secs: u32) -> Result<Self, Self::Error> {
        PullInterval::new(secs)
    }
}

impl From<PullInterval> for u32 {
    fn from(i: PullInterval) -> u32 {
        i.0
    }
}

/// A pull interval outside 30 to 3,600 seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullIntervalError(pub u32);

impl std::fmt::Display for PullIntervalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pull_interval_secs must be between {MIN_PULL_INTERVAL_SECS} and {MAX_PULL_INTERVAL_SECS} seconds (got {})",
            self.0
        )
    }
}

/// The object's clocks, kept in its storage between alarms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// When the next pull is due. `None` for an object that has never
    /// recorded one (new, or from a release before this schedule): due now.
    pub pull_at: Option<i64>,
    /// Pulls asked for so far (wrapping): a pull asked for in the same
    /// second as the one running started still differs from its start.
    #[serde(default)]
    pub asked: u32,
    /// When the last pull ended (the API's `last_pull_at`: the connection's
    /// row in D1 is written only when a pull changes something).
    #[serde(default)]
    pub last_pull_at: Option<i64>,
    /// This hour's pulls that found nothing, not yet a run row.
    #[serde(default)]
    pub idle: Option<IdleRuns>,
    /// Pulls ended since this schedule was first kept: how a caller sees
    /// that a pull ran when it folded into the idle row.
    #[serde(default)]
    pub pulls: u64,
    /// The `asked` count the last pull that ended started with: a pull
    /// asked for has run once this reaches the count its ask made.
    #[serde(default)]
    pub asked_done: u32,
    /// When the retention last ran.
    #[serde(default)]
    pub retained_at: Option<i64>,
    /// The calls the last pulls made, whose `syslog_transaction` records
    /// are not stored (`own_calls`). Kept here: this row is written with
    /// every pull anyway.
    #[serde(default)]
    pub own_calls: OwnCalls,
}

/// How often a pull that found nothing applies the retention (each one
/// that stores events does): what passes the cutoff is dropped within the
/// hour, and an idle pull writes nothing for it.
pub const IDLE_RETENTION_SECS: i64 = 3_600;

/// Pulls that found nothing new, counted into one run row: from the first's
/// start to the last's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleRuns {
    pub since: i64,
    pub until: i64,
    pub pulls: u32,
    pub calls: u32,
}

impl IdleRuns {
    /// The detail of their history row.
    pub fn detail(&self) -> String {
        match self.pulls {
            1 => "1 pull found nothing new.".to_string(),
            n => format!("{n} pulls found nothing new."),
        }
    }
}

/// The history rows a pull's end writes, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunRows {
    /// An hour of idle pulls that is over (or that this pull ends).
    pub closed_hour: Option<IdleRuns>,
    /// The pull's own row (it did not fold into the idle hour).
    pub own: bool,
}

/// How a pull that ended shows in the run history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunShape {
    /// It found something, failed or was cut short: a row of its own.
    Own,
    /// It found nothing: counted into the hour's idle row.
    Idle,
}

impl RunShape {
    /// A finished pull that stored no new event and has nothing to say
    /// (no note, no deferral) is idle.
    pub fn of(outcome: crate::pull::run::RunOutcome, events: u64, has_detail: bool) -> RunShape {
        if outcome == crate::pull::run::RunOutcome::Done && events == 0 && !has_detail {
            RunShape::Idle
        } else {
            RunShape::Own
        }
    }
}

/// A pull that ended, as the run history sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedRun {
    pub started_at: i64,
    pub shape: RunShape,
    pub calls: u32,
    /// The schedule's `asked` when the pull started.
    pub asked_at_start: u32,
    /// It applied the retention.
    pub retained: bool,
}

/// What a pull's end writes to the connection's row in D1, next to what
/// the row held when the pull started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowFacts {
    pub event_count: u64,
    pub backfill_total: u64,
    pub backfill_done: bool,
    /// The row shows the hibernation error a finished run clears.
    pub hibernating: bool,
    /// The watchdog's copy of the due time.
    pub alarm_at: Option<i64>,
}

impl RowFacts {
    /// The progress the list shows differs: a run's progress write is due.
    pub fn counts_differ(&self, other: &RowFacts) -> bool {
        (self.event_count, self.backfill_total) != (other.event_count, other.backfill_total)
    }
}

/// What the connection's `alarm_at` in D1 holds after a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogCopy {
    /// What the slice read with the row: it did not write it.
    AsRead,
    /// What the slice wrote.
    Wrote(Option<i64>),
}

impl WatchdogCopy {
    /// The lease to write after a pull due at `next_at`, given what the row
    /// held when read (`watchdog_lease`).
    pub fn lease(self, as_read: Option<i64>, next_at: i64) -> Option<i64> {
        let held = match self {
            WatchdogCopy::AsRead => as_read,
            WatchdogCopy::Wrote(at) => at,
        };
        watchdog_lease(held, next_at)
    }
}

/// Whether a pull's end must write the connection's row: only when what
/// the list shows changed (counts, the backfill, a hibernation error it
/// clears) or the watchdog's lease would not cover the next pull. `Some`
/// carries the `alarm_at` to write.
pub fn row_after_pull(stored: &RowFacts, now_facts: &RowFacts, next_at: i64) -> Option<i64> {
    let lease = watchdog_lease(stored.alarm_at, next_at);
    let changed = stored.counts_differ(now_facts)
        || (now_facts.backfill_done && !stored.backfill_done)
        || stored.hibernating;
    match (changed, lease) {
        (_, Some(at)) => Some(at),
        (true, None) => stored.alarm_at.or(Some(next_at + WATCHDOG_LEASE_SECS)),
        (false, None) => None,
    }
}

/// The watchdog's due time to write for a pull due at `next_at`, if the
/// stored one does not cover it: missing, before `next_at`, or further than
/// a lease past it (a day-long stop's, which would hide a lost alarm).
pub fn watchdog_lease(stored: Option<i64>, next_at: i64) -> Option<i64> {
    match stored {
        Some(at) if at >= next_at && at <= next_at + WATCHDOG_LEASE_SECS => None,
        _ => Some(next_at + WATCHDOG_LEASE_SECS),
    }
}

/// What one alarm does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlarmPlan {
    /// Pull the instance (and what rides with a pull: retention, posture,
    /// inventory).
    pub pull: bool,
}

impl Schedule {
    /// A pull asked for (connect, reconnect, enable, "pull now", a posture
    /// check, the watchdog): due at once.
    pub fn pull_now(&mut self, now: i64) {
        self.pull_at = Some(now);
        self.asked = self.asked.wrapping_add(1);
    }

    /// What an alarm firing at `now` does.
    pub fn on_alarm(&self, now: i64) -> AlarmPlan {
        AlarmPlan {
            pull: self.pull_at.is_none_or(|at| at <= now),
        }
    }

    /// The alarm's pull ended and wants the next one at `next_at`.
    pub fn pulled(&mut self, next_at: i64) {
        self.pull_at = Some(next_at);
    }

    /// The pull that started from `at_start` ended and wants the next one at
    /// `next_at`, unless a pull was asked for while it ran (this schedule,
    /// read again, differs): that one stays due.
    pub fn pulled_since(&mut self, at_start: &Schedule, next_at: i64) {
        if self == at_start {
            self.pulled(next_at);
        }
    }

    /// Whether the pull that just ended applies the retention.
    pub fn retention_due(&self, shape: RunShape, now: i64) -> bool {
        shape == RunShape::Own
            || self
                .retained_at
                .is_none_or(|at| now - at >= IDLE_RETENTION_SECS || at > now)
    }

    /// A pull ended at `now`. Returns the hour of idle pulls to record as
    /// a row now, if one is over (or a pull that found something ends it,
    /// so the history stays in order); an idle pull joins the hour's row.
    pub fn ended(&mut self, run: EndedRun, now: i64) -> RunRows {
        let closed_hour = self.fold(run, now);
        RunRows {
            closed_hour,
            own: run.shape == RunShape::Own,
        }
    }

    fn fold(&mut self, run: EndedRun, now: i64) -> Option<IdleRuns> {
        self.last_pull_at = Some(now);
        self.pulls = self.pulls.wrapping_add(1);
        self.asked_done = run.asked_at_start;
        if run.retained {
            self.retained_at = Some(now);
        }
        match run.shape {
            RunShape::Own => self.idle.take(),
            RunShape::Idle => match &mut self.idle {
                Some(idle) if now - idle.since < IDLE_FOLD_SECS => {
                    idle.until = now;
                    idle.pulls = idle.pulls.saturating_add(1);
                    idle.calls = idle.calls.saturating_add(run.calls);
                    None
                }
                _ => self.idle.replace(IdleRuns {
                    since: run.started_at,
                    until: now,
                    pulls: 1,
                    calls: run.calls,
                }),
            },
        }
    }

    /// A slice that failed inside the worker counts as a pull; the hour's
    /// idle row, returned, is recorded before its failed row.
    pub fn failed(&mut self) -> Option<IdleRuns> {
        self.pulls = self.pulls.wrapping_add(1);
        self.idle.take()
    }

    /// When the next alarm fires, given the earliest time a sink wants a
    /// call (a retry, or more backlog): the pull's due time, or the sink's
    /// if earlier, but never sooner than `SINK_FLOOR_SECS` for a sink. Its
    /// backoff cannot move a pull earlier, and a backlog cannot hold the
    /// object in a loop.
    pub fn next_alarm(&self, now: i64, sinks_at: Option<i64>) -> i64 {
        let pull_at = self.pull_at.unwrap_or(now);
        match sinks_at {
            Some(s) => pull_at.min(s.max(now + SINK_FLOOR_SECS)),
            None => pull_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_outside_its_range_is_refused_and_a_bad_setting_keeps_the_default() {
        assert!(PullInterval::new(29).is_err());
        assert!(PullInterval::new(3_601).is_err());
        assert_eq!(PullInterval::new(30).map(PullInterval::secs), Ok(30));
        assert_eq!(PullInterval::from_config(Some(" 60 ")).secs(), 60);
        assert_eq!(PullInterval::from_config(Some("1")).secs(), 60);
        assert_eq!(PullInterval::from_config(Some("soon")).secs(), 60);
        assert_eq!(PullInterval::from_config(None).secs(), 60);
        let e = PullInterval::new(5).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("30 and 3600"), "{e}");
        assert!(serde_json::from_str::<PullInterval>("10").is_err());
    }

    fn idle(started_at: i64) -> EndedRun {
        EndedRun {
            started_at,
            shape: RunShape::Idle,
            calls: 1,
            asked_at_start: 0,
            retained: false,
        }
    }

    #[test]
    fn idle_pulls_fold_into_one_row_an_hour_and_a_pull_that_finds_something_ends_it() {
        let mut s = Schedule::default();
        let mut rows = Vec::new();
        // Two hours and a half of a pull a minute that finds nothing.
        for n in 0..150 {
            let at = 10_000 + n * 60;
            let written = s.ended(idle(at), at + 1);
            assert!(!written.own, "an idle pull has no row of its own");
            rows.extend(written.closed_hour);
        }
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].pulls, 60);
        assert_eq!(
            (rows[0].since, rows[0].until),
            (10_000, 10_000 + 59 * 60 + 1)
        );
        assert_eq!(rows[0].calls, 60);
        assert_eq!(rows[1].since, 10_000 + 60 * 60);
        assert_eq!(s.idle.map(|i| i.pulls), Some(30));
        // A pull that finds something: the hour so far is recorded first.
        let at = 10_000 + 150 * 60;
        let own = EndedRun {
            started_at: at,
            shape: RunShape::Own,
            calls: 1,
            asked_at_start: 3,
            retained: true,
        };
        let written = s.ended(own, at + 2);
        assert_eq!(written.closed_hour.map(|i| i.pulls), Some(30));
        assert!(written.own);
        assert_eq!(
            written.closed_hour.map(|i| i.detail()).as_deref(),
            Some("30 pulls found nothing new.")
        );
        assert_eq!(s.idle, None);
        assert_eq!(s.last_pull_at, Some(at + 2));
        assert_eq!(
            s.ended(own, at + 70),
            RunRows {
                closed_hour: None,
                own: true
            }
        );
        assert_eq!(s.pulls, 152, "every pull counted");
        // A failed slice counts, and closes an open idle hour first.
        let mut failing = s.clone();
        failing.ended(idle(at + 80), at + 81);
        assert_eq!(failing.failed().map(|i| i.pulls), Some(1));
        assert_eq!(failing.failed(), None);
        assert_eq!(failing.pulls, 155);
        assert_eq!(s.asked_done, 3);
        // The retention: every pull that stores, an idle one hourly.
        assert!(s.retention_due(RunShape::Own, at + 80));
        assert!(!s.retention_due(RunShape::Idle, at + 80));
        assert!(s.retention_due(RunShape::Idle, at + 70 + IDLE_RETENTION_SECS));
        assert!(Schedule::default().retention_due(RunShape::Idle, at));
    }

    #[test]
    fn only_a_finished_pull_with_nothing_new_and_nothing_to_say_is_idle() {
        use crate::pull::run::RunOutcome;
        assert_eq!(RunShape::of(RunOutcome::Done, 0, false), RunShape::Idle);
        assert_eq!(RunShape::of(RunOutcome::Done, 1, false), RunShape::Own);
        assert_eq!(RunShape::of(RunOutcome::Done, 0, true), RunShape::Own);
        assert_eq!(RunShape::of(RunOutcome::More, 0, false), RunShape::Own);
        assert_eq!(RunShape::of(RunOutcome::Deferred, 0, false), RunShape::Own);
        assert_eq!(RunShape::of(RunOutcome::Failed, 0, false), RunShape::Own);
    }

    #[test]
    fn an_idle_pull_writes_no_row_until_its_lease_runs_short_and_a_change_always_does() {
        let row = RowFacts {
            event_count: 10,
            backfill_total: 10,
            backfill_done: true,
            hibernating: false,
            alarm_at: None,
        };
        // No lease yet: written once, an hour past the next pull.
        assert_eq!(
            row_after_pull(&row, &row, 1_060),
            Some(1_060 + WATCHDOG_LEASE_SECS)
        );
        let leased = RowFacts {
            alarm_at: Some(1_060 + WATCHDOG_LEASE_SECS),
            ..row
        };
        let mut writes = 0;
        let mut stored = leased;
        // A day of pulls a minute that find nothing.
        for n in 0..1_440 {
            let next = 1_060 + n * 60;
            if let Some(at) = row_after_pull(&stored, &stored, next) {
                writes += 1;
                stored.alarm_at = Some(at);
            }
        }
        assert_eq!(writes, 23, "about one write an hour");
        // New events, a finished backfill, a hibernation cleared: written.
        let more = RowFacts {
            event_count: 11,
            ..leased
        };
        assert_eq!(row_after_pull(&leased, &more, 1_060), leased.alarm_at);
        let backfilling = RowFacts {
            backfill_done: false,
            ..leased
        };
        assert!(row_after_pull(&backfilling, &leased, 1_060).is_some());
        let hibernating = RowFacts {
            hibernating: true,
            ..leased
        };
        assert!(row_after_pull(&hibernating, &leased, 1_060).is_some());
        // After a slice: what it wrote, else what the row held.
        let leased = Some(1_060 + WATCHDOG_LEASE_SECS);
        assert_eq!(WatchdogCopy::AsRead.lease(leased, 1_060), None);
        assert_eq!(WatchdogCopy::Wrote(None).lease(leased, 1_060), leased);
        assert_eq!(WatchdogCopy::Wrote(leased).lease(None, 1_060), None);
        // A stop's far due time is brought back within a lease.
        assert_eq!(
            watchdog_lease(Some(1_000 + 86_400), 1_060),
            Some(1_060 + WATCHDOG_LEASE_SECS)
        );
    }

    #[test]
    fn a_new_object_pulls_at_once_and_then_only_when_due() {
        let mut s = Schedule::default();
        assert!(s.on_alarm(1_000).pull);
        s.pulled(1_060);
        assert_eq!(s.next_alarm(1_000, None), 1_060);
        assert!(!s.on_alarm(1_059).pull);
        assert!(s.on_alarm(1_060).pull);
        s.pull_now(1_010);
        assert!(s.on_alarm(1_010).pull);
    }

    /// The regression behind the reliability issue: a sink answering 503 +
    /// Retry-After: 1 (or a backlog wanting the alarm at once) drove a full
    /// pull every second. Driven with a fake clock for three minutes, the
    /// object now pulls on the pull's own clock only, and the sink is
    /// served no more than once a second.
    #[test]
    fn a_failing_sink_never_makes_the_connection_pull_sooner() {
        let interval = PullInterval::new(60).map(PullInterval::secs).unwrap_or(0);
        let mut s = Schedule::default();
        let (mut now, end) = (10_000, 10_000 + 180);
        let (mut pulls, mut alarms) = (0, 0);
        while now < end {
            alarms += 1;
            let plan = s.on_alarm(now);
            if plan.pull {
                pulls += 1;
            }
            // The sink wants another try at once (a backlog) or in a second.
            let sinks_at = Some(if alarms % 2 == 0 { now } else { now + 1 });
            if plan.pull {
                s.pulled(now + interval);
            }
            let next = s.next_alarm(now, sinks_at);
            assert!(next > now, "the alarm never fires again in the same second");
            now = next;
        }
        assert_eq!(pulls, 3, "one pull a minute over three minutes");
        assert!(alarms <= 181, "the sink is served at most once a second");
    }

    #[test]
    fn a_pull_asked_for_while_one_runs_is_not_overwritten_by_its_end() {
        let at_start = Schedule {
            pull_at: Some(100),
            ..Schedule::default()
        };
        let mut read_again = at_start.clone();
        read_again.pull_now(130);
        read_again.pulled_since(&at_start, 400);
        assert_eq!(read_again.pull_at, Some(130));
        assert!(read_again.on_alarm(131).pull);
        let mut untouched = at_start.clone();
        untouched.pulled_since(&at_start, 400);
        assert_eq!(untouched.pull_at, Some(400));
        // Asked for in the very second the running pull started.
        let mut same_second = at_start.clone();
        same_second.pull_now(100);
        same_second.pulled_since(&at_start, 400);
        assert_eq!(same_second.pull_at, Some(100));
    }

    #[test]
    fn a_sink_due_after_the_pull_waits_for_it_and_a_pull_wanting_more_goes_on_at_once() {
        let mut s = Schedule::default();
        s.pulled(800);
        assert_eq!(s.next_alarm(500, Some(2_000)), 800);
        assert_eq!(s.next_alarm(500, Some(500)), 501, "a sink's floor");
        // A long backfill's next slice: due now, sinks or not.
        s.pulled(800);
        assert_eq!(s.next_alarm(800, Some(800)), 800);
        assert!(s.on_alarm(800).pull);
    }
}
