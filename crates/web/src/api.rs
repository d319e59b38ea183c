//! The only place that talks HTTP (through gloo-net, kept behind this module
//! so it can be swapped for web-sys fetch).

use snc_core::health::HealthReport;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The request did not complete (network down, CORS refused).
    Unreachable(String),
    /// An answer came, but not the expected one.
    Unexpected { status: u16 },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(why) => write!(f, "The connector could not be reached ({why}). Check that the worker is running and try again."),
            ApiError::Unexpected { status } => write!(f, "The connector answered unexpectedly (HTTP {status}). Check the worker's URL and try again."),
        }
    }
}

pub async fn health(api_base: &str) -> Result<HealthReport, ApiError> {
    let url = format!("{}/api/v1/health", api_base.trim_end_matches('/'));
    let resp = gloo_net::http::Request::get(&url)
        .send()
        .await
        .map_err(|e| ApiError::Unreachable(e.to_string()))?;
    let status = resp.status();
    let body = resp
        .binary()
        .await
        .map_err(|e| ApiError::Unreachable(e.to_string()))?;
    match (status, HealthReport::parse(&body)) {
        (200, Some(report)) => Ok(report),
        _ => Err(ApiError::Unexpected { status }),
    }
}
