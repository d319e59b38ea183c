//! Records formatted for a receiver (contract, OCSF, ECS) and batches cut
//! to its limits.

use serde_json::{json, Value};

use super::kinds::*;
use crate::clock::parse_rfc3339;
use crate::pull::events::{Event, Kind};
use crate::watch::detect::Alert;
use crate::watch::posture::Severity;

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
