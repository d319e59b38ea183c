//! `/connections/{id}/posture`: the latest check with the score history,
//! `posture/check` (checks at the object's next step, now), and
//! `posture.ndjson` (one OCSF Compliance Finding per check).

use serde_json::{json, Value};
use snc_core::problem::ProblemCode;
use snc_core::watch::posture::{ocsf_finding, PostureReport};
use worker::{Env, Response, Result};

use crate::connection_object;
use crate::d1::connections::Store;
use crate::respond::{self, Answer};

fn no_check_yet() -> Answer {
    respond::fail(
        ProblemCode::NotFound,
        "No posture check has run for this connection yet. Ask for one with POST /api/v1/connections/{id}/posture/check; it runs with the next pull.",
    )
}

/// The latest report and the history, or `None` before the first check.
async fn latest(env: &Env, id: &str) -> Result<Option<(PostureReport, Value)>> {
    let stored = connection_object::posture(env, id).await?;
    let history: Vec<Value> = stored
        .history
        .iter()
        .map(|p| {
            json!({
                "checked_at": snc_core::clock::rfc3339(p.checked_at),
                "score": p.score.clamp(0, 100),
            })
        })
        .collect();
    Ok(stored.latest.map(|r| (r, Value::Array(history))))
}

pub async fn get(env: &Env, id: &str) -> Answer {
    if Store::new(env.d1("DB")?).get(id).await?.is_none() {
        return respond::fail(ProblemCode::NotFound, "There is no such connection.");
    }
    let Some((report, history)) = latest(env, id).await? else {
        return no_check_yet();
    };
    let mut body = serde_json::to_value(&report)?;
    if let Some(o) = body.as_object_mut() {
        o.insert("history".into(), history);
    }
    respond::json(200, &body)
}

pub async fn check(env: &Env, id: &str) -> Answer {
    if Store::new(env.d1("DB")?).get(id).await?.is_none() {
        return respond::fail(ProblemCode::NotFound, "There is no such connection.");
    }
    connection_object::check_posture(env, id).await?;
    respond::json(202, &json!({ "queued": true }))
}

pub async fn ndjson(env: &Env, id: &str) -> Answer {
    let Some(row) = Store::new(env.d1("DB")?).get(id).await? else {
        return respond::fail(ProblemCode::NotFound, "There is no such connection.");
    };
    let Some((report, _)) = latest(env, id).await? else {
        return no_check_yet();
    };
    let at = snc_core::clock::parse_rfc3339(&report.checked_at).unwrap_or(0);
    let mut out = String::new();
    for check in &report.checks {
        out.push_str(&ocsf_finding(check, id, &row.instance_url, at).to_string());
        out.push('\n');
    }
    let mut resp = Response::ok(out)?;
    resp.headers_mut()
        .set("content-type", "application/x-ndjson")?;
    Ok(resp)
}
