//! One sink's step in one connection's alarm, as decisions with no I/O and
//! no clock of its own: whether the step is due at all, how many calls it
//! may make, and, from how its sending ended, when the sink is due again
//! and what its state becomes. The object reads the archive, sends, and
//! stores the cursor; `SinkStep` says what follows from each outcome.

use super::kinds::SinkState;
use super::verdicts::{after_failure, Verdict, REFUSED_RETRY_SECS};

/// Calls one sink may make in one alarm, so a large backlog cannot hold
/// the alarm (the next alarm comes a second later while there is more).
pub const CALLS_PER_SINK: u32 = 10;
/// Calls beyond those, to isolate an item a receiver refuses (halving a
/// batch of the largest size takes about twice its log2).
pub const NARROWING_CALLS: u32 = 24;
/// How long the newest item, refused alone, waits for a later one.
pub const WITNESS_WAIT_SECS: i64 = 60;

/// A sink's clock for one connection, as stored beside its cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkClock {
    /// Not before this (unix seconds): a backoff, or a witness's wait.
    pub next_at: i64,
    /// Failures in a row.
    pub failures: u32,
    /// When the failures in a row began.
    pub failing_since: Option<i64>,
}

/// What an alarm finds waiting for a sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    /// Events and alerts stored past the sink's cursor.
    pub pending: u64,
    /// A range replay asked and not yet done.
    pub replay: bool,
    /// A dead-letter replay asked and not yet done.
    pub dead_letters: bool,
}

impl Waiting {
    fn any(&self) -> bool {
        self.pending > 0 || self.replay || self.dead_letters
    }
}

/// Whether a sink's step runs in this alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStart {
    /// Backing off, or waiting for a witness: due again at this time.
    NotDue(i64),
    /// Nothing to send: no alarm is needed for it.
    Idle,
    /// Send.
    Go,
}

/// How a step's sending ended, as the object saw it.
#[derive(Debug, Default)]
pub struct StepOutcome {
    /// The call that failed (or a credential that would not open), and when.
    pub failure: Option<(Verdict, i64)>,
    /// The newest item was refused alone: it waits for a later one.
    pub waiting_for_witness: bool,
    /// What is still waiting after the step.
    pub left: Waiting,
}

/// When the sink is due again and what the control plane shows.
#[derive(Debug, PartialEq, Eq)]
pub struct StepEnd {
    /// The sink's clock to store (a delivery resets its failures; a
    /// failure or a witness's wait sets when it is due).
    pub clock: SinkClock,
    /// The object's alarm for this sink: `None` when nothing waits.
    pub next: Option<i64>,
    /// A failure to report: (when, the answer's status, its message).
    pub failed: Option<(i64, u16, String)>,
    /// The sink's state, when the failure changes it.
    pub state: Option<SinkState>,
}

/// One sink's step for one connection.
#[derive(Debug)]
pub struct SinkStep {
    clock: SinkClock,
    calls: u32,
}

impl SinkStep {
    pub fn new(clock: SinkClock) -> SinkStep {
        SinkStep { clock, calls: 0 }
    }

    /// Whether the step runs now. `waiting` is asked only when the sink
    /// is due (it costs the host reads).
    pub fn start<E>(
        &self,
        now: i64,
        waiting: impl FnOnce() -> Result<Waiting, E>,
    ) -> Result<StepStart, E> {
        Ok(if self.clock.next_at > now {
            StepStart::NotDue(self.clock.next_at)
        } else if waiting()?.any() {
            StepStart::Go
        } else {
            StepStart::Idle
        })
    }

    /// The clock as it stands (a delivery resets its failures).
    pub fn clock(&self) -> SinkClock {
        self.clock
    }

    /// Whether the next batch may be read and sent.
    pub fn may_send(&self) -> bool {
        self.calls < CALLS_PER_SINK
    }

    /// Whether one more call may go out to narrow a refused batch.
    pub fn may_narrow(&self) -> bool {
        self.calls < CALLS_PER_SINK + NARROWING_CALLS
    }

    /// Whether a range replay may run after the stored lines.
    pub fn may_replay(&self) -> bool {
        self.calls < CALLS_PER_SINK
    }

    /// A call went out.
    pub fn called(&mut self) {
        self.calls += 1;
    }

    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// A call the receiver took: the failures in a row end.
    pub fn delivered(&mut self) {
        self.clock.failures = 0;
        self.clock.failing_since = None;
    }

