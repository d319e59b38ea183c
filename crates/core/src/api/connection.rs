//! A connection as the API shows it: what the worker returns and the browser
//! reads. Secrets are not part of it, by construction.

use serde::{Deserialize, Serialize};

use crate::connect::warning::Warning;
use crate::problem::ProblemCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Connected,
    Error,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connected => "connected",
            Status::Error => "error",
            Status::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "connected" => Some(Status::Connected),
            "error" => Some(Status::Error),
            "disabled" => Some(Status::Disabled),
            _ => None,
        }
    }
}

/// Whether a connection pulls: enabled, and connected or only waiting for
/// its instance to wake (a hibernating instance is retried; any other
/// error waits for the admin to reconnect).
pub fn may_pull(enabled: bool, status: Status, status_code: Option<ProblemCode>) -> bool {
    enabled
        && match status {
            Status::Connected => true,
            Status::Error => status_code == Some(ProblemCode::InstanceHibernating),
            Status::Disabled => false,
        }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetail {
    pub code: String,
    pub message: String,
    pub since: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    pub from: String,
    pub to: String,
    pub done: bool,
    /// Events stored so far.
    pub events: u64,
    /// Records the backfill window held when it started (from X-Total-Count):
    /// with `events`, the progress bar.
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub name: String,
    pub instance_url: String,
    pub method: String,
    pub enabled: bool,
    pub status: Status,
    pub status_detail: Option<StatusDetail>,
    pub warnings: Vec<Warning>,
    pub release: Option<String>,
    pub build: Option<String>,
    pub created_at: String,
    pub last_pull_at: Option<String>,
    pub next_pull_at: Option<String>,
    pub backfill: Backfill,
    pub event_count: u64,
    /// The latest posture check's score, 0-100; null before the first.
    pub posture_score: Option<u8>,
    /// Alerts of this connection still open.
    pub open_alerts: u64,
    /// Seconds between this connection's pulls when caught up, set through
    /// `PATCH`; null: the deployment's `PULL_INTERVAL_SECS`.
    #[serde(default)]
    pub pull_interval_secs: Option<u32>,
}

/// The admin page's list ticks every 3 s; it refreshes at every tick while
/// a listed backfill moves (its progress bar), and at every fifth (15 s)
/// otherwise: each list asks the connected connections' objects for their
/// pull times, one Durable Object request each. An admin's action
/// refreshes at once either way.
pub const QUIET_LIST_TICKS: u32 = 5;

/// Whether any listed connection is still in its backfill and pulling (a
/// disabled one's bar, or one in error, does not move).
pub fn backfill_moving(list: &[Connection]) -> bool {
    list.iter().any(|c| c.pull_times_live() && !c.backfill.done)
}

/// Whether the list's tick refreshes, after `quiet` ticks that did not.
pub fn list_refresh_due(moving: bool, quiet: u32) -> bool {
    moving || quiet + 1 >= QUIET_LIST_TICKS
}

/// When a connection last pulled and pulls next, as its object keeps them:
/// the row in D1 is written only when a pull changes something, so an idle
/// pull's time lives in the object alone. Unix seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullTimes {
    pub last_pull_at: Option<i64>,
    pub next_pull_at: Option<i64>,
}

impl Connection {
    /// Whether its object's pull times are worth asking for: it is
    /// enabled and connected (the others' rows say all).
    pub fn pull_times_live(&self) -> bool {
        self.enabled && self.status == Status::Connected
    }

