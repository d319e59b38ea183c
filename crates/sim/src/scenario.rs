//! Attack scenarios planted on request (`POST /__sim/scenario`): the records
//! a real instance would hold after each, written as its own code paths
//! write them, so the connector's detections meet them in the pulled data.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::{self, Generator, Record, Table, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// 12 failed sign-ins of one account within 4 minutes, then a success.
    FailedLoginBurst,
    /// One failed sign-in each for 12 accounts from one IP within 3 minutes.
    PasswordSpray,
    /// A sign-in of an inactive account.
    InactiveLogin,
    /// `impersonation.start` of a user holding admin.
    AdminImpersonation,
    /// `security.elevated_role.enabled` to security_admin.
    Elevation,
    /// 120 deletions by one user within 5 minutes.
    MassDelete,
    /// 25 CSV/Excel exports by one user within 5 minutes.
    BulkExport,
    /// `glide.ui.session_timeout` changed to 480 (failing its check).
    PostureDrift,
}

#[derive(Debug, Serialize)]
pub struct Planted {
    pub scenario: Scenario,
    pub actor: String,
    pub ip: Option<String>,
    pub target: Option<String>,
    pub records: usize,
}

fn sysevent(g: &mut Generator, name: &str, parm1: &str, parm2: &str, at: i64) -> Record {
    let id = g.sys_id();
    let t = Value::DateTime(at);
    Record {
        sys_id: id.clone(),
        created: at,
        fields: vec![
            ("sys_id", Value::Str(id)),
            ("name", Value::Str(name.into())),
            ("parm1", Value::Str(parm1.into())),
            ("parm2", Value::Str(parm2.into())),
            ("instance", Value::Empty),
            ("queue", Value::Empty),
            ("state", Value::Str("processed".into())),
            ("table", Value::Empty),
            ("uri", Value::Empty),
            ("processed", t.clone()),
            ("sys_created_on", t.clone()),
            ("sys_created_by", Value::Str(parm1.into())),
            ("sys_updated_on", t),
        ],
    }
}

fn transaction(g: &mut Generator, user: &str, url: &str, ip: &str, at: i64) -> Record {
    let id = g.sys_id();
    Record {
        sys_id: id.clone(),
        created: at,
        fields: vec![
            ("sys_id", Value::Str(id)),
            ("url", Value::Str(url.into())),
            ("remote_ip", Value::Str(ip.into())),
            ("type", Value::Str("form".into())),
            ("response_time", Value::Int(420)),
            ("response_status", Value::Int(200)),
            ("session", Value::Str(format!("{at:032X}"))),
            ("system_id", Value::Str("app128.sim".into())),
            ("sys_created_on", Value::DateTime(at)),
            ("sys_created_by", Value::Str(user.into())),
        ],
    }
}

