//! What a receiver's answer means, and when a sink tries again.

use serde_json::Value;

use super::kinds::*;
use crate::http::HttpResponse;

/// Statuses that refuse what was sent rather than who sent it or where.
pub fn payload_refused(status: u16) -> bool {
    matches!(status, 400 | 413 | 422)
}

/// What a receiver's answer means for the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored; `repeats` of them the receiver already had (Elastic's 409).
    Accepted { repeats: u32 },
    /// Stored but for the items `refused` names (their index in the call,
    /// the status and the receiver's reason), which will not heal.
    Partial {
        repeats: u32,
        refused: Vec<(usize, u16, String)>,
    },
    /// Try the same batch again later (429, 5xx, a timeout, a partial failure).
    Retry {
        after_secs: Option<u64>,
        status: u16,
        message: String,
    },
    /// A webhook answered 410: the receiver is gone; the sink is disabled.
    Gone,
    /// A 4xx that will not heal by itself (401, 403, 404, 400 …): the sink
    /// turns failing with the answer, and is tried again only slowly.
    Refused { status: u16, message: String },
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let t: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    t
}

pub fn verdict(kind: SinkKind, resp: &HttpResponse) -> Verdict {
    let s = resp.status;
    let retry_after = resp
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok());
    match s {
        200..=299 if kind == SinkKind::Elastic => elastic_items(&resp.body),
        200..=299 => Verdict::Accepted { repeats: 0 },
        410 if kind == SinkKind::Webhook => Verdict::Gone,
        408 | 425 | 429 | 500..=599 => Verdict::Retry {
            after_secs: retry_after,
            status: s,
            message: snippet(&resp.body),
        },
        _ => Verdict::Refused {
            status: s,
            message: snippet(&resp.body),
        },
    }
}

/// What a call's answer means, for a call that carried `sent` items: an
/// Elastic `_bulk` answer must account for every document sent, or nothing
/// in it is trusted (the batch is tried again).
pub fn call_verdict(kind: SinkKind, resp: &HttpResponse, sent: usize) -> Verdict {
    if kind == SinkKind::Elastic && (200..=299).contains(&resp.status) {
        let named = serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("items").and_then(|i| i.as_array()).map(Vec::len));
        if named != Some(sent) {
            return Verdict::Retry {
                after_secs: None,
                status: resp.status,
                message: format!(
                    "the _bulk answer named {} of the {sent} documents sent",
                    named.unwrap_or(0)
                ),
            };
        }
    }
    verdict(kind, resp)
}

/// `_bulk` answers 200 even when items failed: read each. A 409 is a
/// document the stream already holds (a repeat), so it counts as stored.
fn elastic_items(body: &[u8]) -> Verdict {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Retry {
            after_secs: None,
            status: 200,
            message: "the _bulk answer did not parse".into(),
        };
    };
    let mut repeats = 0;
    let mut taken = 0;
    let mut refused: Vec<(usize, u16, String)> = Vec::new();
    let mut healing: Option<(u16, String)> = None;
    let mut blocking: Option<(u16, String)> = None;
    let items = v.get("items").and_then(|i| i.as_array());
    for (index, item) in items.into_iter().flatten().enumerate() {
        let result = item.get("create").or_else(|| item.get("index"));
        let field = |p: &str| result.and_then(|r| r.pointer(p)).and_then(|r| r.as_str());
        let status = result
            .and_then(|r| r.get("status"))
            .and_then(|s| s.as_u64())
            .unwrap_or(0) as u16;
        // Which document, and Elastic's words for why: what an admin needs
        // to mend the data stream's mapping.
        let said = || {
            let why = [field("/error/type"), field("/error/reason")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            snippet(format!("document {}: {why}", field("/_id").unwrap_or("?")).as_bytes())
        };
        match status {
            200..=299 => taken += 1,
            409 => repeats += 1,
            // Anything that may heal (429, 5xx) wins: the batch is retried.
            s if s == 429 || s >= 500 || s == 0 => {
                if healing.is_none() {
                    healing = Some((s, said()));
                }
            }
            // A document's own fault (its fields, its size): that one only.
            s if payload_refused(s) => refused.push((index, s, said())),
            // Anything else (403, 404 …) is the data stream's or the key's.
            s => {
                if blocking.is_none() {
                    blocking = Some((s, said()));
                }
            }
        }
    }
    let total = items.map_or(0, Vec::len);
    if let Some((s, m)) = healing {
        let failed = total - taken - repeats as usize;
        return Verdict::Retry {
            after_secs: None,
            status: s,
            message: format!("{failed} of {total} documents not taken; {m}"),
        };
    }
    if let Some((s, m)) = blocking {
        let failed = total - taken - repeats as usize;
        return Verdict::Refused {
            status: s,
            message: format!("{failed} of {total} documents refused; {m}"),
        };
    }
    match refused.first() {
        None => Verdict::Accepted { repeats },
        // Refused one by one while others were taken: those documents, not
        // the sink (sending.rs makes them dead letters).
        Some(_) if taken + repeats as usize > 0 => Verdict::Partial { repeats, refused },
        Some((_, s, m)) => Verdict::Refused {
            status: *s,
            message: format!("{} of {total} documents refused; {m}", refused.len()),
        },
    }
}

