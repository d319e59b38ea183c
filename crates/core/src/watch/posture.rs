//! The instance's security posture: what ServiceNow's hardening guidance
//! recommends, read in one Batch API call and compared setting by setting.
//! Reading is data (a request, an answer); judging is a pure function of
//! what was read, so the same readings always give the same report.
//!
//! An absent property means the platform default applies, and each check
//! knows that default. A check is `unknown` only when its read failed, and
//! says why; it is never guessed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::connect::warning::{Hardening, Warning, BASIC_AUTH_RESTRICTION, PASSWORD_GRANT_OFF};
use crate::http::HttpResponse;
use crate::problem::{Problem, ProblemCode};
use crate::servicenow::batch;
use crate::servicenow::table;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    /// ServiceNow rates each setting with a CVSS-like score.
    pub const fn from_score(score: f32) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// Most severe first.
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Unknown,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Unknown => "unknown",
        }
    }
}

/// What a setting should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    True,
    False,
    AtMost(i64),
    AtLeast(i64),
    /// Inclusive bounds.
    Between(i64, i64),
    Is(&'static str),
    /// A plugin, or the lockout script action, is active.
    Active,
}

impl Expected {
    pub fn describe(self) -> String {
        match self {
            Expected::True => "true".into(),
            Expected::False => "false".into(),
            Expected::AtMost(n) => format!("at most {n}"),
            Expected::AtLeast(n) => format!("at least {n}"),
            Expected::Between(lo, hi) => format!("{lo} to {hi}"),
            Expected::Is(v) => v.into(),
            Expected::Active => "active".into(),
        }
    }

    pub fn accepts(self, value: &str) -> bool {
        let v = value.trim();
        match self {
            Expected::True => v.eq_ignore_ascii_case("true"),
            Expected::False => v.eq_ignore_ascii_case("false"),
            Expected::AtMost(n) => v.parse::<i64>().is_ok_and(|x| x <= n),
            Expected::AtLeast(n) => v.parse::<i64>().is_ok_and(|x| x >= n),
            Expected::Between(lo, hi) => v.parse::<i64>().is_ok_and(|x| (lo..=hi).contains(&x)),
            Expected::Is(want) => v == want,
            Expected::Active => v.eq_ignore_ascii_case("active") || v.eq_ignore_ascii_case("true"),
        }
    }
}

