//! The instance's hardening settings as three profiles: `default` (a new
//! instance: its session timeout record, the other checked settings absent,
//! so their platform defaults apply), `hardened` (every setting as the
//! hardening guidance recommends) and `weak` (a neglected instance). The
//! values are written here from ServiceNow's hardening pages, independently
//! of the connector's own table, so a misreading in one shows in the other.

use std::collections::HashMap;

use crate::data::{self, Generator, Record, Table, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    Default,
    Hardened,
    Weak,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "default" => Some(Profile::Default),
            "hardened" => Some(Profile::Hardened),
            "weak" => Some(Profile::Weak),
            _ => None,
        }
    }
}

/// (property, hardened value, weak value). A weak value of `None` leaves
/// the property absent on the weak instance (its default applies).
const PROPERTIES: &[(&str, &str, Option<&str>)] = &[
    ("glide.ui.rotate_sessions", "true", Some("false")),
    ("glide.basicauth.required.api", "true", Some("true")),
    (
        "glide.authenticate.basic_auth.restriction.active",
        "true",
        None,
    ),
    ("glide.basicauth.required.soap", "true", Some("false")),
    ("glide.soap.require_ws_security", "true", None),
    ("glide.security.strict.updates", "true", Some("true")),
    ("glide.script.secure.ajaxgliderecord", "true", Some("false")),
    ("glide.cookies.http_only", "true", Some("true")),
    (
        "glide.authenticate.only.allow.active.user.login",
        "true",
        Some("true"),
    ),
    ("glide.ui.session_timeout", "30", Some("480")),
    ("glide.login.no_blank_password", "true", Some("true")),
    ("glide.basicauth.required.csv", "true", Some("false")),
    ("glide.basicauth.required.jsonv2", "true", Some("true")),
    ("glide.basicauth.required.unl", "true", Some("true")),
    ("glide.basicauth.required.xml", "true", Some("true")),
    ("glide.basicauth.required.rss", "true", Some("true")),
    (
        "glide.basicauth.required.xmloutputprocessor",
        "true",
        Some("true"),
    ),
    ("glide.user.max_unlock_attempts", "5", Some("20")),
    (
        "glide.basicauth.required.scriptedprocessor",
        "true",
        Some("true"),
    ),
    (
        "glide.security.manager",
        "com.glide.sys.security.ContextualSecurityManager",
        Some("com.glide.sys.security.ContextualSecurityManager"),
    ),
    ("glide.ui.secure_cookies", "true", Some("true")),
    ("glide.user.unlock_timeout_in_mins", "15", Some("1")),
    ("glide.sys.permissive.impersonate", "false", Some("true")),
    ("glide.security.strict_elevate_privilege", "true", None),
    ("glide.security.csrf_previous.allow", "false", Some("false")),
    ("glide.sys.log_impersonation", "true", Some("false")),
    ("glide.installation.production", "true", Some("true")),
    ("glide.authenticate.multifactor", "true", None),
    ("glide.audit.track_impersonation", "true", None),
    ("identity.impersonation.history.enabled", "true", None),
    ("glide.integrations.active.session.life_span", "720", None),
    (
        "glide.ui.user_cookie.max_life_span_in_days",
        "30",
        Some("365"),
    ),
    ("com.glide.security.protected_table.enabled", "true", None),
    ("glide.oauth.inbound.ropc.grant_type.disabled", "true", None),
    ("glide.sm.default_mode", "deny", Some("allow")),
];

/// (plugin id, name, active by default, hardened, weak).
const PLUGINS: &[(&str, &str, bool, bool, bool)] = &[
    (
        "com.glide.high_security",
        "High Security Settings",
        true,
        true,
        false,
    ),
    (
        "com.snc.ipauthenticator",
        "IP Address Access Control",
        false,
        true,
        true,
    ),
    (
        "com.glide.explicit_roles",
        "Explicit Roles",
        false,
        true,
        false,
    ),
    ("com.glide.rest", "REST API Provider", true, true, true),
];

fn record(g: &mut Generator, created: i64, fields: Vec<(&'static str, Value)>) -> Record {
    let id = g.sys_id();
    let mut all = vec![("sys_id", Value::Str(id.clone()))];
    all.extend(fields);
    all.push(("sys_created_on", Value::DateTime(created)));
    all.push(("sys_updated_on", Value::DateTime(created)));
    Record {
        sys_id: id,
        created,
        fields: all,
    }
}

/// Writes the profile's settings, plugins, lockout script action and IP
/// access rules into the instance's tables.
pub fn apply(
    tables: &mut HashMap<&'static str, Table>,
    g: &mut Generator,
    profile: Profile,
    created: i64,
) {
    for (name, hardened, weak) in PROPERTIES {
        let value = match profile {
            // A new instance ships a record of its session timeout.
            Profile::Default if *name == "glide.ui.session_timeout" => Some("30"),
            Profile::Default => None,
            Profile::Hardened => Some(*hardened),
            Profile::Weak => *weak,
        };
        if let Some(v) = value {
            data::set_property(tables, g, name, v, created);
        }
    }
    let plugins = PLUGINS
        .iter()
        .map(|(id, name, default, hardened, weak)| {
            let active = match profile {
                Profile::Default => *default,
                Profile::Hardened => *hardened,
                Profile::Weak => *weak,
            };
            record(
                g,
                created,
                vec![
                    ("id", Value::Str((*id).into())),
                    ("name", Value::Str((*name).into())),
                    (
                        "active",
                        Value::Str(if active { "active" } else { "inactive" }.into()),
                    ),
                ],
            )
        })
        .collect();
    insert(tables, "v_plugin", plugins);
    let lockout = record(
        g,
        created,
        vec![
            ("name", Value::Str("SNC User Lockout Check".into())),
            ("event_name", Value::Str("login.failed".into())),
            ("active", Value::Bool(profile != Profile::Weak)),
        ],
    );
    insert(tables, "sysevent_script_action", vec![lockout]);
    let rules = match profile {
        Profile::Hardened => vec![record(
            g,
            created,
            vec![
                ("type", Value::Str("allow".into())),
                ("range_start", Value::Str("203.0.113.0".into())),
                ("range_end", Value::Str("203.0.113.255".into())),
                ("active", Value::Bool(true)),
            ],
        )],
        // The plugin is on but its only rule is switched off.
        Profile::Weak => vec![record(
            g,
            created,
            vec![
                ("type", Value::Str("allow".into())),
                ("range_start", Value::Str("0.0.0.0".into())),
                ("range_end", Value::Str("255.255.255.255".into())),
                ("active", Value::Bool(false)),
            ],
        )],
        Profile::Default => Vec::new(),
    };
    insert(tables, "ip_access", rules);
}

fn insert(tables: &mut HashMap<&'static str, Table>, name: &'static str, rows: Vec<Record>) {
    tables.entry(name).or_default().insert_sorted(rows);
}
