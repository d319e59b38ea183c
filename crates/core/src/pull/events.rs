//! Normalization of ServiceNow records to the contract's Event, with the raw
//! record kept. The one mapping table (also in docs/events.md):
//!
//! | source table | record | kind |
//! |---|---|---|
//! | sysevent | name `login`, `external.authentication.succeeded` | login |
//! | sysevent | name `login.failed`, `external.authentication.failed` | login_failed |
//! | sysevent | name `logout` | logout |
//! | sysevent | name `impersonation.*` | impersonation |
//! | sysevent | name `security.elevated_role.*` | elevation |
//! | sysevent | any other name | other |
//! | sys_audit | tablename sys_user, fieldname user_name, no old value | user_created |
//! | sys_audit | tablename sys_user_has_role, fieldname role, no old value | role_granted |
//! | sys_audit | tablename sys_user_has_role, fieldname role, no new value | role_revoked |
//! | sys_audit | record_checkpoint 0 or no old value | record_created |
//! | sys_audit | anything else | record_updated |
//! | sys_audit_delete | tablename sys_user | user_deleted |
//! | sys_audit_delete | tablename sys_user_has_role | role_revoked |
//! | sys_audit_delete | anything else | record_deleted |
//! | syslog_transaction | every record | transaction |
//! | sys_user | every record (a user created in the window) | user_created |
//! | sys_user_has_role | every record (a role granted in the window) | role_granted |

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::clock::rfc3339;

/// A record as ServiceNow sent it, kept as its JSON text: written out as it
/// came (to the archive, the API, a SIEM), read field by field only where
/// normalization or a rule needs a field. A page's records are neither
/// built into maps nor serialized again, the largest share of a page's work
/// before this.
#[derive(Clone, Debug)]
pub struct RawRecord(Box<RawValue>);

impl RawRecord {
    /// The record's JSON text, if it is a JSON object.
    pub fn parse(text: &str) -> Option<RawRecord> {
        text.trim_start()
            .starts_with('{')
            .then(|| RawValue::from_string(text.to_string()).ok())
            .flatten()
            .map(RawRecord)
    }

    pub fn from_map(map: &Map<String, Value>) -> RawRecord {
        // A map of JSON values always serializes.
        RawRecord(serde_json::value::to_raw_value(map).unwrap_or_else(|_| Self::empty().0))
    }

    /// `{}`; no panic path even in theory (`null` if `{}` were refused).
    pub fn empty() -> RawRecord {
        RawRecord(
            RawValue::from_string("{}".to_string()).unwrap_or_else(|_| RawValue::NULL.to_owned()),
        )
    }

    pub(crate) fn from_raw(raw: Box<RawValue>) -> RawRecord {
        RawRecord(raw)
    }

    pub(crate) fn into_raw(self) -> Box<RawValue> {
        self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// A field as text (see `Fields::text`).
    pub fn field(&self, name: &str) -> Option<String> {
        Fields::read(self.0.get())?.text(name)
    }
}

impl PartialEq for RawRecord {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for RawRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Through any deserializer (the page's admin views read Events through
/// serde-wasm-bindgen, which has no raw values); the archive reads its lines
/// with serde_json's raw value directly.
impl<'de> Deserialize<'de> for RawRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        Ok(RawRecord::from_map(&map))
    }
}

/// A record's fields, borrowed from its text: the values stay JSON text
/// until one is asked for.
pub(crate) enum Fields<'a> {
    Borrowed(FieldList<'a>),
    /// A record whose field names carry JSON escapes (none of ServiceNow's
    /// do) cannot lend them: it is read whole.
    Owned(Map<String, Value>),
}

/// A record's fields in the order sent, each value still JSON text. A
/// record has a dozen or so fields, so a scan finds one faster than a tree
/// is built (a tree was a fifth of reading a page).
pub(crate) struct FieldList<'a>(Vec<(&'a str, &'a str)>);

impl<'a> FieldList<'a> {
    /// The last of a name sent twice, as a map keeps it.
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for FieldList<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = FieldList<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some((name, value)) = m.next_entry::<&'de str, &'de RawValue>()? {
                    fields.push((name, value.get()));
                }
                Ok(FieldList(fields))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// A JSON string's value: without escapes, the text between the quotes
/// as it is; with them, decoded.
fn json_string(raw: &str) -> Option<String> {
    match plain_string(raw) {
        Some(inner) => Some(inner.to_string()),
        None => serde_json::from_str::<String>(raw).ok(),
    }
}

/// The text between a JSON string's quotes, when it has no escapes.
fn plain_string(raw: &str) -> Option<&str> {
    raw.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|inner| !inner.contains('\\'))
}

/// A reference field as `{"value": …, "link": …}`.
#[derive(Deserialize)]
struct Reference {
    value: Option<String>,
}

impl<'a> Fields<'a> {
    /// `None` if the text is not a JSON object.
    pub(crate) fn read(text: &'a str) -> Option<Fields<'a>> {
        match serde_json::from_str::<FieldList<'a>>(text) {
            Ok(fields) => Some(Fields::Borrowed(fields)),
            Err(_) => serde_json::from_str::<Map<String, Value>>(text)
                .ok()
                .map(Fields::Owned),
        }
    }