/// Where a check's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// A `sys_properties` record by name.
    Property(&'static str),
    /// A plugin by id (`v_plugin.id`).
    Plugin(&'static str),
    /// The account-lockout script action ("SNC User Lockout Check").
    LockoutAction,
    /// The IP address access control plugin with at least one active rule.
    IpAccessRules,
}

/// One hardening check: its own words, ServiceNow's score, and the value
/// that applies when the instance holds no record of the setting.
#[derive(Clone, Copy, Debug)]
pub struct CheckDef {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub reads: Reads,
    pub expected: Expected,
    /// The platform default: what an absent property means.
    pub default: &'static str,
    pub advice: &'static str,
}

const fn property(
    name: &'static str,
    score: f32,
    expected: Expected,
    default: &'static str,
    title: &'static str,
    advice: &'static str,
) -> CheckDef {
    CheckDef {
        id: name,
        title,
        severity: Severity::from_score(score),
        reads: Reads::Property(name),
        expected,
        default,
        advice,
    }
}

/// "SNC User Lockout Check", or its "… with Auto Unlock" variant.
const LOCKOUT_ACTION: &str = "SNC User Lockout Check";
const IP_ACCESS_PLUGIN: &str = "com.snc.ipauthenticator";

use Expected::{AtLeast, AtMost, Between, False, Is, True};

/// The checks, most severe first. Titles and advice are ours; scores and
/// recommended values follow ServiceNow's instance security hardening pages,
/// and `default` is what those pages give as the value in force when the
/// record is absent (their "fallback"), which is often not the value a new
/// instance ships: a deleted `glide.basicauth.required.api` means false.
/// Where a page states no fallback, the shipped default is used.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "com.glide.high_security",
        title: "High Security Settings plugin is active",
        severity: Severity::Critical,
        reads: Reads::Plugin("com.glide.high_security"),
        expected: Expected::Active,
        default: "inactive",
        advice: "Activate the High Security Settings plugin (System Definition > Plugins): it turns on the default-deny security manager and the hardened defaults the other checks rely on.",
    },
    property("glide.ui.rotate_sessions", 8.8, True, "true", "Session IDs rotate at sign-in", "Set glide.ui.rotate_sessions to true so a session ID captured before sign-in cannot be reused after it (session fixation)."),
    property("glide.basicauth.required.api", 8.6, True, "false", "API calls must authenticate", "Set glide.basicauth.required.api to true so the REST and JSON APIs refuse anonymous requests."),
    property(BASIC_AUTH_RESTRICTION, 8.1, True, "false", "Basic auth is restricted to web-service accounts", "Set glide.authenticate.basic_auth.restriction.active to true and mark integration accounts \"Web service access only\", so a stolen interactive password cannot call the APIs with basic auth."),
    property("glide.basicauth.required.soap", 8.1, True, "true", "SOAP requests must authenticate", "Set glide.basicauth.required.soap to true so SOAP web services refuse anonymous requests."),
    property("glide.soap.require_ws_security", 8.1, True, "false", "SOAP requests need WS-Security", "Set glide.soap.require_ws_security to true if SOAP is used, so SOAP requests carry signed WS-Security credentials."),
    property("glide.security.strict.updates", 8.1, True, "false", "Updates are checked against write ACLs", "Set glide.security.strict.updates to true so form and list updates are checked against field-level write ACLs."),
    property("glide.script.secure.ajaxgliderecord", 8.1, True, "true", "Client-side GlideRecord honours ACLs", "Set glide.script.secure.ajaxgliderecord to true so GlideAjax and client-side GlideRecord queries are filtered by ACLs."),
    property("glide.cookies.http_only", 8.0, True, "true", "Cookies are HttpOnly", "Set glide.cookies.http_only to true so scripts in the page cannot read session cookies."),
    property("glide.authenticate.only.allow.active.user.login", 7.5, True, "true", "Only active users can sign in", "Set glide.authenticate.only.allow.active.user.login to true so deactivated accounts cannot sign in."),
    property("glide.ui.session_timeout", 7.5, AtMost(30), "30", "Idle sessions end within 30 minutes", "Set glide.ui.session_timeout to 30 minutes or less so an unattended session does not stay open."),
    property("glide.basicauth.required.csv", 7.5, True, "false", "CSV exports must authenticate", "Set glide.basicauth.required.csv to true so the CSV processor refuses anonymous requests."),
    property("glide.basicauth.required.jsonv2", 7.5, True, "false", "JSONv2 exports must authenticate", "Set glide.basicauth.required.jsonv2 to true so the JSONv2 processor refuses anonymous requests."),
    property("glide.basicauth.required.unl", 7.5, True, "false", "UNL exports must authenticate", "Set glide.basicauth.required.unl to true so the UNL processor refuses anonymous requests."),
    property("glide.basicauth.required.xml", 7.5, True, "false", "XML exports must authenticate", "Set glide.basicauth.required.xml to true so the XML processor refuses anonymous requests."),
    property("glide.basicauth.required.rss", 7.5, True, "false", "RSS feeds must authenticate", "Set glide.basicauth.required.rss to true so RSS feeds refuse anonymous requests."),
    property("glide.basicauth.required.xmloutputprocessor", 7.5, True, "false", "XML output processor must authenticate", "Set glide.basicauth.required.xmloutputprocessor to true so the XML output processor refuses anonymous requests."),
    CheckDef {
        id: "sysevent_script_action.snc_user_lockout_check",
        title: "Accounts lock after repeated failed sign-ins",
        severity: Severity::High,
        reads: Reads::LockoutAction,
        expected: Expected::Active,
        default: "active",
        advice: "Activate the \"SNC User Lockout Check\" script action, or its \"with Auto Unlock\" variant (System Policy > Events > Script Actions), so repeated failed sign-ins lock the account.",
    },
    property("glide.user.max_unlock_attempts", 7.3, AtMost(5), "5", "Lockout after at most 5 failed sign-ins", "Set glide.user.max_unlock_attempts to 5 or less so password guessing locks the account early."),
    property("glide.basicauth.required.scriptedprocessor", 7.2, True, "false", "Scripted processors must authenticate", "Set glide.basicauth.required.scriptedprocessor to true so scripted processors refuse anonymous requests."),
    property("glide.security.manager", 7.2, Is("com.glide.sys.security.ContextualSecurityManager"), "com.glide.sys.security.ContextualSecurityManager", "Contextual security manager in use", "Set glide.security.manager to com.glide.sys.security.ContextualSecurityManager so access is decided by ACLs rather than the legacy role checks."),
    property("glide.ui.secure_cookies", 7.1, True, "true", "Cookies are sent over HTTPS only", "Set glide.ui.secure_cookies to true so session cookies never travel over plain HTTP."),
    property("glide.user.unlock_timeout_in_mins", 6.8, AtLeast(15), "15", "Locked accounts stay locked for 15 minutes or more", "Set glide.user.unlock_timeout_in_mins to 15 or more so a locked account does not unlock before an admin has looked."),
    property("glide.sys.permissive.impersonate", 6.7, False, "false", "Impersonation is limited to permitted roles", "Set glide.sys.permissive.impersonate to false so only users allowed to impersonate a given role can do so."),
    property("glide.security.strict_elevate_privilege", 6.7, True, "true", "Elevated roles require explicit elevation", "Set glide.security.strict_elevate_privilege to true so elevated privileges such as security_admin apply only after the user elevates."),
    property("glide.security.csrf_previous.allow", 6.5, False, "true", "Old CSRF tokens are refused", "Set glide.security.csrf_previous.allow to false so a previous session's CSRF token is not accepted."),
    property("glide.sys.log_impersonation", 6.4, True, "true", "Impersonation is logged", "Set glide.sys.log_impersonation to true: without it, impersonation leaves no event and the admin_impersonated detection is blind."),
    property("glide.installation.production", 6.3, True, "true", "Instance is marked as production", "Set glide.installation.production to true on production instances so production-only protections apply."),
    property("glide.authenticate.multifactor", 5.7, True, "false", "Multi-factor authentication is enabled", "Set glide.authenticate.multifactor to true and enrol administrators in multi-factor authentication."),
    CheckDef {
        id: IP_ACCESS_PLUGIN,
        title: "Sign-in is limited to known IP ranges",
        severity: Severity::Medium,
        reads: Reads::IpAccessRules,
        expected: Expected::Active,
        default: "inactive",
        advice: "Activate IP Address Access Control (com.snc.ipauthenticator) and add at least one active rule (System Security > IP Address Access Control) limiting who can reach the instance.",
    },
    property("glide.audit.track_impersonation", 4.9, True, "false", "Audit records name the impersonator", "Set glide.audit.track_impersonation to true so audit records made while impersonating name the real user."),
    property("identity.impersonation.history.enabled", 4.9, True, "true", "Impersonation history is kept", "Set identity.impersonation.history.enabled to true so each impersonation is kept in the impersonation history."),
    property("glide.integrations.active.session.life_span", 4.2, Between(1, 720), "0", "Integration sessions end within 12 hours", "Set glide.integrations.active.session.life_span to between 1 and 720 minutes: 0, the default, lets integration sessions live forever."),
    property("glide.ui.user_cookie.max_life_span_in_days", 4.2, AtMost(30), "30", "Remember-me cookies expire within 30 days", "Set glide.ui.user_cookie.max_life_span_in_days to 30 or less so a remembered sign-in does not outlive a month."),
    property("com.glide.security.protected_table.enabled", 4.0, True, "false", "Log tables are tamper-protected", "Set com.glide.security.protected_table.enabled to true so system logs and audit tables cannot be altered or deleted by scripts."),
    property(PASSWORD_GRANT_OFF, 3.3, True, "false", "OAuth password grant is off", "Set glide.oauth.inbound.ropc.grant_type.disabled to true so no client can exchange a user's password for tokens; integrations use client credentials or authorization code instead."),
    property("glide.sm.default_mode", 6.3, Is("deny"), "allow", "Security manager denies by default", "Set glide.sm.default_mode to deny so a table with no matching ACL is closed rather than open."),
];

