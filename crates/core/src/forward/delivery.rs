//! Each receiver's request: Standard Webhooks signatures, Splunk HEC
//! envelopes, Elastic `_bulk` `create`, Sentinel's token and Logs Ingestion
//! call.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::formats::*;
use super::kinds::*;
use super::settings::*;
use super::verdicts::*;
use crate::clock::rfc3339;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::secret::Secret;

/// Where and how to send: the sink's URL, settings and secret, and the
/// instance's host for HEC's `host`.
pub struct Target<'a> {
    pub url: &'a SinkUrl,
    pub params: &'a SinkParams,
    pub secret: &'a Secret,
    pub host: &'a str,
}

/// A batch's message id: the same batch asked again carries the same id,
/// so a webhook receiver can drop the repeat by it.
pub fn message_id(stream: Stream, items: &[Item]) -> String {
    let mut h = Sha256::new();
    h.update(stream.as_str());
    for i in items {
        h.update(i.id.as_bytes());
        h.update(b"\n");
        // A grown alert is sent again under its id: a new message.
        h.update(i.record.to_string().as_bytes());
    }
    let d = h.finalize();
    format!(
        "msg_{}",
        d.iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// `v1,<signature>` per secret, space-separated (Standard Webhooks 1.0).
pub fn webhook_signature(secrets: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = Vec::new();
    for s in secrets.split_whitespace() {
        let Some(key) = s
            .strip_prefix("whsec_")
            .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
        else {
            continue;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            continue;
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        out.push(format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        ));
    }
    out.join(" ")
}

/// The call that delivers `items` (already cut to one batch). Sentinel
/// needs its access token (`sentinel_token_request`).
pub fn delivery(
    t: &Target<'_>,
    stream: Stream,
    items: &[Item],
    now: i64,
    token: Option<&str>,
) -> HttpRequest {
    let json_header = ("content-type".to_string(), "application/json".to_string());
    match t.params {
        SinkParams::Webhook => {
            let body = json!({"type": stream.as_str(), "data": items.iter().map(|i| &i.record).collect::<Vec<_>>()}).to_string().into_bytes();
            let id = message_id(stream, items);
            HttpRequest {
                method: Method::Post,
                url: t.url.as_str().to_string(),
                headers: vec![
                    json_header,
                    ("webhook-id".into(), id.clone()),
                    ("webhook-timestamp".into(), now.to_string()),
                    (
                        "webhook-signature".into(),
                        webhook_signature(t.secret.expose(), &id, now, &body),
                    ),
                ],
                body,
            }
        }
        SinkParams::SplunkHec => {
            let (sourcetype, source_prefix) = match stream {
                Stream::Events => ("servicenow:event", "servicenow:"),
                Stream::Alerts => ("servicenow:alert", "servicenow:"),
            };
            let mut body = String::new();
            for i in items {
                body.push_str(
                    &json!({
                        "time": i.occurred_at,
                        "host": t.host,
                        "source": format!("{source_prefix}{}", i.source),
                        "sourcetype": sourcetype,
                        "event": i.record,
                        "fields": {"event_id": i.id},
                    })
                    .to_string(),
                );
                body.push('\n');
            }
            HttpRequest {
                method: Method::Post,
                url: t.url.as_str().to_string(),
                headers: vec![
                    json_header,
                    (
                        "authorization".into(),
                        format!("Splunk {}", t.secret.expose()),
                    ),
                ],
                body: body.into_bytes(),
            }
        }
        SinkParams::Elastic { index } => {
            let mut body = String::new();
            for i in items {
                // Events are written once (`create`: a repeat is refused);
                // an alert grows, so its latest form replaces the earlier.
                let action = match stream {
                    Stream::Events => "create",
                    Stream::Alerts => "index",
                };
                body.push_str(
                    &json!({action: {"_index": index, "_id": i.receiver_id()}}).to_string(),
                );
                body.push('\n');
                let mut doc = i.record.clone();
                if let Some(o) = doc.as_object_mut() {
                    o.entry("@timestamp")
                        .or_insert_with(|| Value::String(rfc3339(i.occurred_at)));
                }
                body.push_str(&doc.to_string());
                body.push('\n');
            }
            HttpRequest {
                method: Method::Post,
                url: t.url.join("_bulk"),
                headers: vec![
                    ("content-type".into(), "application/x-ndjson".into()),
                    (
                        "authorization".into(),
                        format!("ApiKey {}", t.secret.expose()),
                    ),
                ],
                body: body.into_bytes(),
            }
        }
        SinkParams::Sentinel {
            dcr_immutable_id,
            stream_name,
            ..
        } => {
            let rows: Vec<Value> = items
                .iter()
                .map(|i| {
                    json!({
                        "TimeGenerated": rfc3339(i.occurred_at),
                        "EventId": i.id,
                        "Source": i.source,
                        "Stream": stream.as_str(),
                        "Record": i.record,
                    })
                })
                .collect();
            HttpRequest {
                method: Method::Post,
                url: t.url.join(&format!(
                    "dataCollectionRules/{dcr_immutable_id}/streams/{stream_name}?api-version=2023-01-01"
                )),
                headers: vec![json_header, ("authorization".into(), format!("Bearer {}", token.unwrap_or_default()))],
                body: Value::Array(rows).to_string().into_bytes(),
            }
        }
    }
}

/// The client-credentials call for a Sentinel sink's token.
pub fn sentinel_token_request(params: &SinkParams, client_secret: &Secret) -> Option<HttpRequest> {
    let SinkParams::Sentinel {
        tenant_id,
        client_id,
        token_url,
        ..
    } = params
    else {
        return None;
    };
    let url = token_url.clone().unwrap_or_else(|| {
        format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token")
    });
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret.expose())
        .append_pair("scope", "https://monitor.azure.com//.default")
        .finish();
    Some(HttpRequest {
        method: Method::Post,
        url,
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: body.into_bytes(),
    })
}

/// A token answer: the token and its lifetime in seconds.
pub fn sentinel_token(resp: &HttpResponse) -> Result<(Secret, i64), Verdict> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: String,
        expires_in: Option<i64>,
    }
    if resp.status != 200 {
        return Err(verdict(SinkKind::Sentinel, resp));
    }
    serde_json::from_slice::<Answer>(&resp.body)
        .map(|a| (Secret::new(a.access_token), a.expires_in.unwrap_or(3600)))
        .map_err(|_| Verdict::Retry {
            after_secs: None,
            status: resp.status,
            message: "the token endpoint's answer did not parse".into(),
        })
}