    /// A field that is a JSON string, as it is (empty included).
    pub(crate) fn string(&self, field: &str) -> Option<String> {
        match self {
            Fields::Owned(map) => map.get(field)?.as_str().map(str::to_string),
            Fields::Borrowed(fields) => {
                let raw = fields.get(field)?;
                raw.starts_with('"').then(|| json_string(raw)).flatten()
            }
        }
    }

    /// `text`, lent from the record when the value is a plain string (no
    /// escapes): the fields a record is only looked at by cost no copy.
    pub(crate) fn text_lent(&self, field: &str) -> Option<Cow<'a, str>> {
        if let Fields::Borrowed(fields) = self {
            if let Some(inner) = plain_string(fields.get(field)?) {
                return (!inner.is_empty()).then_some(Cow::Borrowed(inner));
            }
        }
        self.text(field).map(Cow::Owned)
    }

    /// A field's value as text, as `text` reads it from a map.
    pub(crate) fn text(&self, field: &str) -> Option<String> {
        let raw = match self {
            Fields::Owned(map) => return text(map, field),
            Fields::Borrowed(fields) => fields.get(field)?,
        };
        let value = match raw.as_bytes().first()? {
            b'"' => json_string(raw),
            b'{' => serde_json::from_str::<Reference>(raw).ok()?.value,
            b't' | b'f' => serde_json::from_str::<bool>(raw)
                .ok()
                .map(|b| b.to_string()),
            b'n' | b'[' => None,
            _ => serde_json::from_str::<serde_json::Number>(raw)
                .ok()
                .map(|n| n.to_string()),
        };
        value.filter(|v| !v.is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Login,
    LoginFailed,
    Logout,
    Impersonation,
    Elevation,
    RecordCreated,
    RecordUpdated,
    RecordDeleted,
    RoleGranted,
    RoleRevoked,
    UserCreated,
    UserDeleted,
    Transaction,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Login,
        Kind::LoginFailed,
        Kind::Logout,
        Kind::Impersonation,
        Kind::Elevation,
        Kind::RecordCreated,
        Kind::RecordUpdated,
        Kind::RecordDeleted,
        Kind::RoleGranted,
        Kind::RoleRevoked,
        Kind::UserCreated,
        Kind::UserDeleted,
        Kind::Transaction,
        Kind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::LoginFailed => "login_failed",
            Kind::Logout => "logout",
            Kind::Impersonation => "impersonation",
            Kind::Elevation => "elevation",
            Kind::RecordCreated => "record_created",
            Kind::RecordUpdated => "record_updated",
            Kind::RecordDeleted => "record_deleted",
            Kind::RoleGranted => "role_granted",
            Kind::RoleRevoked => "role_revoked",
            Kind::UserCreated => "user_created",
            Kind::UserDeleted => "user_deleted",
            Kind::Transaction => "transaction",
            Kind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub table: Option<String>,
    pub record: Option<String>,
    pub field: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `<source_table>:<sys_id>`.
    pub id: String,
    pub connection_id: String,
    pub occurred_at: String,
    pub kind: Kind,
    pub actor: Option<String>,
    pub source_ip: Option<String>,
    pub target: Option<Target>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub source_table: String,
    pub raw: RawRecord,
    /// Fields the record was stored without: each alone was over the
    /// answer cap (`ANSWER_CAP_BYTES`), so `raw` is the record as sent but
    /// for these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated_fields: Vec<String>,
}

impl Event {
    /// The record's sys_id: `id` after its `<source_table>:`. Taken by
    /// length, since the table is known, not searched for per event.
    pub fn sys_id(&self) -> &str {
        self.id
            .strip_prefix(self.source_table.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
            .unwrap_or_else(|| self.id.split_once(':').map_or("", |(_, s)| s))
    }
}

/// The fields each source is read with (raw values, no reference links).
pub fn fields_for(table: &str) -> &'static str {
    match table {
        "sysevent" => "sys_id,name,parm1,parm2,instance,queue,state,table,uri,sys_created_on,sys_created_by",
        "sys_audit" => "sys_id,tablename,documentkey,fieldname,oldvalue,newvalue,user,reason,record_checkpoint,sys_created_on,sys_created_by",
        "sys_audit_delete" => "sys_id,tablename,documentkey,display_value,sys_created_on,sys_created_by",
        "syslog_transaction" => "sys_id,url,remote_ip,type,response_time,response_status,session,sys_created_on,sys_created_by",
        "sys_user" => "sys_id,user_name,first_name,last_name,email,active,locked_out,sys_created_on,sys_created_by",
        "sys_user_has_role" => "sys_id,user,user.user_name,role,role.name,inherited,state,granted_by,sys_created_on,sys_created_by",
        _ => "sys_id,sys_created_on,sys_created_by",
    }
}

/// A field's raw value as text: a reference field may come as
/// `{"value": …}`; empty is nothing.
pub(crate) fn text(raw: &Map<String, Value>, field: &str) -> Option<String> {
    match raw.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Object(o)) => o
            .get("value")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// An IPv4 or IPv6 address as text, or nothing (sysevent's parm2 holds other
/// things for non-login events).
fn ip_like(s: Option<String>) -> Option<String> {
    s.filter(|v| v.parse::<std::net::IpAddr>().is_ok())
}

/// `YYYY-MM-DD hh:mm:ss` (UTC, ServiceNow's raw form) to unix seconds.
pub fn parse_servicenow_time(s: &str) -> Option<i64> {
    let s = s.trim();
    // Every record's time is read: the form is RFC 3339's with a space for
    // the `T` and no offset, and the crate reads RFC 3339 about seven times
    // faster than a described format. A leap second (`:60`), which the
    // described format refuses, is left to it.
    let b = s.as_bytes();
    if b.len() == 19 && b[10] == b' ' && b[17] < b'6' {
        let mut text = [b'Z'; 20];
        text[..19].copy_from_slice(b);
        text[10] = b'T';
        let parsed = std::str::from_utf8(&text).ok().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
        if let Some(t) = parsed {
            return Some(t.unix_timestamp());
        }
    }
    parse_described_time(s)
}

fn parse_described_time(s: &str) -> Option<i64> {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s, &f)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

pub fn servicenow_time(unix: i64) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&f).ok())
        .unwrap_or_default()
}

