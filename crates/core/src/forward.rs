//! Forwarding to the team's own monitoring, with no I/O: sinks as data and
//! their URLs checked, records formatted (contract, OCSF, ECS), each
//! receiver's wire format (Standard Webhooks, Splunk HEC, Elastic `_bulk`,
//! Sentinel's Logs Ingestion API), what an answer means, and when to try
//! again. The worker's connection object moves the bytes.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::{parse_rfc3339, rfc3339};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::problem::FieldError;
use crate::pull::events::{Event, Kind};
use crate::secret::Secret;
use crate::watch::detect::Alert;
use crate::watch::posture::Severity;

macro_rules! string_enum {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            pub fn parse(s: &str) -> Option<$name> { Self::ALL.iter().copied().find(|v| v.as_str() == s) }
        }
    };
}

string_enum!(SinkKind { Webhook = "webhook", SplunkHec = "splunk_hec", Elastic = "elastic", Sentinel = "sentinel" });
string_enum!(Stream { Events = "events", Alerts = "alerts" });
string_enum!(Format { Contract = "contract", Ocsf = "ocsf", Ecs = "ecs" });
string_enum!(SinkState { Active = "active", Failing = "failing", Disabled = "disabled" });

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

    pub fn parse(input: &str, allow_loopback: bool) -> Result<SinkUrl, &'static str> {
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
        if allow_loopback && loopback && (scheme == "http" || scheme == "https") {
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
    allow_loopback: bool,
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
            .map(|u| SinkUrl::parse(u, allow_loopback))
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
                Some(v) => match v.as_str().map(|u| SinkUrl::parse(u, allow_loopback)) {
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

/// One record to deliver: its stable id, its time, what it came from, and
/// the record itself in the sink's format.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: String,
    pub occurred_at: i64,
    pub source: String,
    pub record: Value,
    /// The connection an event came from: ids (`table:sys_id`) are unique
    /// per instance only, so where a receiver keys documents by id
    /// (Elastic's `_id`) it is scoped by the connection.
    pub scope: Option<String>,
}

impl Item {
    /// The id a receiver that refuses repeats keys the document by.
    pub fn receiver_id(&self) -> String {
        match &self.scope {
            Some(connection) => format!("{connection}:{}", self.id),
            None => self.id.clone(),
        }
    }
}

pub fn event_item(e: &Event, format: Format) -> Item {
    Item {
        id: e.id.clone(),
        occurred_at: parse_rfc3339(&e.occurred_at).unwrap_or(0),
        source: e.source_table.clone(),
        scope: Some(e.connection_id.clone()),
        record: match format {
            Format::Contract => serde_json::to_value(e).unwrap_or(Value::Null),
            Format::Ocsf => crate::pull::events::ocsf(e),
            Format::Ecs => ecs_event(e),
        },
    }
}

/// An alert and its status; alerts grow, so a grown alert is sent again
/// under the same id (receivers keep the last).
pub fn alert_item(a: &Alert, status: &str, instance_url: &str, format: Format) -> Item {
    let mut contract = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Some(o) = contract.as_object_mut() {
        o.insert("status".into(), Value::String(status.into()));
    }
    Item {
        id: a.id.clone(),
        occurred_at: parse_rfc3339(&a.last_seen).unwrap_or(0),
        source: format!("rule:{}", a.rule.as_str()),
        scope: None,
        record: match format {
            Format::Contract => contract,
            Format::Ocsf => crate::watch::detect::ocsf_finding(a, status, instance_url),
            Format::Ecs => ecs_alert(a, status),
        },
    }
}

/// ECS: `event.kind/category/type/action/outcome`, `user.name`,
/// `source.ip`, the ServiceNow record under `servicenow.*` (docs/events.md).
pub fn ecs_event(e: &Event) -> Value {
    let (category, kind_type, outcome): (&[&str], &[&str], Option<&str>) = match e.kind {
        Kind::Login => (&["authentication", "session"], &["start"], Some("success")),
        Kind::LoginFailed => (&["authentication"], &["start"], Some("failure")),
        Kind::Logout => (&["authentication", "session"], &["end"], Some("success")),
        Kind::Impersonation => (&["iam", "session"], &["start", "admin"], Some("success")),
        Kind::Elevation => (&["iam"], &["admin", "change"], Some("success")),
        Kind::RecordCreated => (&["configuration"], &["creation"], None),
        Kind::RecordUpdated => (&["configuration"], &["change"], None),
        Kind::RecordDeleted => (&["configuration"], &["deletion"], None),
        Kind::RoleGranted => (&["iam"], &["user", "change", "group"], Some("success")),
        Kind::RoleRevoked => (&["iam"], &["user", "change", "group"], Some("success")),
        Kind::UserCreated => (&["iam"], &["user", "creation"], Some("success")),
        Kind::UserDeleted => (&["iam"], &["user", "deletion"], Some("success")),
        Kind::Transaction => (&["web"], &["access"], None),
        Kind::Other => (&["configuration"], &["info"], None),
    };
    let mut v = json!({
        "@timestamp": e.occurred_at,
        "ecs": {"version": "8.11.0"},
        "event": {
            "id": e.id,
            "kind": "event",
            "category": category,
            "type": kind_type,
            "action": e.kind.as_str(),
            "dataset": format!("servicenow.{}", e.source_table),
            "provider": "servicenow",
        },
        "servicenow": {
            "connection_id": e.connection_id,
            "source_table": e.source_table,
            "target": e.target,
            "old_value": e.old_value,
            "new_value": e.new_value,
            "raw": e.raw,
        },
    });
    if let Some(o) = outcome {
        v["event"]["outcome"] = json!(o);
    }
    if !e.truncated_fields.is_empty() {
        v["servicenow"]["truncated_fields"] = json!(e.truncated_fields);
    }
    if let Some(a) = &e.actor {
        v["user"] = json!({"name": a});
        v["related"] = json!({"user": [a]});
    }
    if let Some(ip) = &e.source_ip {
        v["source"] = json!({"ip": ip});
        v["related"]["ip"] = json!([ip]);
    }
    v
}

pub fn ecs_alert(a: &Alert, status: &str) -> Value {
    let severity = match a.severity {
        Severity::Critical => 99,
        Severity::High => 73,
        Severity::Medium => 47,
        Severity::Low => 21,
    };
    let mut v = json!({
        "@timestamp": a.last_seen,
        "ecs": {"version": "8.11.0"},
        "event": {
            "id": a.id,
            "kind": "alert",
            "category": ["iam"],
            "type": ["info"],
            "action": a.rule.as_str(),
            "severity": severity,
            "start": a.first_seen,
            "end": a.last_seen,
            "provider": "servicenow",
        },
        "rule": {"id": a.rule.as_str(), "name": a.title},
        "message": a.summary,
        "threat": {"technique": {"id": a.attack}},
        "servicenow": {"connection_id": a.connection_id, "count": a.count, "event_ids": a.event_ids, "status": status},
    });
    if let Some(actor) = &a.actor {
        v["user"] = json!({"name": actor});
    }
    if let Some(ip) = &a.source_ip {
        v["source"] = json!({"ip": ip});
    }
    v
}

/// How much one call may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub items: usize,
    pub bytes: usize,
}

impl SinkKind {
    pub fn limits(self) -> BatchLimits {
        match self {
            // The Logs Ingestion API refuses calls over 1 MB.
            SinkKind::Sentinel => BatchLimits {
                items: 1_000,
                bytes: 950_000,
            },
            SinkKind::Webhook => BatchLimits {
                items: 500,
                bytes: 1_000_000,
            },
            SinkKind::SplunkHec => BatchLimits {
                items: 1_000,
                bytes: 4_000_000,
            },
            SinkKind::Elastic => BatchLimits {
                items: 1_000,
                bytes: 5_000_000,
            },
        }
    }
}

/// The leading items that fit one call (at least one).
pub fn batch_len(kind: SinkKind, items: &[Item]) -> usize {
    let limits = kind.limits();
    let mut bytes = 0;
    for (n, item) in items.iter().enumerate().take(limits.items) {
        bytes += item.record.to_string().len() + 64;
        if bytes > limits.bytes && n > 0 {
            return n;
        }
    }
    items.len().min(limits.items)
}

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
            s if sending::payload_refused(s) => refused.push((index, s, said())),
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

pub mod replay;
pub mod sending;
pub mod step;

#[cfg(test)]
mod tests;
