//! Sinks as the API shows and takes them: their settings checked (the URL
//! policy shares instance URLs' IP-literal rules), their credentials never
//! answered.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kinds::*;
use crate::problem::FieldError;
use crate::secret::Secret;
use crate::servicenow::instance_url::Loopback;

/// A sink as `GET /sinks` lists it (what the page reads; the answer holds
/// more, such as the kind's non-secret parameters). Credentials never.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SinkInfo {
    pub id: String,
    pub name: String,
    pub kind: SinkKind,
    /// Without its query for read-only callers.
    pub url: String,
    pub streams: Vec<Stream>,
    pub format: Format,
    pub state: SinkState,
    pub delivered: u64,
    pub pending: u64,
    pub last_success_at: Option<String>,
    pub last_error: Option<SinkError>,
    /// Items the receiver refused on its own, kept for a replay.
    #[serde(default)]
    pub dead_letters: u64,
    #[serde(default)]
    pub dead_letters_dropped: u64,
}

/// One item a receiver refused on its own, as
/// `GET /sinks/{id}/dead_letters` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub connection_id: String,
    pub stream: Stream,
    /// The event's or alert's id.
    pub item_id: String,
    pub status: u16,
    /// The receiver's reason: admins only.
    #[serde(default)]
    pub reason: Option<String>,
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
    /// The oldest, dropped past the 1,000 a sink keeps.
    pub dropped: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SinkError {
    pub at: String,
    pub status: Option<u16>,
    /// The receiver's answer: admins only.
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SinkList {
    pub sinks: Vec<SinkInfo>,
}

/// `POST /sinks`'s answer: a webhook's signing secret is shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CreatedSink {
    #[serde(flatten)]
    pub info: SinkInfo,
    pub secret: Option<Secret>,
}

impl SinkKind {
    /// How the page names it.
    pub fn label(self) -> &'static str {
        match self {
            SinkKind::Webhook => "Webhook (Standard Webhooks)",
            SinkKind::SplunkHec => "Splunk HTTP Event Collector",
            SinkKind::Elastic => "Elastic (_bulk into a data stream)",
            SinkKind::Sentinel => "Microsoft Sentinel (Logs Ingestion API)",
        }
    }
}

/// A sink's URL: https (http only to loopback in tests), a host name (no
/// IP literal of any notation, no localhost or internal names), no user
/// info. DNS cannot be checked from here; a name is the receiver's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SinkUrl(String);

impl SinkUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with `path` appended below it (no doubled slash).
    pub fn join(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.0.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// A stored receiver URL as callers without `admin` see it: scheme and
    /// host only. Webhook URLs (Slack's, Discord's, Zapier's) carry their
    /// secret in the path as often as in the query.
    pub fn shown_to_readers(stored: &str) -> String {
        let Some((scheme, rest)) = stored.split_once("://") else {
            return "…".into();
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.len() == rest.len() {
            format!("{scheme}://{authority}")
        } else {
            format!("{scheme}://{authority}/…")
        }
    }

    pub fn parse(input: &str, loopback_allowed: Loopback) -> Result<SinkUrl, &'static str> {
        let raw = input.trim();
        if raw.is_empty()
            || !raw.is_ascii()
            || raw
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
        {
            return Err("Give the receiver's full https URL in plain ASCII.");
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err("Give the receiver's full URL, starting with https://.");
        };
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let path = &rest[authority.len()..];
        if path.contains('#') {
            return Err("Remove the #fragment from the URL.");
        }
        if authority.contains('@') {
            return Err("Remove the user name or password from the URL; give credentials in their own fields.");
        }
        let (host, port) = if authority.starts_with('[') {
            match authority.split_once(']') {
                Some((h, rest)) => (format!("{h}]").to_ascii_lowercase(), rest.strip_prefix(':')),
                None => return Err("The host name is not valid."),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (authority.to_ascii_lowercase(), None),
            }
        };
        if let Some(p) = port {
            if p.parse::<u16>().map_or(true, |p| p == 0) {
                return Err("The port is not a number from 1 to 65535.");
            }
        }
        let loopback = matches!(host.as_str(), "127.0.0.1" | "[::1]" | "localhost");
        if loopback_allowed == Loopback::Allowed
            && loopback
            && (scheme == "http" || scheme == "https")
        {
            return Ok(SinkUrl(
                format!("{scheme}://{authority}{path}")
                    .trim_end_matches('/')
                    .to_string(),
            ));
        }
        if scheme != "https" {
            return Err("Only https:// receivers are allowed.");
        }
        if host.is_empty()
            || host.contains('%')
            || host.ends_with('.')
            || !host.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || b == b'-'
                    || b == b'.'
                    || b == b'['
                    || b == b']'
                    || b == b':'
            })
        {
            return Err("The host name is not valid.");
        }
        if crate::servicenow::instance_url::is_ip_literal(&host) {
            return Err("Use the receiver's host name, not an IP address: loopback, private, link-local and metadata addresses are not allowed.");
        }
        let internal = [
            "localhost",
            "local",
            "internal",
            "localdomain",
            "home.arpa",
            "intranet",
            "corp",
            "lan",
        ];
        if !host.contains('.')
            || internal
                .iter()
                .any(|s| host == *s || host.ends_with(&format!(".{s}")))
        {
            return Err("This host is internal (localhost, .local, .internal …); give the receiver's public host name.");
        }
        Ok(SinkUrl(
            format!("https://{authority}{path}")
                .trim_end_matches('/')
                .to_string(),
        ))
    }
}