/// Normalizes one record. `None` when it lacks a sys_id or a readable
/// `sys_created_on` (a page leaves such a record out of its events; it still
/// moves the cursor, see `cursor::PageHead`).
pub fn normalize(connection_id: &str, table: &str, raw: &RawValue) -> Option<Event> {
    normalize_owned(connection_id, table, raw.to_owned())
}

/// `normalize` of a record already copied out of its page: the copy becomes
/// the Event's raw record.
pub(crate) fn normalize_owned(
    connection_id: &str,
    table: &str,
    raw: Box<RawValue>,
) -> Option<Event> {
    let fields = Fields::read(raw.get())?;
    let t = |f: &str| fields.text(f);
    let sys_id = fields.text_lent("sys_id")?;
    let occurred = parse_servicenow_time(&fields.text_lent("sys_created_on")?)?;
    let target = |table: Option<String>, record: Option<String>, field: Option<String>| {
        Some(Target {
            table,
            record,
            field,
        })
    };
    let (kind, actor, source_ip, tgt, old_value, new_value) = match table {
        "sysevent" => {
            let name = t("name").unwrap_or_default();
            let kind = match name.as_str() {
                "login" | "external.authentication.succeeded" => Kind::Login,
                "login.failed" | "external.authentication.failed" => Kind::LoginFailed,
                "logout" => Kind::Logout,
                n if n.starts_with("impersonation") => Kind::Impersonation,
                n if n.starts_with("security.elevated_role") => Kind::Elevation,
                _ => Kind::Other,
            };
            let (ip, tgt) = match kind {
                Kind::Impersonation => (None, target(Some("sys_user".into()), t("parm2"), None)),
                Kind::Elevation => (None, target(Some("sys_user_role".into()), t("parm2"), None)),
                _ => (ip_like(t("parm2")), None),
            };
            (
                kind,
                t("parm1").or_else(|| t("sys_created_by")),
                ip,
                tgt,
                None,
                Some(name),
            )
        }
        "sys_audit" => {
            let tablename = t("tablename");
            let field = t("fieldname");
            let (old, new) = (t("oldvalue"), t("newvalue"));
            let kind = match (tablename.as_deref(), field.as_deref()) {
                (Some("sys_user"), Some("user_name")) if old.is_none() => Kind::UserCreated,
                (Some("sys_user_has_role"), Some("role")) if old.is_none() => Kind::RoleGranted,
                (Some("sys_user_has_role"), Some("role")) if new.is_none() => Kind::RoleRevoked,
                _ if t("record_checkpoint").as_deref() == Some("0") || old.is_none() => {
                    Kind::RecordCreated
                }
                _ => Kind::RecordUpdated,
            };
            (
                kind,
                t("user").or_else(|| t("sys_created_by")),
                None,
                target(tablename, t("documentkey"), field),
                old,
                new,
            )
        }
        "sys_audit_delete" => {
            let tablename = t("tablename");
            let kind = match tablename.as_deref() {
                Some("sys_user") => Kind::UserDeleted,
                Some("sys_user_has_role") => Kind::RoleRevoked,
                _ => Kind::RecordDeleted,
            };
            (
                kind,
                t("sys_created_by"),
                None,
                target(tablename, t("documentkey"), None),
                t("display_value"),
                None,
            )
        }
        "syslog_transaction" => (
            Kind::Transaction,
            t("sys_created_by"),
            ip_like(t("remote_ip")),
            None,
            None,
            t("url"),
        ),
        "sys_user" => (
            Kind::UserCreated,
            t("sys_created_by"),
            None,
            target(Some("sys_user".into()), Some(sys_id.to_string()), None),
            None,
            t("user_name"),
        ),
        "sys_user_has_role" => (
            Kind::RoleGranted,
            t("granted_by").or_else(|| t("sys_created_by")),
            None,
            target(Some("sys_user".into()), t("user"), Some("roles".into())),
            None,
            t("role.name").or_else(|| t("role")),
        ),
        _ => (Kind::Other, t("sys_created_by"), None, None, None, None),
    };
    let id = format!("{table}:{sys_id}");
    drop(fields);
    Some(Event {
        id,
        connection_id: connection_id.to_string(),
        occurred_at: rfc3339(occurred),
        kind,
        actor,
        source_ip,
        target: tgt,
        old_value,
        new_value,
        source_table: table.to_string(),
        raw: RawRecord(raw),
        truncated_fields: Vec::new(),
    })
}