    /// The object's pull times over the row's, for a connection that is
    /// connected: a connection in error or disabled had its row written
    /// with its state, and its object's due time (a maintenance day) is no
    /// pull the admin should expect. A time older than the row's is not
    /// taken (an object that lost its storage).
    pub fn with_pull_times(mut self, times: PullTimes) -> Connection {
        if !self.pull_times_live() {
            return self;
        }
        let row_at = self
            .last_pull_at
            .as_deref()
            .and_then(crate::clock::parse_rfc3339);
        match (row_at, times.last_pull_at) {
            (Some(r), Some(o)) if o < r => {}
            (_, Some(o)) => self.last_pull_at = Some(crate::clock::rfc3339(o)),
            (_, None) => {}
        }
        if let Some(next) = times.next_pull_at {
            self.next_pull_at = Some(crate::clock::rfc3339(next));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(enabled: bool, status: Status) -> Connection {
        Connection {
            id: "c".into(),
            name: "n".into(),
            instance_url: "https://x.service-now.com".into(),
            method: "oauth".into(),
            enabled,
            status,
            status_detail: None,
            warnings: Vec::new(),
            release: None,
            build: None,
            created_at: crate::clock::rfc3339(0),
            last_pull_at: Some(crate::clock::rfc3339(1_000)),
            next_pull_at: Some(crate::clock::rfc3339(1_060)),
            backfill: Backfill {
                from: String::new(),
                to: String::new(),
                done: true,
                events: 0,
                total: 0,
            },
            event_count: 0,
            posture_score: None,
            open_alerts: 0,
            pull_interval_secs: None,
        }
    }

    #[test]
    fn the_list_refreshes_every_tick_while_a_backfill_moves_and_every_fifth_otherwise() {
        let mut filling = connection(true, Status::Connected);
        filling.backfill.done = false;
        let done = connection(true, Status::Connected);
        let mut stopped = filling.clone();
        stopped.enabled = false;
        let mut failing = filling.clone();
        failing.status = Status::Error;
        assert!(backfill_moving(&[done.clone(), filling]));
        assert!(!backfill_moving(&[done, stopped, failing]));
        assert!(list_refresh_due(true, 0));
        let quiet: Vec<bool> = (0..10)
            .map(|q| list_refresh_due(false, q % QUIET_LIST_TICKS))
            .collect();
        assert_eq!(quiet.iter().filter(|d| **d).count(), 2, "{quiet:?}");
    }

    #[test]
    fn a_connected_connection_shows_its_objects_pull_times_and_others_their_rows() {
        let times = PullTimes {
            last_pull_at: Some(4_000),
            next_pull_at: Some(4_060),
        };
        let live = connection(true, Status::Connected).with_pull_times(times);
        assert_eq!(live.last_pull_at, Some(crate::clock::rfc3339(4_000)));
        assert_eq!(live.next_pull_at, Some(crate::clock::rfc3339(4_060)));
        let stopped = connection(false, Status::Disabled).with_pull_times(times);
        assert_eq!(stopped.next_pull_at, Some(crate::clock::rfc3339(1_060)));
        let failing = connection(true, Status::Error).with_pull_times(times);
        assert_eq!(failing.last_pull_at, Some(crate::clock::rfc3339(1_000)));
        // An object that knows less than the row does not move it back.
        let older = PullTimes {
            last_pull_at: Some(500),
            next_pull_at: None,
        };
        let kept = connection(true, Status::Connected).with_pull_times(older);
        assert_eq!(kept.last_pull_at, Some(crate::clock::rfc3339(1_000)));
        assert_eq!(kept.next_pull_at, Some(crate::clock::rfc3339(1_060)));
    }

    #[test]
    fn only_an_enabled_connection_that_is_connected_or_hibernating_pulls() {
        let hibernating = Some(ProblemCode::InstanceHibernating);
        assert!(may_pull(true, Status::Connected, None));
        assert!(may_pull(true, Status::Error, hibernating));
        assert!(!may_pull(false, Status::Connected, None));
        assert!(!may_pull(false, Status::Error, hibernating));
        assert!(!may_pull(
            true,
            Status::Error,
            Some(ProblemCode::CredentialsRejected)
        ));
        assert!(!may_pull(true, Status::Error, None));
        assert!(!may_pull(true, Status::Disabled, hibernating));
    }
}