/// What one check found, as `GET …/posture` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub status: CheckStatus,
    pub expected: String,
    /// The value in force (the default when absent); null when unknown.
    pub actual: Option<String>,
    /// The setting is absent and its platform default applies.
    #[serde(default)]
    pub defaulted: bool,
    pub advice: String,
    /// Why an `unknown` check could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostureReport {
    pub checked_at: String,
    pub score: u8,
    pub checks: Vec<CheckResult>,
    /// The hardening warnings of the connection's method, recomputed.
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

/// One read's outcome: the values it found, or why it failed.
type Read<T> = Result<T, String>;

/// Everything one posture read learnt.
#[derive(Clone, Debug)]
pub struct Readings {
    pub properties: Read<HashMap<String, String>>,
    /// Plugin id → active.
    pub plugins: Read<HashMap<String, bool>>,
    /// The lockout script action exists and is active.
    pub lockout_active: Read<Option<bool>>,
    /// At least one active IP access rule.
    pub ip_rule_active: Read<bool>,
    /// The account's `web_service_access_only`, when readable.
    pub web_service_only: Option<bool>,
    /// The properties' sys_ids → names (sys_audit names a property by sys_id).
    pub property_ids: HashMap<String, String>,
}

/// The property names the checks read.
pub fn property_names() -> Vec<&'static str> {
    CHECKS
        .iter()
        .filter_map(|c| match c.reads {
            Reads::Property(name) => Some(name),
            _ => None,
        })
        .collect()
}