/// When to try again after `failures` failed attempts in a row (1 for the
/// first): exponential from 30 s to an hour, with jitter (`jitter` in
/// 0..1) so many sinks do not retry in step; a receiver's Retry-After wins.
/// `max_secs` caps it (an hour in a deployment; tests shorten it).
pub fn retry_delay(failures: u32, retry_after: Option<u64>, jitter: f64, max_secs: i64) -> i64 {
    if let Some(after) = retry_after {
        return (after.clamp(1, 6 * 3600) as i64).min(max_secs.max(1));
    }
    let exp = 30f64 * 2f64.powi(failures.saturating_sub(1).min(10) as i32);
    let capped = exp.min(max_secs.max(1) as f64);
    (capped * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))).max(1.0) as i64
}

/// The longest wait between two tries of a failing sink.
pub const MAX_RETRY_SECS: i64 = 3600;

/// A refused sink is tried again this much later, so a bad token costs one
/// call an hour, not a loop.
pub const REFUSED_RETRY_SECS: i64 = 3600;
/// A sink failing this long turns `failing` (it keeps its backlog).
pub const FAILING_AFTER_SECS: i64 = 86_400;

/// A sink after a failed call: when to try again, the state it turns to
/// (if it changes), and the receiver's answer to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub next_at: i64,
    pub state: Option<SinkState>,
    pub status: u16,
    pub message: String,
}

/// `failures` counts this one; `failing_since` is when the run of failures
/// began. A refusal (a 4xx that will not heal) fails the sink at once and is
/// tried hourly; a retryable failure turns it `failing` after a day; a
/// webhook's 410 disables it.
pub fn after_failure(
    verdict: Verdict,
    failures: u32,
    failing_since: i64,
    now: i64,
    jitter: f64,
    max_secs: i64,
) -> Failure {
    let slow = REFUSED_RETRY_SECS.min(max_secs.max(1));
    match verdict {
        Verdict::Retry {
            after_secs,
            status,
            message,
        } => Failure {
            next_at: now + retry_delay(failures, after_secs, jitter, max_secs),
            state: (now - failing_since >= FAILING_AFTER_SECS).then_some(SinkState::Failing),
            status,
            message,
        },
        Verdict::Refused { status, message } => Failure {
            next_at: now + slow,
            state: Some(SinkState::Failing),
            status,
            message,
        },
        Verdict::Gone => Failure {
            next_at: now + slow,
            state: Some(SinkState::Disabled),
            status: 410,
            message: "the receiver answered 410 Gone: the sink is disabled".into(),
        },
        Verdict::Accepted { .. } | Verdict::Partial { .. } => Failure {
            next_at: now,
            state: None,
            status: 0,
            message: String::new(),
        },
    }
}
