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

#[cfg(test)]
mod tests {
    use super::*;

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
