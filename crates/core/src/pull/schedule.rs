//! When a connection's object does what. One alarm serves several clocks
//! (the pull, each sink's retries and backlog, the daily maintenance), and
//! each job runs only when its own clock says so: a sink that fails every
//! second must never make the connection pull its instance every second.
//! No clock of its own: the object passes `now` (unix seconds) in, stores
//! the `Schedule` between alarms, and arms its alarm at `next_alarm`.

use serde::{Deserialize, Serialize};

/// Seconds between the pulls of a caught-up connection, unless configured.
pub const DEFAULT_PULL_INTERVAL_SECS: u32 = 300;
/// The shortest interval a deployment or a connection may set.
pub const MIN_PULL_INTERVAL_SECS: u32 = 30;
/// The longest: an hour.
pub const MAX_PULL_INTERVAL_SECS: u32 = 3_600;
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// When the next pull is due. `None` for an object that has never
    /// recorded one (new, or from a release before this schedule): due now.
    pub pull_at: Option<i64>,
    /// Pulls asked for so far (wrapping): a pull asked for in the same
    /// second as the one running started still differs from its start.
    #[serde(default)]
    pub asked: u32,
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
        assert_eq!(PullInterval::from_config(Some("1")).secs(), 300);
        assert_eq!(PullInterval::from_config(Some("soon")).secs(), 300);
        assert_eq!(PullInterval::from_config(None).secs(), 300);
        let e = PullInterval::new(5).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("30 and 3600"), "{e}");
        assert!(serde_json::from_str::<PullInterval>("10").is_err());
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
            asked: 0,
        };
        let mut read_again = at_start;
        read_again.pull_now(130);
        read_again.pulled_since(&at_start, 400);
        assert_eq!(read_again.pull_at, Some(130));
        assert!(read_again.on_alarm(131).pull);
        let mut untouched = at_start;
        untouched.pulled_since(&at_start, 400);
        assert_eq!(untouched.pull_at, Some(400));
        // Asked for in the very second the running pull started.
        let mut same_second = at_start;
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