fn plugin_ids() -> Vec<&'static str> {
    let mut ids: Vec<&'static str> = CHECKS
        .iter()
        .filter_map(|c| match c.reads {
            Reads::Plugin(id) => Some(id),
            Reads::IpAccessRules => Some(IP_ACCESS_PLUGIN),
            _ => None,
        })
        .collect();
    ids.dedup();
    ids
}

/// The Batch API items of a posture read: five table reads in one call.
/// `also_properties` joins the property read (connect adds the release's).
pub fn batch_items(also_properties: &[&str]) -> Vec<batch::BatchItem> {
    let mut names = also_properties.to_vec();
    names.extend(property_names());
    let names = names.join(",");
    let plugins = plugin_ids().join(",");
    vec![
        (
            "properties".into(),
            table::table_path(
                "sys_properties",
                &[
                    ("sysparm_query", &format!("nameIN{names}")),
                    ("sysparm_fields", "sys_id,name,value"),
                    ("sysparm_limit", "100"),
                ],
            ),
        ),
        (
            "plugins".into(),
            table::table_path(
                "v_plugin",
                &[
                    ("sysparm_query", &format!("idIN{plugins}")),
                    ("sysparm_fields", "id,active"),
                    ("sysparm_limit", "20"),
                ],
            ),
        ),
        (
            "lockout".into(),
            table::table_path(
                "sysevent_script_action",
                &[
                    ("sysparm_query", &format!("nameSTARTSWITH{LOCKOUT_ACTION}")),
                    ("sysparm_fields", "name,active"),
                    ("sysparm_limit", "5"),
                ],
            ),
        ),
        (
            "ip_access".into(),
            table::table_path(
                "ip_access",
                &[
                    ("sysparm_query", "active=true"),
                    ("sysparm_fields", "sys_id"),
                    ("sysparm_limit", "1"),
                ],
            ),
        ),
        (
            "whoami".into(),
            table::table_path(
                "sys_user",
                &[
                    ("sysparm_query", "sys_id=javascript:gs.getUserID()"),
                    ("sysparm_fields", "user_name,web_service_access_only"),
                    ("sysparm_limit", "1"),
                ],
            ),
        ),
    ]
}

/// The posture's reads: one Batch API call, or five Table API calls on an
/// instance without it.
pub fn reads(route: batch::ReadRoute) -> batch::Reads {
    batch::Reads::new("posture", batch_items(&[]), route)
}

type Row = serde_json::Map<String, serde_json::Value>;

fn rows(r: &HttpResponse) -> Read<Vec<Row>> {
    #[derive(Deserialize)]
    struct Page {
        result: Vec<Row>,
    }
    match r.status {
        200 => serde_json::from_slice::<Page>(&r.body)
            .map(|p| p.result)
            .map_err(|_| "the answer could not be read".to_string()),
        // Table API v1 says 404 when nothing matches.
        404 => Ok(Vec::new()),
        403 => Err("the connector's user may not read it (HTTP 403)".into()),
        s => Err(format!("the instance answered HTTP {s}")),
    }
}

