//! `/connections/{id}/events` (newest first, cursor paging),
//! `/events.ndjson` (oldest first, streamed, optionally OCSF), `/runs` and
//! `/pull`.

use serde_json::{json, Value};
use snc_core::clock::parse_rfc3339;
use snc_core::problem::{Problem, ProblemCode};
use snc_core::pull::events::{ocsf, Event, Kind};
use worker::{Env, Request, Response, Result};

use super::paging::{self, field_error, MAX_LIMIT};
use crate::connection_object::{self, IndexQuery};
use crate::d1::connections::Store;
use crate::respond::{self, Answer};

fn encode_cursor(e: &Event) -> String {
    let (table, sys_id) = e.id.split_once(':').unwrap_or(("", ""));
    paging::encode_cursor(&(&e.occurred_at, table, sys_id))
}

fn decode_cursor(c: &str) -> Result<(i64, String, String), Problem> {
    let (at, table, sys_id): (String, String, String) = paging::decode_cursor(c)?;
    let at = parse_rfc3339(&at).ok_or_else(paging::bad_cursor)?;
    Ok((at, table, sys_id))
}

/// Where an event sits in the index's order.
fn position(e: &Event) -> Option<(i64, String, String)> {
    let (table, sys_id) = e.id.split_once(':')?;
    Some((
        parse_rfc3339(&e.occurred_at)?,
        table.to_string(),
        sys_id.to_string(),
    ))
}

/// Reads the filter from the query string; every bad value is a field error.
fn filter(
    req: &Request,
    env: &Env,
    newest_first: bool,
) -> std::result::Result<(IndexQuery, bool), Problem> {
    let url = req.url().map_err(|_| Problem::new(ProblemCode::Internal))?;
    let mut f = IndexQuery {
        limit: 100,
        newest_first,
        // Past the retention, nothing is shown, even before the object's
        // next alarm trims it.
        not_before: Some(
            crate::now() - crate::config::Config::from_env(env).retention_days * 86_400,
        ),
        ..IndexQuery::default()
    };
    let mut ocsf_format = false;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "from" | "to" => {
                let t = parse_rfc3339(&v).ok_or_else(|| {
                    field_error(&k, "Use an RFC 3339 time, such as 2026-11-20T10:00:00Z.")
                })?;
                if k == "from" {
                    f.from = Some(t);
                } else {
                    f.to = Some(t);
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
            "limit" => f.limit = paging::limit(&v)?,
            "cursor" => f.after = Some(decode_cursor(&v)?),
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

pub async fn list(req: Request, env: &Env, id: &str) -> Answer {
    if !known(env, id).await? {
        return respond::fail(ProblemCode::NotFound, "There is no such connection.");
    }
    let (f, _) = filter(&req, env, true)?;
    let limit = f.limit;
    let read = connection_object::events(env, id, &f).await?;
    let events = read.events;
    // A read that spent its budget says where to go on, even with a short
    // page or none: a client follows `next_cursor`, not the page's length.
    let next = match read.resume {
        Some(at) => Some(paging::encode_cursor(&(
            snc_core::clock::rfc3339(at.0),
            at.1,
            at.2,
        ))),
        None => (events.len() as u32 == limit)
            .then(|| events.last().map(encode_cursor))
            .flatten(),
    };
    respond::json(200, &json!({ "events": events, "next_cursor": next }))
}

pub async fn ndjson(req: Request, env: &Env, id: &str) -> Answer {
    if !known(env, id).await? {
        return respond::fail(ProblemCode::NotFound, "There is no such connection.");
    }
    let (mut f, as_ocsf) = filter(&req, env, false)?;
    f.limit = MAX_LIMIT;
    let env = env.clone();
    let id = id.to_string();
    // Pages of 1,000, oldest first, until a short page: memory stays flat.
    let stream = futures_util::stream::unfold(Some(f), move |state| {
        let env = env.clone();
        let id = id.clone();
        async move {
            let mut f = state?;
            let read = match connection_object::events(&env, &id, &f).await {
                Ok(r) => r,
                Err(e) => return Some((Err(e), None)),
            };
            let events = read.events;
            let full = events.len() as u32 == f.limit;
            let mut out = Vec::new();
            for e in &events {
                let line = if as_ocsf {
                    ocsf(e)
                } else {
                    serde_json::to_value(e).unwrap_or(Value::Null)
                };
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
            // Cursors, not the page's length: a read that spent its budget
            // goes on from where it stopped.
            let next = match (read.resume, full, events.last().and_then(position)) {
                (Some(resume), ..) => {
                    f.after = Some(resume);
                    Some(f)
                }
                (None, true, Some(after)) => {
                    f.after = Some(after);
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

pub async fn runs(env: &Env, id: &str) -> Answer {
    if !known(env, id).await? {
        return respond::fail(ProblemCode::NotFound, "There is no such connection.");
    }
    respond::json(200, &connection_object::runs(env, id).await?)
}

pub async fn pull(env: &Env, id: &str) -> Answer {
    if !known(env, id).await? {
        return respond::fail(ProblemCode::NotFound, "There is no such connection.");
    }
    connection_object::wake(env, id).await?;
    respond::json(202, &json!({ "queued": true }))
}
