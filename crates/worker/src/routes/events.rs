//! `/connections/{id}/events` (newest first, cursor paging),
//! `/events.ndjson` (oldest first, streamed, optionally OCSF), `/runs` and
//! `/pull`.

use base64::Engine;
use serde_json::{json, Map, Value};
use snc_core::clock::{parse_rfc3339, rfc3339};
use snc_core::events::{ocsf, Event, Kind, Target};
use snc_core::problem::{FieldError, Problem, ProblemCode};
use worker::{Env, Request, Response, Result};

use crate::respond;
use crate::schedule;
use crate::store::{EventFilter, EventRow, Store};

pub const MAX_LIMIT: u32 = 1_000;

fn to_event(connection_id: &str, r: EventRow) -> Event {
    let target =
        (r.target_table.is_some() || r.target_record.is_some() || r.target_field.is_some())
            .then_some(Target {
                table: r.target_table,
                record: r.target_record,
                field: r.target_field,
            });
    Event {
        id: format!("{}:{}", r.source_table, r.sys_id),
        connection_id: connection_id.to_string(),
        occurred_at: r.occurred_at,
        kind: Kind::parse(&r.kind).unwrap_or(Kind::Other),
        actor: r.actor,
        source_ip: r.source_ip,
        target,
        old_value: r.old_value,
        new_value: r.new_value,
        source_table: r.source_table,
        raw: serde_json::from_str::<Map<String, Value>>(&r.raw).unwrap_or_default(),
    }
}

fn field_error(field: &str, message: &str) -> Problem {
    Problem::validation(vec![FieldError {
        field: field.into(),
        code: "invalid".into(),
        message: message.into(),
    }])
}

fn encode_cursor(e: &Event) -> String {
    let (table, sys_id) = e.id.split_once(':').unwrap_or(("", ""));
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!([e.occurred_at, table, sys_id]).to_string())
}

fn decode_cursor(c: &str) -> Option<(String, String, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let v: (String, String, String) = serde_json::from_slice(&raw).ok()?;
    Some(v)
}

/// Reads the filter from the query string; every bad value is a field error.
fn filter(req: &Request, newest_first: bool) -> std::result::Result<(EventFilter, bool), Problem> {
    let url = req.url().map_err(|_| Problem::new(ProblemCode::Internal))?;
    let mut f = EventFilter {
        from: None,
        to: None,
        kind: None,
        actor: None,
        after: None,
        limit: 100,
        newest_first,
    };
    let mut ocsf_format = false;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "from" | "to" => {
                let t = parse_rfc3339(&v).ok_or_else(|| {
                    field_error(&k, "Use an RFC 3339 time, such as 2026-11-20T10:00:00Z.")
                })?;
                if k == "from" {
                    f.from = Some(rfc3339(t));
                } else {
                    f.to = Some(rfc3339(t));
                }
            }
            "kind" => {
                let kind = Kind::parse(&v).ok_or_else(|| {
                    field_error(
                        "kind",
                        "Unknown kind; see the Event kinds in the API description.",
                    )
                })?;
                f.kind = Some(kind.as_str().to_string());
            }
            "actor" => f.actor = Some(v.to_string()),
            "limit" => {
                f.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| field_error("limit", "Use a limit from 1 to 1000."))?;
            }
            "cursor" => {
                f.after = Some(decode_cursor(&v).ok_or_else(|| {
                    field_error(
                        "cursor",
                        "Use the next_cursor of a previous answer, unchanged.",
                    )
                })?)
            }
            "format" if v == "ocsf" => ocsf_format = true,
            "format" if v == "contract" || v.is_empty() => {}
            "format" => {
                return Err(field_error(
                    "format",
                    "Use format=ocsf, or leave it out for the contract's Event.",
                ))
            }
            _ => {}
        }
    }
    Ok((f, ocsf_format))
}

async fn known(env: &Env, id: &str) -> Result<bool> {
    Ok(Store::new(env.d1("DB")?).get(id).await?.is_some())
}

pub async fn list(req: Request, env: &Env, id: &str) -> Result<Response> {
    if !known(env, id).await? {
        return respond::code(ProblemCode::NotFound, "There is no such connection.");
    }
    let (f, _) = match filter(&req, true) {
        Ok(f) => f,
        Err(p) => return respond::problem(&p),
    };
    let limit = f.limit;
    let rows = Store::new(env.d1("DB")?).events(id, &f).await?;
    let events: Vec<Event> = rows.into_iter().map(|r| to_event(id, r)).collect();
    let next = (events.len() as u32 == limit)
        .then(|| events.last().map(encode_cursor))
        .flatten();
    respond::json(200, &json!({ "events": events, "next_cursor": next }))
}

pub async fn ndjson(req: Request, env: &Env, id: &str) -> Result<Response> {
    if !known(env, id).await? {
        return respond::code(ProblemCode::NotFound, "There is no such connection.");
    }
    let (mut f, as_ocsf) = match filter(&req, false) {
        Ok(f) => f,
        Err(p) => return respond::problem(&p),
    };
    f.limit = MAX_LIMIT;
    let env = env.clone();
    let id = id.to_string();
    // Pages of 1,000, oldest first, until a short page: memory stays flat.
    let stream = futures_util::stream::unfold(Some(f), move |state| {
        let env = env.clone();
        let id = id.clone();
        async move {
            let mut f = state?;
            let rows = match env.d1("DB").map(Store::new) {
                Ok(store) => store.events(&id, &f).await,
                Err(e) => Err(e),
            };
            let rows = match rows {
                Ok(r) => r,
                Err(e) => return Some((Err(e), None)),
            };
            let full = rows.len() as u32 == f.limit;
            let mut out = Vec::new();
            let mut last = None;
            for r in rows {
                let e = to_event(&id, r);
                let line = if as_ocsf {
                    ocsf(&e)
                } else {
                    serde_json::to_value(&e).unwrap_or(Value::Null)
                };
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
                last = Some(e);
            }
            let next = match (full, last) {
                (true, Some(e)) => {
                    let (table, sys_id) = e.id.split_once(':').unwrap_or(("", ""));
                    f.after = Some((e.occurred_at.clone(), table.to_string(), sys_id.to_string()));
                    Some(f)
                }
                _ => None,
            };
            if out.is_empty() && next.is_none() {
                return None;
            }
            Some((Ok::<Vec<u8>, worker::Error>(out), next))
        }
    });
    let mut resp = Response::from_stream(stream)?;
    resp.headers_mut()
        .set("content-type", "application/x-ndjson")?;
    Ok(resp)
}

pub async fn runs(env: &Env, id: &str) -> Result<Response> {
    let store = Store::new(env.d1("DB")?);
    if store.get(id).await?.is_none() {
        return respond::code(ProblemCode::NotFound, "There is no such connection.");
    }
    respond::json(200, &json!({ "runs": store.runs(id, 50).await? }))
}

pub async fn pull(env: &Env, id: &str) -> Result<Response> {
    if !known(env, id).await? {
        return respond::code(ProblemCode::NotFound, "There is no such connection.");
    }
    schedule::enqueue(env, id).await?;
    respond::json(202, &json!({ "queued": true }))
}
