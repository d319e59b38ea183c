//! The health report: what `GET /api/v1/health` answers and the page shows.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub status: String,
    pub version: String,
}

impl HealthReport {
    pub fn ok() -> Self {
        HealthReport {
            status: "ok".into(),
            version: crate::VERSION.into(),
        }
    }

    /// Parses a health body; `None` when it is not one (an HTML error page, say).
    pub fn parse(body: &[u8]) -> Option<Self> {
        let report: HealthReport = serde_json::from_slice(body).ok()?;
        (report.status == "ok" && !report.version.is_empty()).then_some(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_what_is_not_a_health_report() {
        let body = serde_json::to_vec(&HealthReport::ok()).unwrap();
        assert_eq!(HealthReport::parse(&body), Some(HealthReport::ok()));
        assert_eq!(HealthReport::parse(b"<html>hibernating</html>"), None);
        assert_eq!(
            HealthReport::parse(br#"{"status":"down","version":"1"}"#),
            None
        );
    }
}