/// Users with a field matching, by user name.
fn users_where(
    tables: &HashMap<&'static str, Table>,
    pred: impl Fn(&Record) -> bool,
) -> Vec<(String, String)> {
    tables
        .get("sys_user")
        .map(|t| {
            t.records
                .iter()
                .filter(|r| pred(r))
                .filter_map(|r| match r.get("user_name") {
                    Some(Value::Str(u)) if u.contains('.') && !u.starts_with("svc.") => {
                        Some((u.clone(), r.sys_id.clone()))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn holds(tables: &HashMap<&'static str, Table>, user_sys_id: &str, role: &str) -> bool {
    tables.get("sys_user_has_role").is_some_and(|t| {
        t.records.iter().any(|r| {
            matches!(r.get("user"), Some(Value::Ref { sys_id, .. }) if sys_id == user_sys_id)
                && matches!(r.get("role"), Some(Value::Ref { display, .. }) if display == role)
        })
    })
}

/// Writes a scenario's records at `at` (unix seconds).
pub fn plant(
    tables: &mut HashMap<&'static str, Table>,
    g: &mut Generator,
    scenario: Scenario,
    at: i64,
) -> Result<Planted, String> {
    let active = |r: &Record| matches!(r.get("active"), Some(Value::Bool(true)));
    let people = users_where(tables, active);
    let first = people
        .first()
        .cloned()
        .ok_or("the instance has no people")?;
    let mut out: Vec<(&'static str, Record)> = Vec::new();
    let mut planted = Planted {
        scenario,
        actor: first.0.clone(),
        ip: None,
        target: None,
        records: 0,
    };
    match scenario {
        Scenario::FailedLoginBurst => {
            let ip = "203.0.113.66";
            for i in 0..12 {
                out.push((
                    "sysevent",
                    sysevent(g, "login.failed", &first.0, ip, at + i * 20),
                ));
            }
            out.push(("sysevent", sysevent(g, "login", &first.0, ip, at + 250)));
            planted.ip = Some(ip.into());
        }
        Scenario::PasswordSpray => {
            let ip = "198.51.100.77";
            for (i, (user, _)) in people.iter().take(12).enumerate() {
                out.push((
                    "sysevent",
                    sysevent(g, "login.failed", user, ip, at + i as i64 * 15),
                ));
            }
            planted.actor = String::new();
            planted.ip = Some(ip.into());
        }
        Scenario::InactiveLogin => {
            let gone = users_where(tables, |r| {
                matches!(r.get("active"), Some(Value::Bool(false)))
            });
            let (user, _) = gone
                .first()
                .cloned()
                .ok_or("the instance has no inactive account")?;
            out.push(("sysevent", sysevent(g, "login", &user, "192.0.2.44", at)));
            planted.actor = user;
            planted.ip = Some("192.0.2.44".into());
        }
        Scenario::AdminImpersonation => {
            let admin = people
                .iter()
                .find(|(_, id)| holds(tables, id, "admin"))
                .cloned()
                .ok_or("no person holds admin")?;
            let actor = people
                .iter()
                .find(|(_, id)| !holds(tables, id, "admin"))
                .cloned()
                .ok_or("everyone holds admin")?;
            out.push((
                "sysevent",
                sysevent(g, "impersonation.start", &actor.0, &admin.0, at),
            ));
            planted.actor = actor.0;
            planted.target = Some(admin.0);
        }
        Scenario::Elevation => {
            out.push((
                "sysevent",
                sysevent(
                    g,
                    "security.elevated_role.enabled",
                    &first.0,
                    "security_admin",
                    at,
                ),
            ));
            planted.target = Some("security_admin".into());
        }
        Scenario::MassDelete => {
            for i in 0..120 {
                let doc = g.sys_id();
                let mut r =
                    data::deletion_record(g, "incident", &doc, &format!("INC00{i:05}"), at + i * 2);
                for (name, v) in r.fields.iter_mut() {
                    if *name == "sys_created_by" {
                        *v = Value::Str(first.0.clone());
                    }
                }
                out.push(("sys_audit_delete", r));
            }
        }
        Scenario::BulkExport => {
            let ip = "203.0.113.90";
            for i in 0..25 {
                let processor = if i % 2 == 0 { "CSV" } else { "EXCEL" };
                let url = format!("/incident_list.do?{processor}&sysparm_query=active%3Dtrue");
                out.push((
                    "syslog_transaction",
                    transaction(g, &first.0, &url, ip, at + i * 10),
                ));
            }
            planted.ip = Some(ip.into());
        }
        Scenario::PostureDrift => {
            let name = "glide.ui.session_timeout";
            let old = data::property(tables, name).unwrap_or_default();
            data::set_property(tables, g, name, "480", at);
            let sys_id = tables
                .get("sys_properties")
                .and_then(|t| {
                    t.records
                        .iter()
                        .find(|r| matches!(r.get("name"), Some(Value::Str(n)) if n == name))
                        .map(|r| r.sys_id.clone())
                })
                .ok_or("the property was not written")?;
            let mut r = data::audit_record(g, "sys_properties", &sys_id, "value", &old, "480", at);
            for (field, v) in r.fields.iter_mut() {
                if matches!(*field, "user" | "sys_created_by") {
                    *v = Value::Str(first.0.clone());
                }
                // A change, not a creation: the record had a checkpoint before.
                if *field == "oldvalue" && old.is_empty() {
                    *v = Value::Str("30".into());
                }
            }
            out.push(("sys_audit", r));
            planted.target = Some(name.into());
        }
    }
    planted.records = out.len();
    let mut by_table: HashMap<&'static str, Vec<Record>> = HashMap::new();
    for (t, r) in out {
        by_table.entry(t).or_default().push(r);
    }
    for (t, rows) in by_table {
        tables.entry(t).or_default().insert_sorted(rows);
    }
    Ok(planted)
}