fn text(row: &Row, field: &str) -> Option<String> {
    row.get(field).and_then(|v| v.as_str()).map(str::to_string)
}

/// Reads the posture's answers (`Reads::answers`). A failure of the whole
/// call, or a refused token, rate limit, outage or hibernation page on any
/// read, is a problem; another failed read (403, an unknown table) only
/// makes its checks `unknown`.
pub fn parse(
    answered: Result<Vec<(String, HttpResponse)>, HttpResponse>,
    now: i64,
) -> Result<Readings, Problem> {
    // An outage on any read fails the check (it stays due) rather than
    // keeping a day's report of unknowns.
    let items = batch::served(answered, "the posture check", now, |_| false)?;
    if items.is_empty() {
        return Err(Problem::with_context(
            ProblemCode::NotServicenow,
            "The instance served none of the posture's reads.",
        ));
    }
    Ok(readings(&items))
}

/// The readings of a served batch (its items named as `batch_items` names them).
pub fn readings(items: &[(String, HttpResponse)]) -> Readings {
    let item = |id: &str| -> Read<Vec<Row>> {
        match items.iter().find(|(i, _)| i == id) {
            Some((_, r)) => rows(r),
            None => Err("the instance did not serve this read".into()),
        }
    };
    let property_ids = item("properties")
        .map(|rows| {
            rows.iter()
                .filter_map(|r| Some((text(r, "sys_id")?, text(r, "name")?)))
                .collect()
        })
        .unwrap_or_default();
    let properties = item("properties").map(|rows| {
        rows.iter()
            .filter_map(|r| Some((text(r, "name")?, text(r, "value").unwrap_or_default())))
            .collect()
    });
    let plugins = item("plugins").map(|rows| {
        rows.iter()
            .filter_map(|r| {
                let active = text(r, "active")?;
                Some((text(r, "id")?, Expected::Active.accepts(&active)))
            })
            .collect()
    });
    let lockout_active = item("lockout").map(|rows| {
        (!rows.is_empty()).then(|| {
            rows.iter()
                .any(|r| text(r, "active").is_some_and(|a| a.eq_ignore_ascii_case("true")))
        })
    });
    let ip_rule_active = item("ip_access").map(|rows| !rows.is_empty());
    let web_service_only = item("whoami").ok().and_then(|rows| {
        rows.first()
            .and_then(|r| text(r, "web_service_access_only"))
            .map(|v| v == "true")
    });
    Readings {
        properties,
        plugins,
        lockout_active,
        ip_rule_active,
        web_service_only,
        property_ids,
    }
}

/// The value in force for a check, whether it was defaulted, or why it is unknown.
fn value_of(check: &CheckDef, r: &Readings) -> Read<(String, bool)> {
    let named = |found: Option<String>| match found {
        Some(v) => (v, false),
        None => (check.default.to_string(), true),
    };
    match check.reads {
        Reads::Property(name) => r
            .properties
            .as_ref()
            .map(|p| named(p.get(name).cloned()))
            .map_err(|why| format!("sys_properties: {why}")),
        Reads::Plugin(id) => r
            .plugins
            .as_ref()
            .map(|p| {
                named(
                    p.get(id)
                        .map(|on| if *on { "active" } else { "inactive" }.to_string()),
                )
            })
            .map_err(|why| format!("v_plugin: {why}")),
        Reads::LockoutAction => r
            .lockout_active
            .as_ref()
            .map(|a| named(a.map(|on| if on { "active" } else { "inactive" }.to_string())))
            .map_err(|why| format!("sysevent_script_action: {why}")),
        Reads::IpAccessRules => {
            let plugin = r
                .plugins
                .as_ref()
                .map_err(|why| format!("v_plugin: {why}"))?
                .get(IP_ACCESS_PLUGIN)
                .copied()
                .unwrap_or(false);
            let rule = r
                .ip_rule_active
                .as_ref()
                .map_err(|why| format!("ip_access: {why}"))?;
            let state = match (plugin, *rule) {
                (true, true) => "active",
                (true, false) => "active, no active rule",
                (false, _) => "inactive",
            };
            Ok((state.to_string(), false))
        }
    }
}

