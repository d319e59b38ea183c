//! `/sinks`: where events and alerts are forwarded. Credentials are sealed
//! and never answered; a webhook's signing secret is generated and shown
//! once. Delivery itself runs in each connection's object (outbox.rs).

use serde_json::json;
use snc_core::api::access::SinkDetail;
use snc_core::clock::parse_rfc3339;
use snc_core::forward::{self, Item, SinkRequest, SinkState, Stream, Target, Verdict};
use snc_core::problem::{Problem, ProblemCode};
use snc_core::secret::Secret;
use worker::{Env, Request, Response, Result};

use super::paging::field_error;
use crate::config::Config;
use crate::d1::sinks::{seal_context, SinkStore};
use crate::respond::{self, Answer};

fn store(env: &Env) -> Result<SinkStore> {
    Ok(SinkStore::new(env.d1("DB")?))
}

fn not_found(id: &str) -> Answer {
    respond::fail(
        ProblemCode::NotFound,
        &format!("There is no sink {id:?}; list them with GET /api/v1/sinks."),
    )
}

async fn body(req: &mut Request) -> std::result::Result<SinkRequest, Problem> {
    let text = req.text().await.unwrap_or_default();
    serde_json::from_str(&text).map_err(|_| {
        field_error(
            "body",
            "Send a JSON object: name, kind, url, streams, connection_ids, format and the kind's credentials.",
        )
    })
}

fn seal(config: &Config, id: &str, secret: &Secret) -> std::result::Result<String, Problem> {
    let key = config.keys.as_ref().map(|r| r.current()).ok_or_else(|| {
        Problem::with_context(
            ProblemCode::Internal,
            "ENCRYPTION_KEY is missing or is not 32 bytes of base64 (wrangler secret put ENCRYPTION_KEY).",
        )
    })?;
    let nonce = crate::random_bytes::<12>().map_err(|_| Problem::new(ProblemCode::Internal))?;
    key.seal(secret, &seal_context(id), nonce)
        .map_err(|_| Problem::new(ProblemCode::Internal))
}

/// A sink as `detail` allows (core's `SinkDetail`).
fn shown(row: &crate::d1::sinks::SinkRow, detail: SinkDetail) -> serde_json::Value {
    let mut v = row.to_api();
    if detail == SinkDetail::ForReaders {
        v["url"] = json!(snc_core::forward::SinkUrl::shown_to_readers(&row.url));
        if let Some(e) = v.get_mut("last_error").and_then(|e| e.as_object_mut()) {
            e.remove("message");
        }
    }
    v
}

pub async fn list(env: &Env, detail: SinkDetail) -> Answer {
    let rows = store(env)?.list().await?;
    let sinks: Vec<_> = rows.iter().map(|s| shown(s, detail)).collect();
    respond::json(200, &json!({ "sinks": sinks }))
}

pub async fn get(env: &Env, id: &str, detail: SinkDetail) -> Answer {
    match store(env)?.get(id).await? {
        Some(s) => respond::json(200, &shown(&s, detail)),
        None => not_found(id),
    }
}

pub async fn create(mut req: Request, env: &Env, config: &Config) -> Answer {
    let request = body(&mut req).await?;
    let (settings, given) =
        forward::validate(&request, None, config.policy.loopback()).map_err(Problem::validation)?;
    let id = crate::hex(&crate::random_bytes::<16>()?);
    let (secret, shown) = match given {
        Some(s) => (s, None),
        // A webhook's signing secret is ours to make, and shown this once.
        None => {
            let s = forward::webhook_secret(&crate::random_bytes::<24>()?);
            (s.clone(), Some(s))
        }
    };
    let sealed = seal(config, &id, &secret)?;
    let store = store(env)?;
    store.insert(&id, &settings, &sealed, crate::now()).await?;
    let Some(row) = store.get(&id).await? else {
        return respond::fail(ProblemCode::Internal, "The sink was not kept.");
    };
    let mut answer = row.to_api();
    if let Some(s) = shown {
        answer["secret"] = json!(s.expose());
    }
    respond::json(201, &answer)
}

