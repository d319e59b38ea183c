//! `/alerts`: every connection's alerts, newest first, filtered and paged;
//! `GET /alerts/{id}` (the page's shared links), `PATCH /alerts/{id}` to
//! acknowledge or close; `alerts.ndjson` (OCSF
//! Detection Finding 2004 with `format=ocsf`).

use serde::Deserialize;
use serde_json::json;
use snc_core::clock::parse_rfc3339;
use snc_core::problem::{Problem, ProblemCode};
use snc_core::watch::detect::{ocsf_finding, Rule};
use worker::{console_log, Env, Request, Response, Result};

use super::paging::{self, field_error, MAX_LIMIT};
use crate::d1::alerts::{AlertQuery, AlertStatus, AlertStore};
use crate::d1::connections::Store;
use crate::respond::{self, Answer};

fn store(env: &Env) -> Result<AlertStore> {
    Ok(AlertStore::new(env.d1("DB")?))
}

/// The filter from the query string; every bad value is a field error.
fn query(req: &Request) -> std::result::Result<(AlertQuery, bool), Problem> {
    let url = req.url().map_err(|_| Problem::new(ProblemCode::Internal))?;
    let mut q = AlertQuery {
        limit: 100,
        ..AlertQuery::default()
    };
    let mut ocsf = false;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "connection_id" => {
                if !super::valid_id(&v) {
                    return Err(field_error(
                        "connection_id",
                        "Use a connection's id (32 hex characters).",
                    ));
                }
                q.connection_id = Some(v.to_string());
            }
            "status" => {
                q.status =
                    Some(AlertStatus::parse(&v).ok_or_else(|| {
                        field_error("status", "Use open, acknowledged or closed.")
                    })?)
            }
            "rule" => {
                let rule = Rule::parse(&v).ok_or_else(|| {
                    field_error(
                        "rule",
                        "Unknown rule; see the rules in the API description.",
                    )
                })?;
                q.rule = Some(rule.as_str().to_string());
            }
            "from" | "to" => {
                let t = parse_rfc3339(&v).ok_or_else(|| {
                    field_error(&k, "Use an RFC 3339 time, such as 2026-11-20T10:00:00Z.")
                })?;
                if k == "from" {
                    q.from = Some(t);
                } else {
                    q.to = Some(t);
                }
            }
            "limit" => q.limit = paging::limit(&v)?,
            "cursor" => q.after = Some(paging::decode_cursor(&v)?),
            "format" if v == "ocsf" => ocsf = true,
            "format" if v == "contract" || v.is_empty() => {}
            "format" => {
                return Err(field_error(
                    "format",
                    "Use format=ocsf, or leave it out for the contract's Alert.",
                ))
            }
            _ => {}
        }
    }
    Ok((q, ocsf))
}

pub async fn list(req: Request, env: &Env) -> Answer {
    let (q, _) = query(&req)?;
    let page = store(env)?.list(&q).await?;
    let next_cursor = page.next.as_ref().map(paging::encode_cursor);
    respond::json(
        200,
        &json!({ "alerts": page.alerts, "next_cursor": next_cursor }),
    )
}

pub async fn ndjson(req: Request, env: &Env) -> Answer {
    let (mut q, ocsf) = query(&req)?;
    q.limit = MAX_LIMIT;
    q.oldest_first = true;
    let connections = std::rc::Rc::new(Store::new(env.d1("DB")?).list().await?);
    let store = std::rc::Rc::new(store(env)?);
    // The first page before the answer starts: a failure there is a 500,
    // not a 200 with an empty export.
    let first = store.list(&q).await?;
    // Then streamed a page at a time, as events.ndjson is: memory stays
    // flat however many alerts the retention holds.
    let stream = futures_util::stream::unfold(Some((q, Some(first))), move |state| {
        let store = store.clone();
        let connections = connections.clone();
        async move {
            let (mut q, ready) = state?;
            let page = match ready {
                Some(p) => p,
                None => match store.list(&q).await {
                    Ok(p) => p,
                    Err(e) => return Some((Err(e), None)),
                },
            };
            let mut out = Vec::new();
            for a in &page.alerts {
                let line = if ocsf {
                    let url = connections
                        .iter()
                        .find(|c| c.id == a.alert.connection_id)
                        .map(|c| c.instance_url.as_str())
                        .unwrap_or("");
                    ocsf_finding(&a.alert, a.status.as_str(), url)
                } else {
                    serde_json::to_value(a).unwrap_or(serde_json::Value::Null)
                };
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
            let next = page.next.map(|after| {
                q.after = Some(after);
                (q, None)
            });
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    status: String,
}

/// Alert ids are `al_` and 16 hex characters.
fn valid_alert_id(id: &str) -> bool {
    id.len() == 19
        && id.starts_with("al_")
        && id[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One alert, as the list has it. An id no alert can have is not echoed.
pub async fn get(env: &Env, id: &str) -> Answer {
    if !valid_alert_id(id) {
        return respond::fail(
            ProblemCode::NotFound,
            "There is no such alert (ids are al_ and 16 hex characters).",
        );
    }
    match store(env)?.get(id).await? {
        Some(alert) => respond::json(200, &alert),
        None => respond::fail(ProblemCode::NotFound, &format!("There is no alert {id}.")),
    }
}

pub async fn patch(mut req: Request, env: &Env, id: &str) -> Answer {
    let not_found = || respond::fail(ProblemCode::NotFound, &format!("There is no alert {id:?}."));
    if !valid_alert_id(id) {
        return not_found();
    }
    let text = req.text().await.unwrap_or_default();
    let status = serde_json::from_str::<PatchBody>(&text)
        .ok()
        .and_then(|b| AlertStatus::parse(&b.status));
    let Some(status) = status else {
        return Err(field_error(
            "status",
            "Send {\"status\": \"open\" | \"acknowledged\" | \"closed\"}.",
        )
        .into());
    };
    let store = store(env)?;
    let Some(before) = store.get(id).await? else {
        return not_found();
    };
    store.set_status(id, status, crate::now()).await?;
    let Some(after) = store.get(id).await? else {
        return not_found();
    };
    if before.status != after.status {
        // The change stands; its forwarding is told to the connection's
        // object, and a failure to tell it costs only that message.
        if let Err(e) = crate::connection_object::feed_alert(env, &after.alert).await {
            console_log!("alerts: the status change of {id} is not forwarded: {e}");
        }
    }
    respond::json(200, &after)
}