/// OCSF class of an event: Authentication 3002, Account Change 3001, API
/// Activity 6003, Entity Management 3004.
pub fn ocsf(e: &Event) -> Value {
    let (class_uid, class_name, category_uid, activity_id) = match e.kind {
        Kind::Login => (3002, "Authentication", 3, 1),
        Kind::LoginFailed => (3002, "Authentication", 3, 1),
        Kind::Logout => (3002, "Authentication", 3, 2),
        Kind::Impersonation | Kind::Elevation => (3002, "Authentication", 3, 99),
        Kind::UserCreated => (3001, "Account Change", 3, 1),
        Kind::UserDeleted => (3001, "Account Change", 3, 6),
        Kind::RoleGranted => (3001, "Account Change", 3, 7),
        Kind::RoleRevoked => (3001, "Account Change", 3, 8),
        Kind::Transaction => (6003, "API Activity", 6, 99),
        Kind::RecordCreated => (3004, "Entity Management", 3, 1),
        Kind::RecordUpdated => (3004, "Entity Management", 3, 3),
        Kind::RecordDeleted => (3004, "Entity Management", 3, 4),
        Kind::Other => (3004, "Entity Management", 3, 99),
    };
    let time_ms = crate::clock::parse_rfc3339(&e.occurred_at).unwrap_or(0) * 1000;
    let status_id = if e.kind == Kind::LoginFailed { 2 } else { 1 };
    let mut out = serde_json::json!({
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": 1,
        "status_id": status_id,
        "time": time_ms,
        "metadata": {
            "uid": e.id,
            "product": { "name": "ServiceNow", "vendor_name": "ServiceNow" },
            "version": "1.1.0",
            "original_time": e.occurred_at,
        },
        "actor": { "user": { "name": e.actor } },
        "src_endpoint": { "ip": e.source_ip },
        "unmapped": { "kind": e.kind.as_str(), "source_table": e.source_table, "target": e.target, "old_value": e.old_value, "new_value": e.new_value },
        "raw_data": e.raw.as_str(),
    });
    if !e.truncated_fields.is_empty() {
        out["unmapped"]["truncated_fields"] = serde_json::json!(e.truncated_fields);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    #[test]
    fn sysevent_kinds_actor_and_ip() {
        let e = normalize("c1", "sysevent", &raw(serde_json::json!({"sys_id":"a1","name":"login.failed","parm1":"abel.tuter","parm2":"10.1.2.3","sys_created_on":"2026-11-20 10:00:00"}))).unwrap();
        assert_eq!(e.kind, Kind::LoginFailed);
        assert_eq!(e.id, "sysevent:a1");
        assert_eq!(e.sys_id(), "a1");
        assert_eq!(e.occurred_at, "2026-11-20T10:00:00Z");
        assert_eq!(e.actor.as_deref(), Some("abel.tuter"));
        assert_eq!(e.source_ip.as_deref(), Some("10.1.2.3"));
        let imp = normalize("c1", "sysevent", &raw(serde_json::json!({"sys_id":"a2","name":"impersonation.start","parm1":"admin","parm2":"beth.anaya","sys_created_on":"2026-11-20 10:00:00"}))).unwrap();
        assert_eq!(imp.kind, Kind::Impersonation);
        assert_eq!(imp.source_ip, None);
        assert_eq!(imp.target.unwrap().record.as_deref(), Some("beth.anaya"));
        let other = normalize("c1", "sysevent", &raw(serde_json::json!({"sys_id":"a3","name":"glide.heartbeat","sys_created_on":"2026-11-20 10:00:00"}))).unwrap();
        assert_eq!(other.kind, Kind::Other);
    }

    #[test]
    fn audit_rows_become_changes_grants_and_creations() {
        let n = |v: Value| normalize("c", "sys_audit", &raw(v)).unwrap().kind;
        assert_eq!(
            n(
                serde_json::json!({"sys_id":"1","tablename":"sys_user","fieldname":"user_name","oldvalue":"","newvalue":"x","sys_created_on":"2026-01-01 00:00:00"})
            ),
            Kind::UserCreated
        );
        assert_eq!(
            n(
                serde_json::json!({"sys_id":"2","tablename":"sys_user_has_role","fieldname":"role","oldvalue":"","newvalue":"admin","sys_created_on":"2026-01-01 00:00:00"})
            ),
            Kind::RoleGranted
        );
        assert_eq!(
            n(
                serde_json::json!({"sys_id":"3","tablename":"sys_user_has_role","fieldname":"role","oldvalue":"admin","newvalue":"","sys_created_on":"2026-01-01 00:00:00"})
            ),
            Kind::RoleRevoked
        );
        assert_eq!(
            n(
                serde_json::json!({"sys_id":"4","tablename":"incident","fieldname":"state","oldvalue":"1","newvalue":"2","record_checkpoint":"5","sys_created_on":"2026-01-01 00:00:00"})
            ),
            Kind::RecordUpdated
        );
        assert_eq!(
            n(
                serde_json::json!({"sys_id":"5","tablename":"incident","fieldname":"state","oldvalue":"","newvalue":"1","record_checkpoint":"0","sys_created_on":"2026-01-01 00:00:00"})
            ),
            Kind::RecordCreated
        );
        let d = |tn: &str| {
            normalize("c", "sys_audit_delete", &raw(serde_json::json!({"sys_id":"6","tablename":tn,"documentkey":"d","sys_created_on":"2026-01-01 00:00:00"}))).unwrap().kind
        };
        assert_eq!(d("sys_user"), Kind::UserDeleted);
        assert_eq!(d("sys_user_has_role"), Kind::RoleRevoked);
        assert_eq!(d("incident"), Kind::RecordDeleted);
    }

    #[test]
    fn servicenow_times_read_as_rfc3339_agree_with_the_described_format() {
        for unix in (0..2_000_000_000i64).step_by(86_399 * 37 + 11) {
            let text = servicenow_time(unix);
            assert_eq!(parse_servicenow_time(&text), Some(unix), "{text}");
            assert_eq!(parse_described_time(&text), Some(unix), "{text}");
        }
        for odd in [
            " 2026-11-19 17:54:07 ",
            "2026-02-30 00:00:00",
            "2026-11-19 24:00:00",
            "2026-11-19 23:59:60",
            "2026-11-19T17:54:07",
            "2026-11-19 17:54:07Z",
            "2026-11-19 17:54",
            "2026-1-19 17:54:07",
            "x026-11-19 17:54:07",
            "2026-11-19 17:54:0\u{e9}",
            "",
        ] {
            assert_eq!(
                parse_servicenow_time(odd),
                parse_described_time(odd.trim()),
                "{odd:?}"
            );
        }
        assert_eq!(
            parse_servicenow_time(" 2026-11-19 17:54:07 "),
            Some(1_795_110_847)
        );
    }

    #[test]
    fn fields_read_from_the_text_as_from_a_map_and_the_record_is_kept_as_sent() {
        let text = r#"{"s":"a\"b","plain":"p1","empty":"","r":{"link":"https://x","value":"v1"},"r0":{"value":""},"n":12.5,"b":true,"z":null,"l":[1],"o":{"x":1}}"#;
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        let fields = Fields::read(text).unwrap();
        assert!(matches!(fields, Fields::Borrowed(_)));
        for f in [
            "s", "plain", "empty", "r", "r0", "n", "b", "z", "l", "o", "missing",
        ] {
            assert_eq!(fields.text(f), super::text(&map, f), "{f}");
            assert_eq!(
                fields.text_lent(f).map(Cow::into_owned),
                super::text(&map, f),
                "{f}"
            );
        }
        assert!(matches!(
            fields.text_lent("plain"),
            Some(Cow::Borrowed("p1"))
        ));
        assert_eq!(fields.text("s").as_deref(), Some("a\"b"));
        assert_eq!(fields.string("empty").as_deref(), Some(""));
        assert_eq!(fields.string("n"), None);
        // A field name with an escape cannot be lent: the record is read whole.
        let escaped = r#"{"sys\u005fid":"x1","sys_created_on":"2026-01-01 00:00:00"}"#;
        let owned = Fields::read(escaped).unwrap();
        assert!(matches!(owned, Fields::Owned(_)));
        assert_eq!(owned.text("sys_id").as_deref(), Some("x1"));
        assert!(Fields::read("[1]").is_none());

        let e = normalize(
            "c",
            "sysevent",
            &RawValue::from_string(escaped.into()).unwrap(),
        )
        .unwrap();
        assert_eq!(e.raw.as_str(), escaped, "kept as sent");
        let out = serde_json::to_string(&e).unwrap();
        assert!(out.contains(escaped));
        let back: Event = serde_json::from_str(&out).unwrap();
        assert_eq!(back.raw.field("sys_id").as_deref(), Some("x1"));
        // Through a deserializer other than serde_json's text reader.
        let through_value: Event =
            serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(through_value.raw.field("sys_id").as_deref(), Some("x1"));
        assert!(RawRecord::parse("[]").is_none());
    }

    #[test]
    fn records_without_id_or_raw_time_are_refused_and_display_times_are_not_parsed() {
        assert!(normalize(
            "c",
            "sysevent",
            &raw(serde_json::json!({"name":"login","sys_created_on":"2026-01-01 00:00:00"}))
        )
        .is_none());
        assert!(normalize(
            "c",
            "sysevent",
            &raw(serde_json::json!({"sys_id":"x","sys_created_on":"11/14/2023 02:13:20 PM"}))
        )
        .is_none());
    }

    #[test]
    fn ocsf_classes() {
        let mk = |table: &str, v: Value| ocsf(&normalize("c", table, &raw(v)).unwrap());
        assert_eq!(
            mk(
                "sysevent",
                serde_json::json!({"sys_id":"1","name":"login","sys_created_on":"2026-01-01 00:00:00"})
            )["class_uid"],
            3002
        );
        assert_eq!(
            mk(
                "sys_user",
                serde_json::json!({"sys_id":"1","user_name":"u","sys_created_on":"2026-01-01 00:00:00"})
            )["class_uid"],
            3001
        );
        assert_eq!(
            mk(
                "syslog_transaction",
                serde_json::json!({"sys_id":"1","url":"/x","sys_created_on":"2026-01-01 00:00:00"})
            )["class_uid"],
            6003
        );
        let ent = mk(
            "sys_audit",
            serde_json::json!({"sys_id":"1","tablename":"incident","fieldname":"state","oldvalue":"1","newvalue":"2","sys_created_on":"2026-01-01 00:00:00"}),
        );
        assert_eq!(ent["class_uid"], 3004);
        assert_eq!(ent["time"], 1_767_225_600_000i64);
    }
}