/// What a sink needs beyond its URL that is not secret, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkParams {
    Webhook,
    SplunkHec,
    Elastic {
        index: String,
    },
    Sentinel {
        tenant_id: String,
        client_id: String,
        dcr_immutable_id: String,
        stream_name: String,
        /// Tests only; Microsoft's token endpoint for the tenant otherwise.
        token_url: Option<String>,
    },
}

impl SinkParams {
    pub fn kind(&self) -> SinkKind {
        match self {
            SinkParams::Webhook => SinkKind::Webhook,
            SinkParams::SplunkHec => SinkKind::SplunkHec,
            SinkParams::Elastic { .. } => SinkKind::Elastic,
            SinkParams::Sentinel { .. } => SinkKind::Sentinel,
        }
    }
}

/// A sink's settings as validated; its secret is apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkSettings {
    pub name: String,
    pub url: SinkUrl,
    pub streams: Vec<Stream>,
    pub connection_ids: Option<Vec<String>>,
    pub format: Format,
    pub params: SinkParams,
}

impl SinkSettings {
    /// Whether the sink takes this connection's events and alerts: every
    /// connection's when it names none.
    pub fn serves(&self, connection_id: &str) -> bool {
        self.connection_ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|c| c == connection_id))
    }
}

/// The body of `POST /sinks` and `PATCH /sinks/{id}` as sent.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SinkRequest {
    pub name: Option<Value>,
    pub kind: Option<Value>,
    pub url: Option<Value>,
    pub streams: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub connection_ids: Option<Value>,
    pub format: Option<Value>,
    pub token: Option<Value>,
    pub api_key: Option<Value>,
    pub index: Option<Value>,
    pub tenant_id: Option<Value>,
    pub client_id: Option<Value>,
    pub client_secret: Option<Value>,
    pub dcr_immutable_id: Option<Value>,
    pub stream_name: Option<Value>,
    pub token_url: Option<Value>,
    pub state: Option<Value>,
    pub rotate_secret: Option<Value>,
}

/// Tells `"connection_ids": null` (all connections) from a missing field.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            code: if field == "url" {
                "sink_url_forbidden".into()
            } else {
                "invalid".into()
            },
            message: message.into(),
        });
    }
}

fn text_field(v: &Option<Value>, max: usize) -> Option<String> {
    v.as_ref()
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control))
        .map(str::to_string)
}