    /// The step is over: when the sink is due again. A failure backs off
    /// on the sink's own clock (core's `after_failure`; `jitter` in [0, 1)
    /// from the host, `max_secs` the longest wait); a witness's wait is a
    /// minute; what is left after a step that did not fail comes at once
    /// (the alarm's calls ran out, not the receiver's patience).
    pub fn end(mut self, now: i64, outcome: StepOutcome, jitter: f64, max_secs: i64) -> StepEnd {
        if let Some((verdict, at)) = outcome.failure {
            self.clock.failures = self.clock.failures.saturating_add(1);
            let since = *self.clock.failing_since.get_or_insert(at);
            let f = after_failure(verdict, self.clock.failures, since, at, jitter, max_secs);
            self.clock.next_at = f.next_at;
            return StepEnd {
                clock: self.clock,
                next: Some(f.next_at),
                failed: Some((at, f.status, f.message)),
                state: f.state,
            };
        }
        if outcome.waiting_for_witness {
            self.clock.next_at = now + WITNESS_WAIT_SECS;
            return StepEnd {
                clock: self.clock,
                next: Some(self.clock.next_at),
                failed: None,
                state: None,
            };
        }
        StepEnd {
            clock: self.clock,
            next: outcome.left.any().then_some(now),
            failed: None,
            state: None,
        }
    }

