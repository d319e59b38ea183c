//! What any ServiceNow answer that is not a success means for the admin:
//! hibernation pages, rate limits, outages, refusals.

use serde::Deserialize;

use crate::http::HttpResponse;
use crate::problem::{Problem, ProblemCode};

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

/// ServiceNow's `{"error":{"message":…}}`, if the body is one.
pub fn error_message(resp: &HttpResponse) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(&resp.body)
        .ok()?
        .error?
        .message
}

/// The longest wait an instance's answer is taken at its word for: a
/// `Retry-After` of years (or one past `i64`) is read as a day.
pub const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// Seconds to wait before trying again, from `Retry-After` (seconds) or
/// `X-RateLimit-Reset` (unix time), at most `MAX_RETRY_AFTER_SECS`.
pub fn retry_after(resp: &HttpResponse, now: i64) -> Option<u64> {
    if let Some(secs) = resp
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(secs.min(MAX_RETRY_AFTER_SECS));
    }
    let reset = resp
        .header("x-ratelimit-reset")?
        .trim()
        .parse::<i64>()
        .ok()?;
    Some((reset.saturating_sub(now).max(1) as u64).min(MAX_RETRY_AFTER_SECS))
}

/// Whether the answer is a web page rather than the API: a hibernating
/// developer instance answers 200 with its hibernation page.
pub fn is_html(resp: &HttpResponse) -> bool {
    resp.media_type().as_deref() == Some("text/html")
}

/// The problem a failed call to `what` means.
pub fn classify_failure(resp: &HttpResponse, what: &str, now: i64) -> Problem {
    if is_html(resp) {
        return Problem::with_context(
            ProblemCode::InstanceHibernating,
            format!("The instance answered {what} with a web page instead of JSON, as a hibernating instance does."),
        );
    }
    let said = error_message(resp)
        .map(|m| format!(" ServiceNow said: \"{m}\"."))
        .unwrap_or_default();
    match resp.status {
        429 => {
            let wait = retry_after(resp, now);
            let mut p = Problem::with_context(
                ProblemCode::RateLimited,
                match wait {
                    Some(s) => format!(
                        "ServiceNow refused {what} for now (HTTP 429); it asks to wait {s} s."
                    ),
                    None => format!("ServiceNow refused {what} for now (HTTP 429)."),
                },
            );
            p.retry_after = wait;
            p
        }
        401 => Problem::with_context(
            ProblemCode::CredentialsRejected,
            format!("ServiceNow refused the credentials at {what} (HTTP 401).{said}"),
        ),
        403 => Problem::with_context(
            ProblemCode::TableAccessDenied,
            format!("ServiceNow denied {what} (HTTP 403).{said}"),
        ),
        500..=599 => Problem::with_context(
            ProblemCode::InstanceUnreachable,
            format!(
                "The instance failed at {what} (HTTP {}).{said}",
                resp.status
            ),
        ),
        s => Problem::with_context(
            ProblemCode::NotServicenow,
            format!("Unexpected answer from {what} (HTTP {s}).{said}"),
        ),
    }
}