/// Judges one check.
pub fn judge(check: &CheckDef, r: &Readings) -> CheckResult {
    let (status, actual, defaulted, why) = match value_of(check, r) {
        Ok((value, defaulted)) => {
            let pass = check.expected.accepts(&value);
            (
                if pass {
                    CheckStatus::Pass
                } else {
                    CheckStatus::Fail
                },
                Some(value),
                defaulted,
                None,
            )
        }
        Err(why) => (CheckStatus::Unknown, None, false, Some(why)),
    };
    CheckResult {
        id: check.id.into(),
        title: check.title.into(),
        severity: check.severity,
        status,
        expected: check.expected.describe(),
        actual,
        defaulted,
        advice: check.advice.into(),
        why,
    }
}

/// The score, 0-100: high and critical checks weigh 75 %, medium 15 %, low
/// 10 % (the weighting of ServiceNow's Instance Security Center). Unknown
/// checks count for neither side; a band with no known check gives its
/// weight to the others.
pub fn score(results: &[CheckResult]) -> u8 {
    let bands: [(f64, &[Severity]); 3] = [
        (0.75, &[Severity::Critical, Severity::High]),
        (0.15, &[Severity::Medium]),
        (0.10, &[Severity::Low]),
    ];
    let mut weighted = 0.0;
    let mut weight = 0.0;
    for (w, severities) in bands {
        let known: Vec<&CheckResult> = results
            .iter()
            .filter(|c| severities.contains(&c.severity) && c.status != CheckStatus::Unknown)
            .collect();
        if known.is_empty() {
            continue;
        }
        let passed = known
            .iter()
            .filter(|c| c.status == CheckStatus::Pass)
            .count();
        weighted += w * passed as f64 / known.len() as f64;
        weight += w;
    }
    if weight == 0.0 {
        return 0;
    }
    (100.0 * (0.005 + weighted / weight)).floor().min(100.0) as u8
}

/// Judges every check; failing checks first, most severe first.
pub fn evaluate(
    r: &Readings,
    method: crate::connect::input::AuthMethod,
    checked_at: i64,
) -> PostureReport {
    let mut checks: Vec<CheckResult> = CHECKS.iter().map(|c| judge(c, r)).collect();
    let score = score(&checks);
    let rank = |s: CheckStatus| match s {
        CheckStatus::Fail => 0,
        CheckStatus::Unknown => 1,
        CheckStatus::Pass => 2,
    };
    checks.sort_by_key(|c| (rank(c.status), c.severity));
    let on = |name: &str| {
        r.properties
            .as_ref()
            .ok()
            .and_then(|p| p.get(name))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    };
    let warnings = Hardening {
        password_grant_off: on(PASSWORD_GRANT_OFF),
        basic_auth_restricted: on(BASIC_AUTH_RESTRICTION),
        web_service_only: r.web_service_only,
    }
    .warnings(method);
    PostureReport {
        checked_at: crate::clock::rfc3339(checked_at),
        score,
        checks,
        warnings,
    }
}

