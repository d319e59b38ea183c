//! The health report: what `GET /api/v1/health` answers and the page shows.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub status: String,
    pub version: String,
    /// Whether Cloudflare Access signs admins in here: only then may a page
    /// with no credential of its own ask `/me` (anywhere else that is a 401
    /// in every visitor's console). Absent from older workers: no.
    #[serde(default)]
    pub access: bool,
}

/// How admins sign in on this deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// A credential typed into the page (the admin token, an API key).
    Credential,
    /// Cloudflare Access vouches for every request, or a credential.
    CloudflareAccess,
}

impl HealthReport {
    pub fn ok(sign_in: SignIn) -> Self {
        HealthReport {
            status: "ok".into(),
            version: crate::VERSION.into(),
            access: sign_in == SignIn::CloudflareAccess,
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
        let ok = HealthReport::ok(SignIn::CloudflareAccess);
        let body = serde_json::to_vec(&ok).unwrap();
        assert_eq!(HealthReport::parse(&body), Some(ok));
        // An older worker's report: no Access.
        let old = HealthReport::parse(br#"{"status":"ok","version":"1"}"#).expect("a report");
        assert!(!old.access && old.version == "1");
        assert_eq!(HealthReport::parse(b"<html>hibernating</html>"), None);
        assert_eq!(
            HealthReport::parse(br#"{"status":"down","version":"1"}"#),
            None
        );
    }
}