pub async fn patch(mut req: Request, env: &Env, config: &Config, id: &str) -> Answer {
    let store = store(env)?;
    let Some(row) = store.get(id).await? else {
        return not_found(id);
    };
    let request = body(&mut req).await?;
    let Some(base) = row.settings.clone() else {
        return respond::fail(
            ProblemCode::Internal,
            "This sink's stored settings do not read.",
        );
    };
    let state = match &request.state {
        None => None,
        Some(v) => match v.as_str().and_then(SinkState::parse) {
            // Enabling starts it over as active; failing is the worker's to set.
            Some(SinkState::Active) => Some(SinkState::Active),
            Some(SinkState::Disabled) => Some(SinkState::Disabled),
            _ => return Err(field_error("state", "Use \"active\" or \"disabled\".").into()),
        },
    };
    let (settings, given) = forward::validate(&request, Some(&base), config.policy.loopback())
        .map_err(Problem::validation)?;
    let rotate = request.rotate_secret.as_ref().and_then(|v| v.as_bool()) == Some(true);
    let mut shown = None;
    let secret = match (given, rotate, &settings.params) {
        (Some(s), _, _) => Some(s),
        (None, true, forward::SinkParams::Webhook) => {
            // The new secret signs first; the old one keeps signing beside
            // it until the next rotation, so receivers can switch over.
            let fresh = forward::webhook_secret(&crate::random_bytes::<24>()?);
            let old = config
                .keys
                .as_ref()
                .and_then(|r| row.secret(r))
                .map(|s| {
                    s.expose()
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_default();
            shown = Some(fresh.clone());
            Some(Secret::new(
                format!("{} {old}", fresh.expose()).trim().to_string(),
            ))
        }
        (None, true, _) => {
            return Err(field_error(
                "rotate_secret",
                "Only a webhook's secret is generated here; send the new credential instead.",
            )
            .into())
        }
        (None, false, _) => None,
    };
    let sealed = secret.as_ref().map(|s| seal(config, id, s)).transpose()?;
    store
        .update(id, &settings, sealed.as_deref(), state, crate::now())
        .await?;
    let Some(row) = store.get(id).await? else {
        return not_found(id);
    };
    let mut answer = row.to_api();
    if let Some(s) = shown {
        answer["secret"] = json!(s.expose());
    }
    respond::json(200, &answer)
}

pub async fn delete(env: &Env, id: &str) -> Answer {
    if store(env)?.delete(id).await? {
        return Ok(Response::empty()?.with_status(204));
    }
    not_found(id)
}

/// One delivery of a made-up event, answered with what the receiver said.
pub async fn test(env: &Env, config: &Config, id: &str) -> Answer {
    let Some(row) = store(env)?.get(id).await? else {
        return not_found(id);
    };
    let (Some(settings), Some(secret)) = (
        row.settings.clone(),
        config.keys.as_ref().and_then(|r| row.secret(r)),
    ) else {
        return respond::fail(
            ProblemCode::Internal,
            "This sink's settings or credential do not read under the configured keys.",
        );
    };
    let now = crate::now();
    let item = Item {
        id: format!("test:{}", crate::hex(&crate::random_bytes::<8>()?)),
        occurred_at: now,
        source: "test".into(),
        scope: None,
        record: json!({
            "id": "test", "kind": "test", "occurred_at": snc_core::clock::rfc3339(now),
            "message": "A test delivery from the ServiceNow connector.",
        }),
    };
    let deadline = std::time::Duration::from_secs(10);
    let mut token = None;
    if let Some(req) = forward::sentinel_token_request(&settings.params, &secret) {
        match crate::transport::send_capped(&req, deadline, snc_core::http::SINK_ANSWER_CAP).await {
            Ok(resp) => match forward::sentinel_token(&resp) {
                Ok((t, _)) => token = Some(t),
                Err(v) => {
                    return respond::json(200, &report(&v, Some(resp.status), "token endpoint"))
                }
            },
            Err(e) => {
                return respond::json(
                    200,
                    &json!({"delivered": false, "status": null, "message": format!("token endpoint: {e}")}),
                )
            }
        }
    }
    let target = Target {
        url: &settings.url,
        params: &settings.params,
        secret: &secret,
        host: "test",
    };
    let req = forward::delivery(
        &target,
        Stream::Events,
        std::slice::from_ref(&item),
        now,
        token.as_ref().map(Secret::expose),
    );
    match crate::transport::send_capped(&req, deadline, snc_core::http::SINK_ANSWER_CAP).await {
        Ok(resp) => {
            let v = forward::verdict(settings.params.kind(), &resp);
            respond::json(200, &report(&v, Some(resp.status), "receiver"))
        }
        Err(e) => respond::json(
            200,
            &json!({"delivered": false, "status": null, "message": e.to_string()}),
        ),
    }
}

fn report(v: &Verdict, status: Option<u16>, who: &str) -> serde_json::Value {
    match v {
        Verdict::Accepted { .. } | Verdict::Partial { .. } => {
            json!({"delivered": true, "status": status, "message": format!("the {who} accepted the test delivery")})
        }
        Verdict::Retry { message, .. } | Verdict::Refused { message, .. } => {
            json!({"delivered": false, "status": status, "message": format!("the {who} answered: {message}")})
        }
        Verdict::Gone => {
            json!({"delivered": false, "status": 410, "message": format!("the {who} answered 410 Gone")})
        }
    }
}

/// `{"from","to"}`: the events of that range are delivered again, then the
/// alerts seen in it, for the streams the sink takes.
pub async fn replay(mut req: Request, env: &Env, id: &str) -> Answer {
    let store = store(env)?;
    let Some(sink) = store.get(id).await? else {
        return not_found(id);
    };
    let text = req.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let time = |k: &str| v.get(k).and_then(|t| t.as_str()).and_then(parse_rfc3339);
    let (Some(from), Some(to)) = (time("from"), time("to")) else {
        return Err(field_error(
            "from",
            "Send {\"from\": \"…\", \"to\": \"…\"} as RFC 3339 times.",
        )
        .into());
    };
    if to <= from {
        return Err(field_error("to", "Give a `to` after `from`.").into());
    }
    // The ask's time tells asks apart: in milliseconds, so two asks of one
    // second are two replays.
    store
        .set_replay(id, from, to, crate::now_ms() as i64)
        .await?;
    forward_now(env, &sink).await?;
    respond::json(
        202,
        &json!({"replay": {"from": snc_core::clock::rfc3339(from), "to": snc_core::clock::rfc3339(to)}}),
    )
}

/// The objects of the sink's connections forward at once (the others at
/// their next alarm); none of them pulls for it.
async fn forward_now(env: &Env, sink: &crate::d1::sinks::SinkRow) -> Result<()> {
    for c in crate::d1::connections::Store::new(env.d1("DB")?)
        .list()
        .await?
        .iter()
        .filter(|c| sink.serves(&c.id))
        .take(100)
    {
        let _ = crate::connection_object::forward_now(env, &c.id).await;
    }
    Ok(())
}

/// `GET /sinks/{id}/dead_letters`: what the receiver refused on its own,
/// newest first (the receiver's reason for admins only).
pub async fn dead_letters(env: &Env, id: &str, detail: SinkDetail) -> Answer {
    let store = store(env)?;
    let Some(sink) = store.get(id).await? else {
        return not_found(id);
    };
    let letters: Vec<serde_json::Value> = store
        .dead_letters(id, None, crate::d1::sinks::DEAD_LETTERS_PER_SINK as u32)
        .await?
        .iter()
        .map(|l| {
            let mut v = l.to_api();
            if detail == SinkDetail::ForReaders {
                if let Some(o) = v.as_object_mut() {
                    o.remove("reason");
                }
            }
            v
        })
        .collect();
    respond::json(
        200,
        &json!({ "dead_letters": letters, "dropped": sink.dead_letters_dropped as u64 }),
    )
}

/// `POST /sinks/{id}/dead_letters/replay`: once the receiver is mended,
/// its dead letters are sent again; what it takes leaves the list.
pub async fn replay_dead_letters(env: &Env, id: &str) -> Answer {
    let store = store(env)?;
    let Some(sink) = store.get(id).await? else {
        return not_found(id);
    };
    store
        .ask_dead_letter_replay(id, crate::now_ms() as i64)
        .await?;
    forward_now(env, &sink).await?;
    respond::json(202, &json!({ "dead_letters": sink.dead_letters as u64 }))
}