    /// The sink's credential does not open under the configured keys: it
    /// is `failing` and tried again slowly, without a call.
    pub fn unopenable(mut self, now: i64, max_secs: i64) -> StepEnd {
        self.clock.next_at = now + REFUSED_RETRY_SECS.min(max_secs.max(1));
        StepEnd {
            clock: self.clock,
            next: Some(self.clock.next_at),
            failed: Some((
                now,
                0,
                "the sink's credential does not open under the configured keys (ENCRYPTION_KEY, ENCRYPTION_KEYS_PREVIOUS)".into(),
            )),
            state: Some(SinkState::Failing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::{FAILING_AFTER_SECS, MAX_RETRY_SECS};

    const T: i64 = 1_800_000_000;

    fn retry(after: Option<u64>) -> Verdict {
        Verdict::Retry {
            after_secs: after,
            status: 503,
            message: "busy".into(),
        }
    }

    fn waiting(pending: u64) -> Waiting {
        Waiting {
            pending,
            ..Waiting::default()
        }
    }

    #[test]
    fn a_step_runs_only_when_due_and_when_something_waits() {
        let step = SinkStep::new(SinkClock {
            next_at: T + 30,
            ..SinkClock::default()
        });
        let start = |now, w: Waiting| step.start(now, || Ok::<_, ()>(w));
        let not_asked = step.start(T, || Err::<Waiting, _>("read while not due"));
        assert_eq!(
            not_asked,
            Ok(StepStart::NotDue(T + 30)),
            "nothing read while not due"
        );
        assert_eq!(start(T + 30, waiting(5)), Ok(StepStart::Go));
        assert_eq!(start(T + 30, waiting(0)), Ok(StepStart::Idle));
        let replay = Waiting {
            replay: true,
            ..Waiting::default()
        };
        assert_eq!(start(T + 31, replay), Ok(StepStart::Go));
        let letters = Waiting {
            dead_letters: true,
            ..Waiting::default()
        };
        assert_eq!(start(T + 31, letters), Ok(StepStart::Go));
    }

    #[test]
    fn calls_are_bounded_per_alarm_with_room_to_narrow_a_refused_batch() {
        let mut step = SinkStep::new(SinkClock::default());
        let mut sent = 0;
        while step.may_send() {
            step.called();
            sent += 1;
        }
        assert_eq!(sent, CALLS_PER_SINK);
        assert!(!step.may_replay());
        let mut narrowed = 0;
        while step.may_narrow() {
            step.called();
            narrowed += 1;
        }
        assert_eq!(narrowed, NARROWING_CALLS);
        assert_eq!(step.calls(), CALLS_PER_SINK + NARROWING_CALLS);
    }

    /// On a fake clock: a receiver failing with 503 backs off, doubling to
    /// the longest wait, honours a longer Retry-After, turns `failing`
    /// after a day, and one delivered call ends the run of failures.
    #[test]
    fn failures_back_off_on_the_sinks_own_clock_and_a_delivery_ends_them() {
        let mut clock = SinkClock::default();
        let mut now = T;
        let mut waits = Vec::new();
        let mut states = Vec::new();
        while now < T + 2 * FAILING_AFTER_SECS {
            let step = SinkStep::new(clock);
            assert_eq!(
                step.start(now, || Ok::<_, ()>(waiting(3))),
                Ok(StepStart::Go)
            );
            let end = step.end(
                now,
                StepOutcome {
                    failure: Some((retry(None), now)),
                    left: waiting(3),
                    ..StepOutcome::default()
                },
                0.0,
                MAX_RETRY_SECS,
            );
            let next = end.next.expect("a failing sink is due again");
            assert_eq!(next, end.clock.next_at);
            assert!(next > now, "never sooner than now");
            waits.push(next - now);
            states.push(end.state);
            assert_eq!(end.failed.as_ref().map(|f| f.1), Some(503));
            clock = end.clock;
            now = next;
        }
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX_RETRY_SECS), "{waits:?}");
        assert_eq!(states.first(), Some(&None), "not failing at first");
        assert_eq!(
            states.last(),
            Some(&Some(SinkState::Failing)),
            "failing after a day"
        );
        assert_eq!(clock.failing_since, Some(T));

        // A Retry-After longer than the backoff wins.
        let end = SinkStep::new(SinkClock::default()).end(
            now,
            StepOutcome {
                failure: Some((retry(Some(900)), now)),
                ..StepOutcome::default()
            },
            0.0,
            MAX_RETRY_SECS,
        );
        assert!(end.clock.next_at >= now + 900, "{end:?}");

        // One call taken: the failures end, and the rest comes at once.
        let mut step = SinkStep::new(clock);
        step.delivered();
        let end = step.end(
            now,
            StepOutcome {
                left: waiting(40),
                ..StepOutcome::default()
            },
            0.0,
            MAX_RETRY_SECS,
        );
        assert_eq!(end.clock.failures, 0);
        assert_eq!(end.clock.failing_since, None);
        assert_eq!(end.next, Some(now));
        assert_eq!(end.failed, None);
    }

    #[test]
    fn a_refusal_fails_the_sink_at_once_and_a_gone_receiver_disables_it() {
        let refused = SinkStep::new(SinkClock::default()).end(
            T,
            StepOutcome {
                failure: Some((
                    Verdict::Refused {
                        status: 401,
                        message: "no".into(),
                    },
                    T,
                )),
                ..StepOutcome::default()
            },
            0.5,
            MAX_RETRY_SECS,
        );
        assert_eq!(refused.state, Some(SinkState::Failing));
        assert_eq!(refused.next, Some(T + REFUSED_RETRY_SECS));
        let gone = SinkStep::new(SinkClock::default()).end(
            T,
            StepOutcome {
                failure: Some((Verdict::Gone, T)),
                ..StepOutcome::default()
            },
            0.5,
            MAX_RETRY_SECS,
        );
        assert_eq!(gone.state, Some(SinkState::Disabled));
        assert_eq!(gone.failed.map(|f| f.1), Some(410));
    }

    #[test]
    fn a_witness_waits_a_minute_an_idle_sink_needs_no_alarm_and_an_unopenable_credential_fails_slowly(
    ) {
        let end = SinkStep::new(SinkClock::default()).end(
            T,
            StepOutcome {
                waiting_for_witness: true,
                left: waiting(1),
                ..StepOutcome::default()
            },
            0.0,
            MAX_RETRY_SECS,
        );
        assert_eq!(end.next, Some(T + WITNESS_WAIT_SECS));
        assert_eq!(end.clock.next_at, T + WITNESS_WAIT_SECS);
        let idle =
            SinkStep::new(SinkClock::default()).end(T, StepOutcome::default(), 0.0, MAX_RETRY_SECS);
        assert_eq!(idle.next, None);
        let replay_left = SinkStep::new(SinkClock::default()).end(
            T,
            StepOutcome {
                left: Waiting {
                    replay: true,
                    ..Waiting::default()
                },
                ..StepOutcome::default()
            },
            0.0,
            MAX_RETRY_SECS,
        );
        assert_eq!(replay_left.next, Some(T));
        let locked = SinkStep::new(SinkClock::default()).unopenable(T, 120);
        assert_eq!(locked.next, Some(T + 120), "never past the longest wait");
        assert_eq!(locked.state, Some(SinkState::Failing));
        assert!(locked
            .failed
            .is_some_and(|f| f.2.contains("ENCRYPTION_KEY")));
    }
}