fn is_connection_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The whole settings of a new sink, or of a sink after a PATCH (`base`
/// holds what is not sent). `secret` is the credential sent, if any.
pub fn validate(
    req: &SinkRequest,
    base: Option<&SinkSettings>,
    loopback: Loopback,
) -> Result<(SinkSettings, Option<Secret>), Vec<FieldError>> {
    let mut e = Errors(Vec::new());
    let kind = match (&req.kind, base) {
        (None, Some(b)) => Some(b.params.kind()),
        (Some(v), Some(b)) if v.as_str() == Some(b.params.kind().as_str()) => Some(b.params.kind()),
        (Some(_), Some(_)) => {
            e.add("kind", "A sink's kind cannot change; create another sink.");
            None
        }
        (v, None) => {
            let k = v
                .as_ref()
                .and_then(|v| v.as_str())
                .and_then(SinkKind::parse);
            if k.is_none() {
                e.add("kind", "Use webhook, splunk_hec, elastic or sentinel.");
            }
            k
        }
    };
    let name = match (&req.name, base) {
        (None, Some(b)) => Some(b.name.clone()),
        (v, _) => {
            let n = text_field(v, 64);
            if n.is_none() {
                e.add(
                    "name",
                    "Name the sink (1 to 64 characters), e.g. after the receiver.",
                );
            }
            n
        }
    };
    let url = match (&req.url, base) {
        (None, Some(b)) => Some(b.url.clone()),
        (v, _) => match v
            .as_ref()
            .and_then(|v| v.as_str())
            .map(|u| SinkUrl::parse(u, loopback))
        {
            Some(Ok(u)) => Some(u),
            Some(Err(why)) => {
                e.add("url", why);
                None
            }
            None => {
                e.add("url", "Give the receiver's https URL.");
                None
            }
        },
    };
    let streams = match (&req.streams, base) {
        (None, Some(b)) => Some(b.streams.clone()),
        (None, None) => Some(vec![Stream::Events, Stream::Alerts]),
        (Some(v), _) => {
            let s = v
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|s| s.as_str().and_then(Stream::parse))
                        .collect::<Option<Vec<_>>>()
                })
                .map(|mut s| {
                    s.sort_by_key(|x| Stream::ALL.iter().position(|y| y == x));
                    s.dedup();
                    s
                })
                .filter(|s| !s.is_empty());
            if s.is_none() {
                e.add("streams", "Give [\"events\"], [\"alerts\"] or both.");
            }
            s
        }
    };
    let connection_ids = match (&req.connection_ids, base) {
        (None, Some(b)) => Some(b.connection_ids.clone()),
        (None, None) | (Some(Value::Null), _) => Some(None),
        (Some(v), _) => {
            let ids = v.as_array().and_then(|a| {
                a.iter()
                    .map(|s| {
                        s.as_str()
                            .filter(|s| is_connection_id(s))
                            .map(str::to_string)
                    })
                    .collect::<Option<Vec<_>>>()
            });
            match ids {
                Some(ids) if !ids.is_empty() => Some(Some(ids)),
                _ => {
                    e.add(
                        "connection_ids",
                        "Give connection ids (32 hex characters), or null for every connection.",
                    );
                    None
                }
            }
        }
    };
    let format = match (&req.format, base) {
        (None, Some(b)) => Some(b.format),
        (None, None) => Some(Format::Contract),
        (Some(v), _) => {
            let f = v.as_str().and_then(Format::parse);
            if f.is_none() {
                e.add("format", "Use contract, ocsf or ecs.");
            }
            f
        }
    };
    let base_params = base.map(|b| &b.params);
    let keep = |field: &Option<Value>,
                old: Option<&String>,
                name: &str,
                e: &mut Errors|
     -> Option<String> {
        match (field, old) {
            (None, Some(o)) => Some(o.clone()),
            (v, _) => {
                let t = text_field(v, 256);
                if t.is_none() {
                    e.add(name, format!("Give the {name}."));
                }
                t
            }
        }
    };
    // A credential goes only where it was given for: a PATCH that moves the
    // sink (its URL, or Sentinel's token URL) must give the credential again.
    let moved = base.is_some_and(|b| {
        url.as_ref().is_some_and(|u| *u != b.url)
            || match (&b.params, &req.token_url) {
                (SinkParams::Sentinel { token_url, .. }, Some(v)) => {
                    v.as_str() != token_url.as_deref()
                }
                _ => false,
            }
    });
    let secret_field = |field: &Option<Value>, name: &str, e: &mut Errors| -> Option<Secret> {
        match field {
            None if base.is_some() && !moved => None,
            None if base.is_some() => {
                e.add(name, format!("The sink's address changes: give the {name} again (a stored credential is only sent where it was given for)."));
                None
            }
            v => {
                let t = text_field(v, 4096).map(Secret::new);
                if t.is_none() {
                    e.add(
                        name,
                        format!("Give the {name}; it is sealed and never shown again."),
                    );
                }
                t
            }
        }
    };
    if matches!(kind, Some(SinkKind::Elastic) | Some(SinkKind::Sentinel))
        && url.as_ref().is_some_and(|u| u.as_str().contains('?'))
    {
        e.add(
            "url",
            "Give the base URL without a query: the connector appends the API's path.",
        );
    }
    let path_safe = |v: &Option<String>| {
        v.as_deref().is_none_or(|s| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
    };
    let (params, secret) = match kind {
        Some(SinkKind::Webhook) => (Some(SinkParams::Webhook), None),
        Some(SinkKind::SplunkHec) => (
            Some(SinkParams::SplunkHec),
            secret_field(&req.token, "token", &mut e),
        ),
        Some(SinkKind::Elastic) => {
            let old = match base_params {
                Some(SinkParams::Elastic { index }) => Some(index),
                _ => None,
            };
            let index = keep(&req.index, old, "index", &mut e);
            if index.as_deref().is_some_and(|i| {
                !i.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
                    || i.starts_with(['-', '_', '.'])
            }) {
                e.add(
                    "index",
                    "Use a data stream name in lower case, such as logs-servicenow-default.",
                );
            }
            (
                index.map(|index| SinkParams::Elastic { index }),
                secret_field(&req.api_key, "api_key", &mut e),
            )
        }
        Some(SinkKind::Sentinel) => {
            let old = match base_params {
                Some(SinkParams::Sentinel {
                    tenant_id,
                    client_id,
                    dcr_immutable_id,
                    stream_name,
                    token_url,
                }) => Some((
                    tenant_id,
                    client_id,
                    dcr_immutable_id,
                    stream_name,
                    token_url,
                )),
                _ => None,
            };
            let tenant_id = keep(&req.tenant_id, old.map(|o| o.0), "tenant_id", &mut e);
            let client_id = keep(&req.client_id, old.map(|o| o.1), "client_id", &mut e);
            let dcr = keep(
                &req.dcr_immutable_id,
                old.map(|o| o.2),
                "dcr_immutable_id",
                &mut e,
            );
            let stream_name = keep(&req.stream_name, old.map(|o| o.3), "stream_name", &mut e);
            let token_url = match &req.token_url {
                None => old.and_then(|o| o.4.clone()),
                Some(Value::Null) => None,
                Some(v) => match v.as_str().map(|u| SinkUrl::parse(u, loopback)) {
                    Some(Ok(u)) => Some(u.as_str().to_string()),
                    _ => {
                        e.add("token_url", "Leave token_url out (Microsoft's endpoint for the tenant), or give an https URL.");
                        None
                    }
                },
            };
            let secret = secret_field(&req.client_secret, "client_secret", &mut e);
            for (name, v) in [
                ("dcr_immutable_id", &dcr),
                ("stream_name", &stream_name),
                ("tenant_id", &tenant_id),
            ] {
                if !path_safe(v) {
                    e.add(name, "Use letters, digits, '-', '_' and '.' only.");
                }
            }
            let params = match (tenant_id, client_id, dcr, stream_name) {
                (Some(tenant_id), Some(client_id), Some(dcr_immutable_id), Some(stream_name)) => {
                    Some(SinkParams::Sentinel {
                        tenant_id,
                        client_id,
                        dcr_immutable_id,
                        stream_name,
                        token_url,
                    })
                }
                _ => None,
            };
            (params, secret)
        }
        None => (None, None),
    };
    match (name, url, streams, connection_ids, format, params) {
        (
            Some(name),
            Some(url),
            Some(streams),
            Some(connection_ids),
            Some(format),
            Some(params),
        ) if e.0.is_empty() => Ok((
            SinkSettings {
                name,
                url,
                streams,
                connection_ids,
                format,
                params,
            },
            secret,
        )),
        _ => Err(e.0),
    }
}

/// A new webhook signing secret: `whsec_` and 24 random bytes, base64.
pub fn webhook_secret(random: &[u8; 24]) -> Secret {
    Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random)
    ))
}