/// OCSF Compliance Finding (class 2003) for one check, one line of the export.
pub fn ocsf_finding(
    check: &CheckResult,
    connection_id: &str,
    instance_url: &str,
    checked_at: i64,
) -> serde_json::Value {
    let (severity_id, severity) = match check.severity {
        Severity::Critical => (5, "Critical"),
        Severity::High => (4, "High"),
        Severity::Medium => (3, "Medium"),
        Severity::Low => (2, "Low"),
    };
    let (status_id, status) = match check.status {
        CheckStatus::Pass => (1, "Pass"),
        CheckStatus::Fail => (3, "Fail"),
        CheckStatus::Unknown => (0, "Unknown"),
    };
    serde_json::json!({
        "class_uid": 2003,
        "class_name": "Compliance Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200301,
        "time": checked_at * 1000,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "metadata": {
            "version": "1.1.0",
            "product": {"name": "ServiceNow security connector", "vendor_name": "servicenow-connector"},
            "uid": format!("{connection_id}:{}:{checked_at}", check.id),
        },
        "finding_info": {
            "uid": format!("{connection_id}:{}", check.id),
            "title": check.title,
            "desc": check.advice,
        },
        "compliance": {
            "control": check.id,
            "standards": ["ServiceNow instance security hardening"],
            "status_id": status_id,
            "status": status,
            "status_detail": check.why.clone().unwrap_or_else(|| format!("expected {}, found {}", check.expected, check.actual.clone().unwrap_or_default())),
        },
        "resources": [{"type": "ServiceNow instance", "uid": instance_url}],
        "unmapped": {"connection_id": connection_id, "defaulted": check.defaulted},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::input::AuthMethod;
    use crate::servicenow::table::ApiAuth;
    use base64::Engine;

    fn readings(props: &[(&str, &str)], plugins: &[(&str, bool)]) -> Readings {
        Readings {
            properties: Ok(props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()),
            plugins: Ok(plugins.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
            lockout_active: Ok(Some(true)),
            ip_rule_active: Ok(true),
            web_service_only: Some(false),
            property_ids: HashMap::new(),
        }
    }

    fn recommended() -> Readings {
        let props: Vec<(String, String)> = CHECKS
            .iter()
            .filter_map(|c| match (c.reads, c.expected) {
                (Reads::Property(n), Expected::True) => Some((n.to_string(), "true".into())),
                (Reads::Property(n), Expected::False) => Some((n.to_string(), "false".into())),
                (
                    Reads::Property(n),
                    Expected::AtMost(v) | Expected::AtLeast(v) | Expected::Between(_, v),
                ) => Some((n.to_string(), v.to_string())),
                (Reads::Property(n), Expected::Is(v)) => Some((n.to_string(), v.to_string())),
                _ => None,
            })
            .collect();
        let props: Vec<(&str, &str)> = props
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        readings(
            &props,
            &[
                ("com.glide.high_security", true),
                ("com.snc.ipauthenticator", true),
            ],
        )
    }

    #[test]
    fn at_least_thirty_checks_with_unique_ids_and_advice() {
        assert!(CHECKS.len() >= 30, "{}", CHECKS.len());
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len());
        for c in CHECKS {
            assert!(c.advice.len() > 40, "{} needs advice", c.id);
        }
    }

    #[test]
    fn every_recommended_value_passes_and_scores_100() {
        let report = evaluate(&recommended(), AuthMethod::Oauth, 0);
        let failing: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.status != CheckStatus::Pass)
            .map(|c| c.id.as_str())
            .collect();
        assert!(failing.is_empty(), "{failing:?}");
        assert_eq!(report.score, 100);
        assert_eq!(
            report
                .warnings
                .iter()
                .map(|w| w.code.as_str())
                .collect::<Vec<_>>(),
            ["password_grant_disabled"],
            "the recommended password grant off warns an oauth connection"
        );
    }

    #[test]
    fn absent_properties_take_their_defaults() {
        let report = evaluate(&readings(&[], &[]), AuthMethod::ClientCredentials, 0);
        let timeout = report
            .checks
            .iter()
            .find(|c| c.id == "glide.ui.session_timeout")
            .unwrap();
        assert_eq!(timeout.status, CheckStatus::Pass, "default 30 passes");
        assert!(timeout.defaulted);
        let mfa = report
            .checks
            .iter()
            .find(|c| c.id == "glide.authenticate.multifactor")
            .unwrap();
        assert_eq!(mfa.status, CheckStatus::Fail);
        assert_eq!(mfa.actual.as_deref(), Some("false"));
        // Shipped true, but absent means false: a deleted record fails.
        let api = report
            .checks
            .iter()
            .find(|c| c.id == "glide.basicauth.required.api")
            .unwrap();
        assert_eq!((api.status, api.defaulted), (CheckStatus::Fail, true));
        assert!(report
            .checks
            .iter()
            .all(|c| c.status != CheckStatus::Unknown));
        assert!(report.score < 100 && report.score > 0, "{}", report.score);
    }

    #[test]
    fn weak_values_fail_and_order_puts_failures_first() {
        let mut r = recommended();
        if let Ok(p) = r.properties.as_mut() {
            p.insert("glide.ui.session_timeout".into(), "240".into());
            p.insert("glide.sys.permissive.impersonate".into(), "true".into());
            p.insert("glide.user.unlock_timeout_in_mins".into(), "5".into());
        }
        let report = evaluate(&r, AuthMethod::Basic, 0);
        let failing: Vec<&str> = report
            .checks
            .iter()
            .take_while(|c| c.status == CheckStatus::Fail)
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(
            failing,
            [
                "glide.ui.session_timeout",
                "glide.user.unlock_timeout_in_mins",
                "glide.sys.permissive.impersonate"
            ]
        );
        assert!(report.score < 100);
    }

    #[test]
    fn a_failed_read_makes_its_checks_unknown_with_why_and_out_of_the_score() {
        let mut r = recommended();
        r.plugins = Err("the connector's user may not read it (HTTP 403)".into());
        let report = evaluate(&r, AuthMethod::Oauth, 0);
        let unknown: Vec<&CheckResult> = report
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Unknown)
            .collect();
        let ids: Vec<&str> = unknown.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["com.glide.high_security", "com.snc.ipauthenticator"]);
        assert!(unknown
            .iter()
            .all(|c| c.actual.is_none() && c.why.as_deref().is_some_and(|w| w.contains("403"))));
        assert_eq!(
            report.score, 100,
            "what could not be read is not counted as failing"
        );
    }

    #[test]
    fn score_weights_high_over_medium_and_low() {
        let result = |severity, status| CheckResult {
            id: String::new(),
            title: String::new(),
            severity,
            status,
            expected: String::new(),
            actual: None,
            defaulted: false,
            advice: String::new(),
            why: None,
        };
        use CheckStatus::*;
        let all_high_fail = [
            result(Severity::High, Fail),
            result(Severity::Medium, Pass),
            result(Severity::Low, Pass),
        ];
        assert_eq!(score(&all_high_fail), 25);
        let low_fail = [
            result(Severity::Critical, Pass),
            result(Severity::Medium, Pass),
            result(Severity::Low, Fail),
        ];
        assert_eq!(score(&low_fail), 90);
    }

    fn item(id: &str, status: u16, body: serde_json::Value) -> serde_json::Value {
        let raw = serde_json::to_vec(&body).unwrap();
        serde_json::json!({"id": id, "status_code": status, "headers": [],
            "body": base64::engine::general_purpose::STANDARD.encode(raw)})
    }

    #[test]
    fn one_batch_call_reads_everything() {
        let instance = crate::servicenow::instance_url::parse("acme", &Default::default()).unwrap();
        let auth = ApiAuth::Bearer(crate::secret::Secret::new("t"));
        let mut reads = reads(batch::ReadRoute::Batch);
        let req = reads.next_request(&instance, &auth).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["rest_requests"].as_array().unwrap().len(), 5);
        let answer = serde_json::json!({"serviced_requests": [
            item("properties", 200, serde_json::json!({"result": [{"name": "glide.ui.session_timeout", "value": "60"}]})),
            item("plugins", 200, serde_json::json!({"result": [{"id": "com.glide.high_security", "active": "active"}]})),
            item("lockout", 200, serde_json::json!({"result": [{"name": "SNC User Lockout Check", "active": "false"}]})),
            item("ip_access", 403, serde_json::json!({"error": {"message": "User Not Authorized"}})),
            item("whoami", 200, serde_json::json!({"result": [{"web_service_access_only": "true"}]})),
        ]});
        let resp = HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&answer).unwrap(),
        };
        reads.handle(resp);
        let r = parse(reads.answers(), 0).unwrap();
        let report = evaluate(&r, AuthMethod::Basic, 1_700_000_000);
        let status = |id: &str| report.checks.iter().find(|c| c.id == id).unwrap().status;
        assert_eq!(status("glide.ui.session_timeout"), CheckStatus::Fail);
        assert_eq!(status("com.glide.high_security"), CheckStatus::Pass);
        assert_eq!(
            status("sysevent_script_action.snc_user_lockout_check"),
            CheckStatus::Fail
        );
        assert_eq!(status("com.snc.ipauthenticator"), CheckStatus::Unknown);
        assert_eq!(report.checked_at, "2023-11-14T22:13:20Z");
        let line = ocsf_finding(
            &report.checks[0],
            "c1",
            "https://acme.service-now.com",
            1_700_000_000,
        );
        assert_eq!(line["class_uid"], 2003);
        assert_eq!(line["compliance"]["status"], "Fail");

        let refused = HttpResponse {
            status: 401,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"error":{"message":"User Not Authenticated"}}"#.to_vec(),
        };
        assert!(parse(Err(refused), 0)
            .unwrap_err()
            .is(ProblemCode::CredentialsRejected));
    }
}
