//! Detections: a rule engine with no I/O and no clock of its own. The host
//! feeds it the events of each stored page (each event once: the index
//! decides what is new) and a [`Directory`] that answers from the
//! inventory; it answers with the alerts raised or grown. Its state
//! serializes, so a Durable Object keeps it between pages and slices.
//!
//! Counting rules use hopping windows: `window` long, starting every half
//! window, so any burst within half a window lies wholly in one of them. An
//! alert's id is a digest of (connection, rule, key, window start): the same
//! events read again, a retried page or the overlap can only raise the same
//! alert again, which storage merges. When two overlapping windows both
//! qualify, the later one grows the earlier one's alert instead of raising
//! a second. An event that arrives late is counted in the windows of its own
//! time, however late, as long as those windows are within the horizon.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::clock::{parse_rfc3339, rfc3339};
use crate::pull::events::{Event, Kind};
use crate::watch::baseline::{
    self, BusiestWindows, InstanceCountries, LastSignIn, PlaceVerdict, Places,
};
use crate::watch::inventory::PRIVILEGED_ROLES;
use crate::watch::posture::{Reads, Severity, CHECKS};
use crate::watch::travel;
use snc_ipdata::IpData;

/// Windows and per-user histories older than this behind the newest event
/// seen are dropped.
pub const HORIZON_SECS: i64 = 2 * 3_600;
/// Single-event rules fold repeats of one actor and target into one alert
/// per hour.
const FOLD_SECS: i64 = 3_600;
/// Evidence kept per alert.
pub const MAX_EVIDENCE: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    FailedLoginBurst,
    PasswordSpray,
    LoginAfterFailures,
    AdminRoleGranted,
    AdminImpersonated,
    SecurityElevation,
    MassDelete,
    BulkExport,
    LoginByInactiveUser,
    PostureDrift,
    NewCountry,
    MassDownload,
    DormantAccountUsed,
    RiskyIp,
    ImpossibleTravel,
    InfrequentCountry,
}

impl Rule {
    pub const ALL: [Rule; 16] = [
        Rule::FailedLoginBurst,
        Rule::PasswordSpray,
        Rule::LoginAfterFailures,
        Rule::AdminRoleGranted,
        Rule::AdminImpersonated,
        Rule::SecurityElevation,
        Rule::MassDelete,
        Rule::BulkExport,
        Rule::LoginByInactiveUser,
        Rule::PostureDrift,
        Rule::NewCountry,
        Rule::MassDownload,
        Rule::DormantAccountUsed,
        Rule::RiskyIp,
        Rule::ImpossibleTravel,
        Rule::InfrequentCountry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::FailedLoginBurst => "failed_login_burst",
            Rule::PasswordSpray => "password_spray",
            Rule::LoginAfterFailures => "login_after_failures",
            Rule::AdminRoleGranted => "admin_role_granted",
            Rule::AdminImpersonated => "admin_impersonated",
            Rule::SecurityElevation => "security_elevation",
            Rule::MassDelete => "mass_delete",
            Rule::BulkExport => "bulk_export",
            Rule::LoginByInactiveUser => "login_by_inactive_user",
            Rule::PostureDrift => "posture_drift",
            Rule::NewCountry => "new_country",
            Rule::MassDownload => "mass_download",
            Rule::DormantAccountUsed => "dormant_account_used",
            Rule::RiskyIp => "risky_ip",
            Rule::ImpossibleTravel => "impossible_travel",
            Rule::InfrequentCountry => "infrequent_country",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The one table a counting rule's events come from; the others read
    /// several tables or count nothing across events.
    pub fn source(self) -> Option<&'static str> {
        match self {
            Rule::FailedLoginBurst | Rule::PasswordSpray | Rule::LoginAfterFailures => {
                Some("sysevent")
            }
            Rule::MassDelete => Some("sys_audit_delete"),
            Rule::BulkExport | Rule::MassDownload => Some("syslog_transaction"),
            _ => None,
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::FailedLoginBurst
            | Rule::SecurityElevation
            | Rule::PostureDrift
            | Rule::NewCountry
            | Rule::DormantAccountUsed
            | Rule::RiskyIp
            | Rule::ImpossibleTravel
            | Rule::InfrequentCountry => Severity::Medium,
            _ => Severity::High,
        }
    }

    /// MITRE ATT&CK techniques.
    pub fn attack(self) -> &'static [&'static str] {
        match self {
            Rule::FailedLoginBurst => &["T1110", "T1110.001"],
            Rule::PasswordSpray => &["T1110", "T1110.003"],
            Rule::LoginAfterFailures => &["T1110", "T1078"],
            Rule::AdminRoleGranted => &["T1098"],
            Rule::AdminImpersonated => &["T1078"],
            Rule::SecurityElevation => &["T1548"],
            Rule::MassDelete => &["T1485"],
            Rule::BulkExport => &["T1213", "T1530"],
            Rule::LoginByInactiveUser => &["T1078"],
            Rule::PostureDrift => &["T1562"],
            Rule::NewCountry => &["T1078"],
            Rule::MassDownload => &["T1213", "T1530"],
            Rule::DormantAccountUsed => &["T1078"],
            Rule::RiskyIp => &["T1078", "T1090"],
            Rule::ImpossibleTravel => &["T1078"],
            Rule::InfrequentCountry => &["T1078"],
        }
    }
}

/// A count within a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub count: u32,
    pub window_secs: i64,
}

/// The counting rules' thresholds (the contract's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleConfig {
    pub failed_login_burst: Threshold,
    /// Distinct users failing from one source IP.
    pub password_spray: Threshold,
    /// Failures of a user in the window before a successful sign-in.
    pub login_after_failures: Threshold,
    pub mass_delete: Threshold,
    pub bulk_export: Threshold,
    /// Attachment downloads of a user; at least `DOWNLOAD_MULTIPLE` times
    /// their busiest window of the days before too, once they have a
    /// history.
    pub mass_download: Threshold,
}

impl Default for RuleConfig {
    fn default() -> Self {
        let t = |count| Threshold {
            count,
            window_secs: 600,
        };
        RuleConfig {
            failed_login_burst: t(10),
            password_spray: t(10),
            login_after_failures: t(5),
            mass_delete: t(100),
            bulk_export: t(20),
            mass_download: t(50),
        }
    }
}

impl RuleConfig {
    /// Every threshold needs a count of at least 2 (1 for the failures
    /// before a sign-in) and a window from 1 minute to a horizon's half.
    pub fn validate(&self) -> Result<(), String> {
        for (name, t, min) in [
            ("failed_login_burst", self.failed_login_burst, 2),
            ("password_spray", self.password_spray, 2),
            ("login_after_failures", self.login_after_failures, 1),
            ("mass_delete", self.mass_delete, 2),
            ("bulk_export", self.bulk_export, 2),
            ("mass_download", self.mass_download, 2),
        ] {
            if t.count < min {
                return Err(format!("{name}: the count must be at least {min}"));
            }
            if !(60..=HORIZON_SECS / 2).contains(&t.window_secs) {
                return Err(format!(
                    "{name}: the window must be from 60 to {} seconds",
                    HORIZON_SECS / 2
                ));
            }
        }
        Ok(())
    }
}

/// An account as the inventory knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub user_name: String,
    pub active: bool,
    pub locked_out: bool,
    pub privileged: bool,
    /// Its `last_login_time` as the inventory last read it, and the value
    /// that one replaced (Unix seconds): a sign-in updates the record, so
    /// once the inventory has caught up with a sign-in, the value before
    /// is the only trace of the sign-in before it.
    pub last_login: Option<i64>,
    pub login_before: Option<i64>,
}

/// A role as the inventory knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: String,
    pub elevated: bool,
}

/// What the rules ask the inventory: ServiceNow's events name people and
/// roles sometimes by name, sometimes by sys_id.
pub trait Directory {
    /// By user name or sys_id.
    fn person(&self, user: &str) -> Option<Person>;
    /// By name or sys_id.
    fn role(&self, role: &str) -> Option<RoleInfo>;
    /// The user name a role grant (`sys_user_has_role` sys_id) is for.
    fn grantee(&self, grant: &str) -> Option<String>;
    /// A system property's name by its sys_id.
    fn property(&self, sys_id: &str) -> Option<String>;
}

/// A directory's answers kept for one `handle` call: a page names the same
/// few people and roles thousands of times, and each question asked of the
/// host's directory is a query of its store.
struct Remembered<'a> {
    dir: &'a dyn Directory,
    people: RefCell<HashMap<String, Option<Person>>>,
    roles: RefCell<HashMap<String, Option<RoleInfo>>>,
    grantees: RefCell<HashMap<String, Option<String>>>,
    properties: RefCell<HashMap<String, Option<String>>>,
}

fn remembered<T: Clone>(
    kept: &RefCell<HashMap<String, Option<T>>>,
    key: &str,
    ask: impl FnOnce() -> Option<T>,
) -> Option<T> {
    if let Some(v) = kept.borrow().get(key) {
        return v.clone();
    }
    let v = ask();
    kept.borrow_mut().insert(key.to_string(), v.clone());
    v
}

impl<'a> Remembered<'a> {
    fn new(dir: &'a dyn Directory) -> Self {
        Remembered {
            dir,
            people: RefCell::default(),
            roles: RefCell::default(),
            grantees: RefCell::default(),
            properties: RefCell::default(),
        }
    }
}

impl Directory for Remembered<'_> {
    fn person(&self, user: &str) -> Option<Person> {
        remembered(&self.people, user, || self.dir.person(user))
    }
    fn role(&self, role: &str) -> Option<RoleInfo> {
        remembered(&self.roles, role, || self.dir.role(role))
    }
    fn grantee(&self, grant: &str) -> Option<String> {
        remembered(&self.grantees, grant, || self.dir.grantee(grant))
    }
    fn property(&self, sys_id: &str) -> Option<String> {
        remembered(&self.properties, sys_id, || self.dir.property(sys_id))
    }
}

/// The admin role's sys_id, the same on every instance.
pub const ADMIN_ROLE_SYS_ID: &str = "2831a114c611228501d4ea6c309d626d";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub connection_id: String,
    pub rule: Rule,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    pub actor: Option<String>,
    pub source_ip: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u32,
    pub event_ids: Vec<String>,
    pub attack: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Closed,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Closed => "closed",
        }
    }

    pub fn parse(v: &str) -> Option<AlertStatus> {
        [
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::Closed,
        ]
        .into_iter()
        .find(|s| s.as_str() == v)
    }
}

/// An alert as stored and shown: the detector's alert and its status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredAlert {
    #[serde(flatten)]
    pub alert: Alert,
    pub status: AlertStatus,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Window {
    count: u32,
    distinct: BTreeSet<String>,
    first: i64,
    last: i64,
    evidence: Vec<String>,
    /// The alert this window raised or grew.
    alert: Option<String>,
}

/// What the engine remembers between pages.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorState {
    /// `(rule, key, window start)`; JSON has no tuple keys, so a list of pairs.
    #[serde(with = "pairs")]
    windows: BTreeMap<(Rule, String, i64), Window>,
    /// Recent failed sign-ins per user: (time, event id, source IP).
    failures: BTreeMap<String, Vec<(i64, String)>>,
    /// Recent sign-ins per user: (time, event id, source IP).
    logins: BTreeMap<String, Vec<(i64, String, Option<String>)>>,
    /// Each user's sign-in countries (`baseline`).
    places: BTreeMap<String, Places>,
    /// The instance's sign-in countries (`baseline`).
    countries: InstanceCountries,
    /// Each user's busiest window of attachment downloads a day (`baseline`).
    downloads: BTreeMap<String, BusiestWindows>,
    /// Each user's latest sign-in seen (`baseline`).
    last_sign_in: BTreeMap<String, LastSignIn>,
    /// The newest event time seen per source table. Tables are read side by
    /// side, each at its own pace (a page of a busy table spans fewer hours),
    /// so a rule's windows age by the table its events come from: one
    /// table running ahead must not drop another's half-counted burst.
    watermarks: BTreeMap<String, i64>,
}

/// A map as a list of `[key, value]` pairs, for keys JSON cannot name.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

pub struct Detector {
    config: RuleConfig,
    state: DetectorState,
    /// Where addresses are (an empty table knows nowhere: the rules that
    /// need it then judge nothing).
    ip_data: IpData<'static>,
}

fn alert_id(connection_id: &str, rule: Rule, key: &str, start: i64) -> String {
    let d = crate::pull::archive::digest(&[connection_id, rule.as_str(), key, &start.to_string()]);
    format!("al_{d:016x}")
}

fn who(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("an unknown user")
}

fn from_ip(ip: &Option<String>) -> String {
    ip.as_ref()
        .map(|i| format!(" from {i}"))
        .unwrap_or_default()
}

/// The export processors a list or form URL can carry.
const EXPORTS: [&str; 8] = ["csv", "excel", "xls", "xlsx", "pdf", "xml", "jsonv2", "unl"];

/// How many times their busiest window of the last 30 days a user's
/// downloads in one window must be, once they have a history
/// (`mass_download`).
pub const DOWNLOAD_MULTIPLE: u32 = 3;
/// Users whose downloads are kept (`baseline::prune`).
pub const DOWNLOAD_USERS_KEPT: usize = 2_000;
/// The rules' state row is kept under this (Durable Object rows hold 2 MB):
/// past it, the baselines lose their lightest users first (`save`).
pub const STATE_MAX_BYTES: usize = 1_500_000;

/// A URL's path as a servlet container resolves it: percent escapes
/// decoded, `;` parameters dropped from each segment, empty and `.`
/// segments gone, lower case.
fn resolved_path(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    let segments: Vec<&str> = decoded
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .filter(|seg| !seg.is_empty() && *seg != ".")
        .collect();
    format!("/{}", segments.join("/"))
}

/// Whether a transaction's URL downloads an attachment: the UI's
/// `/sys_attachment.do?sys_id=…`, or the Attachment API's
/// `/api/now/attachment/{sys_id}/file`, however its path is spelled
/// (case, escapes, `;jsessionid=…`, doubled slashes).
pub fn is_download(url: &str) -> bool {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = resolved_path(path);
    if path == "/sys_attachment.do" {
        return form_urlencoded::parse(query.as_bytes())
            .any(|(k, _)| k.eq_ignore_ascii_case("sys_id"));
    }
    let api = path
        .strip_prefix("/api/now/attachment/")
        .or_else(|| path.strip_prefix("/api/now/v1/attachment/"));
    api.and_then(|rest| rest.strip_suffix("/file"))
        .is_some_and(|id| !id.contains('/'))
}

/// Whether a transaction's URL asks for an export (`incident_list.do?CSV&…`).
pub fn is_export(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    query.split('&').any(|part| {
        let key = part.split('=').next().unwrap_or("");
        EXPORTS.iter().any(|e| key.eq_ignore_ascii_case(e))
    })
}

fn role_is_privileged(role: &Option<RoleInfo>, name: &str) -> bool {
    match role {
        Some(r) => r.elevated || PRIVILEGED_ROLES.contains(&r.name.as_str()),
        None => PRIVILEGED_ROLES.contains(&name),
    }
}

/// A user's entry in a baseline, made when missing; the name is copied
/// only then (most events are of users already known).
fn user_entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, user: &str) -> Option<&'m mut V> {
    if map.contains_key(user) {
        map.get_mut(user)
    } else {
        Some(map.entry(user.to_string()).or_default())
    }
}

/// The event a rule is looking at: whose connection, which event, and its
/// time in Unix seconds.
#[derive(Clone, Copy)]
struct Seen<'a> {
    conn: &'a str,
    event: &'a Event,
    at: i64,
}

impl Detector {
    pub fn new(config: RuleConfig) -> Detector {
        Detector {
            config,
            state: DetectorState::default(),
            ip_data: IpData::empty(),
        }
    }

    /// With the table that says where addresses are.
    pub fn with_ip_data(mut self, ip_data: IpData<'static>) -> Detector {
        self.ip_data = ip_data;
        self
    }

    /// Restores a saved state; an unreadable one starts afresh (the rules
    /// then only miss bursts that straddle the restart).
    pub fn restore(config: RuleConfig, saved: Option<&str>) -> Detector {
        let state = saved
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        Detector {
            config,
            state,
            ip_data: IpData::empty(),
        }
    }

    /// The state as one row, under `STATE_MAX_BYTES`: past it, each
    /// baseline keeps half its users (the heaviest histories) until it fits.
    pub fn save(&mut self) -> String {
        // Every member serializes (maps keyed by text, or written as pairs).
        let mut text = serde_json::to_string(&self.state).unwrap_or_default();
        let newest = self.state.watermarks.values().copied().max().unwrap_or(0);
        while text.len() > STATE_MAX_BYTES
            && !(self.state.places.is_empty()
                && self.state.downloads.is_empty()
                && self.state.last_sign_in.is_empty())
        {
            let (places, downloads, last) = (
                self.state.places.len(),
                self.state.downloads.len(),
                self.state.last_sign_in.len(),
            );
            baseline::prune(&mut self.state.places, newest, places / 2);
            baseline::prune(&mut self.state.downloads, newest, downloads / 2);
            baseline::prune(&mut self.state.last_sign_in, newest, last / 2);
            text = serde_json::to_string(&self.state).unwrap_or_default();
        }
        text
    }

    /// Feeds events (any order); returns the alerts raised or grown, each
    /// once, keyed by id.
    pub fn handle(
        &mut self,
        connection_id: &str,
        events: &[&Event],
        dir: &dyn Directory,
    ) -> Vec<Alert> {
        let dir = &Remembered::new(dir);
        let mut out: BTreeMap<String, Alert> = BTreeMap::new();
        for e in events {
            let Some(at) = parse_rfc3339(&e.occurred_at) else {
                continue;
            };
            // Looked up before inserting: an entry would copy the table's
            // name for every event.
            match self.state.watermarks.get_mut(&e.source_table) {
                Some(mark) => *mark = (*mark).max(at),
                None => {
                    self.state.watermarks.insert(e.source_table.clone(), at);
                }
            }
            for alert in self.one(connection_id, e, at, dir) {
                out.insert(alert.id.clone(), alert);
            }
        }
        self.prune();
        out.into_values().collect()
    }

    fn prune(&mut self) {
        let marks = &self.state.watermarks;
        let newest = marks.values().copied().max().unwrap_or(0);
        let cutoff_of = |rule: Rule| {
            rule.source()
                .and_then(|t| marks.get(t).copied())
                .unwrap_or(newest)
                - HORIZON_SECS
        };
        self.state.windows.retain(|(rule, _, start), w| {
            let cutoff = cutoff_of(*rule);
            *start >= cutoff || w.last >= cutoff
        });
        let cutoff = marks.get("sysevent").copied().unwrap_or(newest) - HORIZON_SECS;
        for list in self.state.failures.values_mut() {
            list.retain(|(t, _)| *t >= cutoff);
        }
        self.state.failures.retain(|_, l| !l.is_empty());
        for list in self.state.logins.values_mut() {
            list.retain(|(t, _, _)| *t >= cutoff);
        }
        self.state.logins.retain(|_, l| !l.is_empty());
        let sign_ins = marks.get("sysevent").copied().unwrap_or(newest);
        baseline::prune(&mut self.state.places, sign_ins, baseline::USERS_KEPT);
        baseline::prune(&mut self.state.last_sign_in, sign_ins, baseline::USERS_KEPT);
        baseline::prune(
            &mut self.state.downloads,
            marks.get("syslog_transaction").copied().unwrap_or(newest),
            DOWNLOAD_USERS_KEPT,
        );
    }

    fn one(&mut self, conn: &str, e: &Event, at: i64, dir: &dyn Directory) -> Vec<Alert> {
        let seen = Seen { conn, event: e, at };
        let mut out = Vec::new();
        let actor = &e.actor;
        match e.kind {
            Kind::LoginFailed => {
                if let Some(user) = actor {
                    let t = self.config.failed_login_burst;
                    out.extend(self.count(
                        seen,
                        Rule::FailedLoginBurst,
                        user,
                        None,
                        t,
                        actor.clone(),
                    ));
                    self.state
                        .failures
                        .entry(user.clone())
                        .or_default()
                        .push((at, e.id.clone()));
                    let window = self.config.login_after_failures.window_secs;
                    out.extend(self.after_failures(conn, user, at..at.saturating_add(window)));
                }
                if let Some(ip) = &e.source_ip {
                    let t = self.config.password_spray;
                    out.extend(self.count(
                        seen,
                        Rule::PasswordSpray,
                        ip,
                        actor.as_deref(),
                        t,
                        None,
                    ));
                }
            }
            Kind::Login => {
                if let Some(user) = actor {
                    self.state.logins.entry(user.clone()).or_default().push((
                        at,
                        e.id.clone(),
                        e.source_ip.clone(),
                    ));
                    out.extend(self.after_failures(conn, user, at..at + 1));
                    out.extend(self.sign_in_place(seen, user, dir));
                    out.extend(self.dormant_account_used(seen, user, dir));
                    if let Some(p) = dir.person(user).filter(|p| !p.active || p.locked_out) {
                        let state = if p.active { "locked-out" } else { "inactive" };
                        out.push(self.single(
                            seen,
                            Rule::LoginByInactiveUser,
                            &format!("{user}|{}", at.div_euclid(FOLD_SECS)),
                            format!("Sign-in by {state} account {user}"),
                            format!(
                                "{user}, an {state} account, signed in{} at {}.",
                                from_ip(&e.source_ip),
                                e.occurred_at
                            ),
                        ));
                    }
                }
            }
            Kind::Impersonation => {
                let name = e.new_value.as_deref().unwrap_or("");
                let target = e.target.as_ref().and_then(|t| t.record.clone());
                if name.starts_with("impersonation.start")
                    || name == "impersonation"
                    || name.is_empty()
                {
                    if let Some(target) = target {
                        if dir.person(&target).is_some_and(|p| p.privileged) {
                            out.push(self.single(
                                seen,
                                Rule::AdminImpersonated,
                                &format!("{}|{target}|{}", who(actor), at.div_euclid(FOLD_SECS)),
                                format!("{} impersonated privileged user {target}", who(actor)),
                                format!("{} started impersonating {target}, who holds a privileged role, at {}{}.", who(actor), e.occurred_at, from_ip(&e.source_ip)),
                            ));
                        }
                    }
                }
            }
            Kind::Elevation => {
                let name = e.new_value.as_deref().unwrap_or("");
                let role_name = e
                    .target
                    .as_ref()
                    .and_then(|t| t.record.clone())
                    .unwrap_or_default();
                let enabled = !name.contains("disabled") && !name.ends_with(".end");
                if enabled && role_is_privileged(&dir.role(&role_name), &role_name) {
                    out.push(self.single(
                        seen,
                        Rule::SecurityElevation,
                        &format!("{}|{role_name}|{}", who(actor), at.div_euclid(FOLD_SECS)),
                        format!("{} elevated to {role_name}", who(actor)),
                        format!(
                            "{} elevated to the privileged role {role_name} at {}.",
                            who(actor),
                            e.occurred_at
                        ),
                    ));
                }
            }
            Kind::RoleGranted => {
                if let Some(a) = self.role_granted(conn, e, at, dir) {
                    out.push(a);
                }
            }
            Kind::RecordDeleted | Kind::UserDeleted | Kind::RoleRevoked
                if e.source_table == "sys_audit_delete" =>
            {
                if let Some(user) = actor {
                    let t = self.config.mass_delete;
                    out.extend(self.count(seen, Rule::MassDelete, user, None, t, actor.clone()));
                }
            }
            Kind::Transaction => {
                let url = e.new_value.as_deref().unwrap_or("");
                if is_download(url) {
                    if let Some(user) = actor {
                        out.extend(self.mass_download(seen, user));
                    }
                }
                if is_export(url) {
                    if let Some(user) = actor {
                        let t = self.config.bulk_export;
                        out.extend(self.count(
                            seen,
                            Rule::BulkExport,
                            user,
                            None,
                            t,
                            actor.clone(),
                        ));
                    }
                }
            }
            Kind::RecordUpdated | Kind::RecordCreated if e.source_table == "sys_audit" => {
                if let Some(a) = self.posture_drift(conn, e, at, dir) {
                    out.push(a);
                }
            }
            _ => {}
        }
        out
    }

    /// A successful sign-in's place against the user's history
    /// (`baseline::Places`), then learned: `new_country` for a country
    /// the history, once long enough, does not hold; `risky_ip` for a
    /// hosting network (`watch::hosting`) it does not hold, judged for a
    /// privileged account even while the history is short. Each high for a
    /// privileged account.
    fn sign_in_place(&mut self, seen: Seen<'_>, user: &str, dir: &dyn Directory) -> Vec<Alert> {
        let e = seen.event;
        let Some((raw_ip, ip)) = e
            .source_ip
            .as_deref()
            .and_then(|raw| Some((raw, raw.parse::<std::net::IpAddr>().ok()?)))
        else {
            return Vec::new();
        };
        // Private, documentation and other special-purpose addresses are
        // nowhere, whatever the sources say.
        if snc_ipdata::is_special(ip) {
            return Vec::new();
        }
        let place = self.ip_data.lookup(ip);
        let Some(country) = place.country else {
            return Vec::new();
        };
        let hosting = place
            .network
            .and_then(|n| crate::watch::hosting::hosting(n.asn).map(|h| (n, h)));
        let rare = self.state.countries.rare(country, seen.at);
        self.state.countries.learn(country, seen.at);
        let Some(places) = user_entry(&mut self.state.places, user) else {
            return Vec::new();
        };
        let verdict = places.judge(country, seen.at);
        // For a user with too little history of their own, the instance's
        // is what a country is judged by (one with a history has
        // new_country).
        let infrequent = rare
            .filter(|_| verdict == PlaceVerdict::Learning)
            .map(|share| (share, places.describe(seen.at)));
        let new_country = (verdict == PlaceVerdict::New).then(|| places.describe(seen.at));
        let risky = hosting.map(|(n, h)| {
            let verdict = places.judge_network(n.asn, seen.at);
            let networks =
                (verdict == PlaceVerdict::New).then(|| places.describe_networks(seen.at));
            (n, h, verdict, networks)
        });
        // A country the user signed in from in the last 30 days is no trip:
        // a user whose VPN or addresses alternate between two countries
        // alerts once, not every day.
        let trip = places
            .last()
            .filter(|_| verdict != PlaceVerdict::Usual)
            .and_then(|last| {
                let trip = travel::impossible(last.country, last.at, country, seen.at)?;
                Some((last.country, last.at, last.ip.to_string(), trip))
            });
        places.learn(raw_ip, country, place.network.map(|n| n.asn), seen.at);
        if new_country.is_none() && risky.is_none() && trip.is_none() && infrequent.is_none() {
            return Vec::new();
        }
        let privileged = dir.person(user).is_some_and(|p| p.privileged);
        let who = if privileged {
            ", who holds a privileged role,"
        } else {
            ""
        };
        let network = place
            .network
            .map(|n| match n.name {
                "" => format!(", {}", n.asn),
                name => format!(", {} {name}", n.asn),
            })
            .unwrap_or_default();
        let day = seen.at.div_euclid(86_400);
        let mut out = Vec::new();
        if let Some(history) = new_country {
            out.push(self.single(
                seen,
                Rule::NewCountry,
                &format!("{user}|{country}|{day}"),
                format!("{user} signed in from a new country: {country}"),
                format!(
                    "{user}{who} signed in from {ip} ({country}{network}) at {}: the first sign-in from {country} in their history of the last {} days ({history}).",
                    e.occurred_at,
                    baseline::KEEP_DAYS,
                ),
            ));
        }
        if let Some((n, h, verdict, networks)) = risky {
            let judged = match verdict {
                PlaceVerdict::New => Some(format!(
                    "none of their sign-ins of the last {} days came from it (they came from {})",
                    baseline::KEEP_DAYS,
                    networks.unwrap_or_default()
                )),
                PlaceVerdict::Learning if privileged => Some(
                    "their history is too short to say which networks are usual for them"
                        .to_string(),
                ),
                _ => None,
            };
            if let Some(judged) = judged {
                out.push(self.single(
                    seen,
                    Rule::RiskyIp,
                    &format!("{user}|{}|{day}", n.asn),
                    format!("{user} signed in from a hosting network: {}", h.what),
                    format!(
                        "{user}{who} signed in from {ip} ({country}{network}) at {}: a network of servers ({}), where people do not sit but rented machines, proxies and VPN exits do; {judged}.",
                        e.occurred_at,
                        h.what,
                    ),
                ));
            }
        }
        if let Some((share, history)) = infrequent {
            out.push(self.single(
                seen,
                Rule::InfrequentCountry,
                &format!("{user}|{country}|{day}"),
                format!("{user} signed in from {country}, rare for this instance"),
                format!(
                    "{user}{who} signed in from {ip} ({country}{network}) at {}: {} of the instance's {} recent sign-ins came from {country} (under {} %; counts halve every {} days), and {user}'s own history is too short to judge by ({history}).",
                    e.occurred_at,
                    share.sign_ins,
                    share.of,
                    baseline::RARE_PERCENT,
                    baseline::KEEP_DAYS,
                ),
            ));
        }
        if let Some((from, from_at, from_ip, t)) = trip {
            out.push(self.single(
                seen,
                Rule::ImpossibleTravel,
                &format!("{user}|{from}|{country}|{day}"),
                format!("{user} signed in from {from} and {country} {} apart", travel::duration(t.secs)),
                format!(
                    "{user}{who} signed in from {ip} ({country}{network}) at {}, {} after signing in from {from_ip} ({from}) at {}: {} km apart centre to centre, at least {} km once both countries' size is allowed for, which needs {} km/h (an airliner flies under {}).",
                    e.occurred_at,
                    travel::duration(t.secs),
                    rfc3339(from_at),
                    t.km,
                    t.at_least_km,
                    t.kmh,
                    travel::AIRLINER_KMH,
                ),
            ));
        }
        if privileged {
            for a in &mut out {
                a.severity = Severity::High;
            }
        }
        out
    }

    /// A successful sign-in whose previous sign-in is `DORMANT_DAYS` or
    /// more before it, by what the rules saw or the inventory read
    /// (`baseline::sign_in_before`); learned either way. High for a
    /// privileged account.
    fn dormant_account_used(
        &mut self,
        seen: Seen<'_>,
        user: &str,
        dir: &dyn Directory,
    ) -> Option<Alert> {
        let at = seen.at;
        let person = dir.person(user);
        let inventory = person
            .as_ref()
            .map_or([None, None], |p| [p.last_login, p.login_before]);
        let last = self.state.last_sign_in.get(user).copied();
        let before = baseline::sign_in_before(at, last, inventory);
        match self.state.last_sign_in.get_mut(user) {
            Some(l) => l.0 = l.0.max(at),
            None => {
                self.state
                    .last_sign_in
                    .insert(user.to_string(), LastSignIn(at));
            }
        }
        let before = before.filter(|b| at - b >= baseline::DORMANT_DAYS * 86_400)?;
        let days = (at - before).div_euclid(86_400);
        let privileged = person.as_ref().is_some_and(|p| p.privileged);
        let mut alert = self.single(
            seen,
            Rule::DormantAccountUsed,
            &format!("{user}|{}", at.div_euclid(86_400)),
            format!("Dormant account {user} signed in after {days} days"),
            format!(
                "{user}{} signed in{} at {}: their previous sign-in was {days} days earlier, at {} (an account unused for {} days or more).",
                if privileged { ", who holds a privileged role," } else { "" },
                from_ip(&seen.event.source_ip),
                seen.event.occurred_at,
                rfc3339(before),
                baseline::DORMANT_DAYS,
            ),
        );
        if privileged {
            alert.severity = Severity::High;
        }
        Some(alert)
    }

    /// Counts a download; the window's threshold is the configured count,
    /// or `DOWNLOAD_MULTIPLE` times the user's busiest day of the last 30
    /// when that is more (a user who always downloads a lot is judged by
    /// their own days; one with too little history by the count alone).
    fn mass_download(&mut self, seen: Seen<'_>, user: &str) -> Vec<Alert> {
        let t = self.config.mass_download;
        // What was usual before the day the window started: a burst that
        // runs past midnight is not judged against its own first part.
        let usual = self
            .state
            .downloads
            .get(user)
            .and_then(|h| h.usual(seen.at - t.window_secs));
        let count = usual.map_or(t.count, |u| {
            t.count.max(u.saturating_mul(DOWNLOAD_MULTIPLE))
        });
        let actor = seen.event.actor.clone();
        let threshold = Threshold { count, ..t };
        let mut alerts = self.count(seen, Rule::MassDownload, user, None, threshold, actor);
        let busiest = self.busiest_window(Rule::MassDownload, user, seen.at, t);
        if let Some(history) = user_entry(&mut self.state.downloads, user) {
            if alerts.is_empty() {
                history.learn(seen.at, busiest);
            } else {
                // The window's days: a burst's first part is not learned
                // either.
                history.spoil(seen.at);
                history.spoil(seen.at - t.window_secs);
            }
        }
        let minutes = t.window_secs / 60;
        let history = match usual {
            Some(u) => format!(
                " Their busiest {minutes} minutes on the days before, in the last 30, had {u} download{}.",
                if u == 1 { "" } else { "s" }
            ),
            None => " Their history is too short to say what is usual for them.".to_string(),
        };
        for a in &mut alerts {
            a.summary.push_str(&history);
        }
        alerts
    }

    /// The largest count of `key` in the windows holding `at`.
    fn busiest_window(&self, rule: Rule, key: &str, at: i64, t: Threshold) -> u32 {
        let hop = (t.window_secs / 2).max(1);
        let newest = at.div_euclid(hop) * hop;
        [newest - hop, newest]
            .iter()
            .filter_map(|start| self.state.windows.get(&(rule, key.to_string(), *start)))
            .map(|w| w.count)
            .max()
            .unwrap_or(0)
    }

    /// An alert of a single event, folded with others of its key.
    fn single(
        &mut self,
        seen: Seen<'_>,
        rule: Rule,
        key: &str,
        title: String,
        summary: String,
    ) -> Alert {
        let Seen { conn, event: e, at } = seen;
        let w = self
            .state
            .windows
            .entry((rule, key.to_string(), 0))
            .or_insert_with(|| Window {
                first: at,
                last: at,
                ..Window::default()
            });
        if !w.evidence.contains(&e.id) {
            w.count += 1;
            if w.evidence.len() < MAX_EVIDENCE {
                w.evidence.push(e.id.clone());
            }
        }
        w.first = w.first.min(at);
        w.last = w.last.max(at);
        Alert {
            id: alert_id(conn, rule, key, 0),
            connection_id: conn.to_string(),
            rule,
            severity: rule.severity(),
            title,
            summary,
            actor: e.actor.clone(),
            source_ip: e.source_ip.clone(),
            first_seen: rfc3339(w.first),
            last_seen: rfc3339(w.last),
            count: w.count,
            event_ids: w.evidence.clone(),
            attack: rule.attack().iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Counts an event in the two hopping windows holding its time; an
    /// alert when one reaches the threshold. `distinct` counts distinct
    /// values (users of a spray) instead of events.
    fn count(
        &mut self,
        seen: Seen<'_>,
        rule: Rule,
        key: &str,
        distinct: Option<&str>,
        t: Threshold,
        actor: Option<String>,
    ) -> Vec<Alert> {
        let Seen { conn, event: e, at } = seen;
        let hop = (t.window_secs / 2).max(1);
        let newest = at.div_euclid(hop) * hop;
        let mut out = Vec::new();
        for start in [newest - hop, newest] {
            if at < start || at >= start + t.window_secs {
                continue;
            }
            let w = self
                .state
                .windows
                .entry((rule, key.to_string(), start))
                .or_insert_with(|| Window {
                    first: at,
                    last: at,
                    ..Window::default()
                });
            if w.evidence.contains(&e.id) {
                continue;
            }
            w.count += 1;
            if let Some(d) = distinct {
                w.distinct.insert(d.to_string());
            }
            if w.evidence.len() < MAX_EVIDENCE {
                w.evidence.push(e.id.clone());
            }
            w.first = w.first.min(at);
            w.last = w.last.max(at);
            let reached = match distinct {
                Some(_) => w.distinct.len() as u32 >= t.count,
                None => w.count >= t.count,
            };
            if !reached {
                continue;
            }
            let mut snapshot = w.clone();
            // An overlapping window that already raised grows that alert.
            let id = [start - hop, start + hop]
                .iter()
                .find_map(|s| {
                    self.state
                        .windows
                        .get(&(rule, key.to_string(), *s))
                        .and_then(|o| o.alert.clone())
                })
                .or(snapshot.alert.clone())
                .unwrap_or_else(|| alert_id(conn, rule, key, start));
            if let Some(w) = self.state.windows.get_mut(&(rule, key.to_string(), start)) {
                w.alert = Some(id.clone());
            }
            let size = |w: &Window| match distinct {
                Some(_) => w.distinct.len() as u32,
                None => w.count,
            };
            // The alert stands for every window that grew it: it shows the
            // fullest of them. (An attack straddling a hop boundary lies
            // wholly in the earlier window and partly in the later one,
            // which would otherwise report the part.)
            for s in [start - hop, start + hop] {
                let Some(o) = self.state.windows.get(&(rule, key.to_string(), s)) else {
                    continue;
                };
                if o.alert.as_deref() != Some(id.as_str()) {
                    continue;
                }
                if size(o) > size(&snapshot) {
                    snapshot.count = o.count;
                    snapshot.distinct = o.distinct.clone();
                }
                snapshot.first = snapshot.first.min(o.first);
                snapshot.last = snapshot.last.max(o.last);
                for id in &o.evidence {
                    if snapshot.evidence.len() < MAX_EVIDENCE && !snapshot.evidence.contains(id) {
                        snapshot.evidence.push(id.clone());
                    }
                }
            }
            let n = size(&snapshot);
            let (first, last) = (rfc3339(snapshot.first), rfc3339(snapshot.last));
            let (title, summary) = match rule {
                Rule::FailedLoginBurst => (
                    format!("Repeated failed sign-ins for {key}"),
                    format!("{n} failed sign-ins for {key} between {first} and {last}{}.", from_ip(&e.source_ip)),
                ),
                Rule::PasswordSpray => (
                    format!("Password spray from {key}"),
                    format!("{n} different accounts failed to sign in from {key} between {first} and {last}."),
                ),
                Rule::MassDelete => (
                    format!("{key} deleted {n} records"),
                    format!("{key} deleted {n} records between {first} and {last}."),
                ),
                Rule::MassDownload => (
                    format!("{key} downloaded {n} attachments"),
                    format!("{key} downloaded {n} attachments between {first} and {last}{}.", from_ip(&e.source_ip)),
                ),
                Rule::BulkExport => (
                    format!("{key} made {n} export requests"),
                    format!("{key} asked for {n} exports (CSV, Excel, PDF, XML, JSONv2 or UNL) between {first} and {last}{}.", from_ip(&e.source_ip)),
                ),
                _ => (rule.as_str().to_string(), String::new()),
            };
            out.push(Alert {
                id,
                connection_id: conn.to_string(),
                rule,
                severity: rule.severity(),
                title,
                summary,
                actor: actor.clone(),
                source_ip: if rule == Rule::PasswordSpray {
                    Some(key.to_string())
                } else {
                    e.source_ip.clone()
                },
                first_seen: first,
                last_seen: last,
                count: n,
                event_ids: snapshot.evidence,
                attack: rule.attack().iter().map(|s| s.to_string()).collect(),
            });
        }
        out
    }

    /// The sign-ins of `user` at times in `during` that follow enough
    /// failures. Only those a new event can change are asked again: a new
    /// sign-in itself, or the sign-ins within the window after a new failure
    /// (asking every kept sign-in each time made a page's work grow with the
    /// square of one account's sign-ins, and re-sent unchanged alerts).
    fn after_failures(&self, conn: &str, user: &str, during: std::ops::Range<i64>) -> Vec<Alert> {
        let t = self.config.login_after_failures;
        let empty = Vec::new();
        let failures = self.state.failures.get(user).unwrap_or(&empty);
        let Some(logins) = self.state.logins.get(user) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (at, login_id, ip) in logins.iter().filter(|(at, _, _)| during.contains(at)) {
            let at = *at;
            let before: Vec<&(i64, String)> = failures
                .iter()
                .filter(|(f, _)| *f <= at && *f > at - t.window_secs)
                .collect();
            if (before.len() as u32) < t.count {
                continue;
            }
            let rule = Rule::LoginAfterFailures;
            let key = format!("{user}|{login_id}");
            let first = before.iter().map(|(f, _)| *f).min().unwrap_or(at);
            let mut evidence: Vec<String> = before.iter().map(|(_, id)| id.clone()).collect();
            evidence.truncate(MAX_EVIDENCE - 1);
            evidence.push(login_id.clone());
            out.push(Alert {
                id: alert_id(conn, rule, &key, 0),
                connection_id: conn.to_string(),
                rule,
                severity: rule.severity(),
                title: format!("{user} signed in after {} failed attempts", before.len()),
                summary: format!(
                    "{user} signed in{} at {} after {} failed sign-ins in the {} minutes before.",
                    from_ip(ip),
                    rfc3339(at),
                    before.len(),
                    t.window_secs / 60
                ),
                actor: Some(user.to_string()),
                source_ip: ip.clone(),
                first_seen: rfc3339(first),
                last_seen: rfc3339(at),
                count: before.len() as u32 + 1,
                event_ids: evidence,
                attack: rule.attack().iter().map(|s| s.to_string()).collect(),
            });
        }
        out
    }

    /// `admin` or `security_admin` granted: from a `sys_user_has_role`
    /// record (role and user dot-walked) or a `sys_audit` row of one (role
    /// and grant by sys_id, resolved through the inventory). Both name the
    /// same grant record, so both give the same alert.
    fn role_granted(
        &mut self,
        conn: &str,
        e: &Event,
        at: i64,
        dir: &dyn Directory,
    ) -> Option<Alert> {
        let seen = Seen { conn, event: e, at };
        let raw = |f: &str| e.raw.field(f);
        let (grant, role_ref, user) = if e.source_table == "sys_user_has_role" {
            let grant = raw("sys_id")?;
            let role = raw("role.name").or_else(|| raw("role"))?;
            let user = raw("user.user_name")
                .or_else(|| raw("user").and_then(|u| dir.person(&u).map(|p| p.user_name)));
            (grant, role, user)
        } else {
            let grant = e.target.as_ref()?.record.clone()?;
            let role = e.new_value.clone()?;
            (grant.clone(), role, dir.grantee(&grant))
        };
        let role = dir
            .role(&role_ref)
            .map(|r| r.name)
            .or_else(|| (role_ref == ADMIN_ROLE_SYS_ID).then(|| "admin".to_string()))
            .unwrap_or(role_ref);
        if role != "admin" && role != "security_admin" {
            return None;
        }
        let user = user.unwrap_or_else(|| "an account the inventory does not know yet".into());
        Some(self.single(
            seen,
            Rule::AdminRoleGranted,
            &grant,
            format!("{role} granted to {user}"),
            format!(
                "{} granted the {role} role to {user} at {}.",
                who(&e.actor),
                e.occurred_at
            ),
        ))
    }

    /// A `sys_audit` change of a checked property to a value its check fails.
    fn posture_drift(
        &mut self,
        conn: &str,
        e: &Event,
        at: i64,
        dir: &dyn Directory,
    ) -> Option<Alert> {
        let seen = Seen { conn, event: e, at };
        let target = e.target.as_ref()?;
        if target.table.as_deref() != Some("sys_properties")
            || target.field.as_deref() != Some("value")
        {
            return None;
        }
        let name = dir.property(target.record.as_deref()?)?;
        let check = CHECKS
            .iter()
            .find(|c| matches!(c.reads, Reads::Property(n) if n == name))?;
        let value = e.new_value.clone().unwrap_or_default();
        if check.expected.accepts(&value) {
            return None;
        }
        let mut alert = self.single(
            seen,
            Rule::PostureDrift,
            &e.id,
            format!("{name} changed to a failing value"),
            format!(
                "{} set {name} to {value:?} at {}; the hardening check expects {}. {}",
                who(&e.actor),
                e.occurred_at,
                check.expected.describe(),
                check.advice
            ),
        );
        alert.severity = check.severity;
        Some(alert)
    }
}

/// OCSF Detection Finding (class 2004) for an alert.
pub fn ocsf_finding(a: &Alert, status: &str, instance_url: &str) -> serde_json::Value {
    let (severity_id, severity) = match a.severity {
        Severity::Critical => (5, "Critical"),
        Severity::High => (4, "High"),
        Severity::Medium => (3, "Medium"),
        Severity::Low => (2, "Low"),
    };
    let status_id = match status {
        "open" => 1,
        "acknowledged" => 2,
        "closed" => 3,
        _ => 0,
    };
    let first = parse_rfc3339(&a.first_seen).unwrap_or(0) * 1000;
    let last = parse_rfc3339(&a.last_seen).unwrap_or(0) * 1000;
    serde_json::json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "time": last,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "metadata": {
            "version": "1.1.0",
            "product": {"name": "ServiceNow security connector", "vendor_name": "servicenow-connector"},
            "uid": a.id,
        },
        "finding_info": {
            "uid": a.id,
            "title": a.title,
            "desc": a.summary,
            "types": [a.rule.as_str()],
            "first_seen_time": first,
            "last_seen_time": last,
            "related_events": a.event_ids.iter().map(|id| serde_json::json!({"uid": id})).collect::<Vec<_>>(),
            "attacks": a.attack.iter().map(|t| serde_json::json!({"technique": {"uid": t}})).collect::<Vec<_>>(),
        },
        "count": a.count,
        "actor": a.actor.as_ref().map(|u| serde_json::json!({"user": {"name": u}})),
        "src_endpoint": a.source_ip.as_ref().map(|ip| serde_json::json!({"ip": ip})),
        "resources": [{"type": "ServiceNow instance", "uid": instance_url}],
        "unmapped": {"connection_id": a.connection_id},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::events::Target;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Dir {
        people: HashMap<String, Person>,
        roles: HashMap<String, RoleInfo>,
        grants: HashMap<String, String>,
        properties: HashMap<String, String>,
    }

    impl Directory for Dir {
        fn person(&self, user: &str) -> Option<Person> {
            self.people.get(user).cloned()
        }
        fn role(&self, role: &str) -> Option<RoleInfo> {
            self.roles.get(role).cloned()
        }
        fn grantee(&self, grant: &str) -> Option<String> {
            self.grants.get(grant).cloned()
        }
        fn property(&self, sys_id: &str) -> Option<String> {
            self.properties.get(sys_id).cloned()
        }
    }

    fn person(name: &str, active: bool, locked_out: bool, privileged: bool) -> Person {
        Person {
            user_name: name.into(),
            active,
            locked_out,
            privileged,
            last_login: None,
            login_before: None,
        }
    }

    fn dir() -> Dir {
        let mut d = Dir::default();
        for p in [
            person("ann", true, false, false),
            person("root", true, false, true),
            person("gone", false, false, false),
            person("stuck", true, true, false),
        ] {
            d.people.insert(p.user_name.clone(), p);
        }
        d.roles.insert(
            "r-admin".into(),
            RoleInfo {
                name: "admin".into(),
                elevated: false,
            },
        );
        d.roles.insert(
            "security_admin".into(),
            RoleInfo {
                name: "security_admin".into(),
                elevated: true,
            },
        );
        d.roles.insert(
            "itil".into(),
            RoleInfo {
                name: "itil".into(),
                elevated: false,
            },
        );
        d.grants.insert("g1".into(), "ann".into());
        d.properties
            .insert("p-timeout".into(), "glide.ui.session_timeout".into());
        d
    }

    const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn ev(n: u32, table: &str, kind: Kind, at: i64, actor: &str, ip: Option<&str>) -> Event {
        Event {
            id: format!("{table}:{n:032x}"),
            connection_id: "c".into(),
            occurred_at: rfc3339(at),
            kind,
            actor: Some(actor.into()),
            source_ip: ip.map(str::to_string),
            target: None,
            old_value: None,
            new_value: None,
            source_table: table.into(),
            raw: crate::pull::events::RawRecord::empty(),
            truncated_fields: Vec::new(),
        }
    }

    fn raw(v: serde_json::Value) -> crate::pull::events::RawRecord {
        crate::pull::events::RawRecord::parse(&v.to_string()).expect("an object")
    }

    fn run(d: &mut Detector, events: &[Event]) -> Vec<Alert> {
        let refs: Vec<&Event> = events.iter().collect();
        d.handle("c", &refs, &dir())
    }

    /// A table of five places: 13.0.0.0/8 in the US (AS64500 "Home
    /// ISP"), 11.0.0.0/8 in Brazil, 12.0.0.0/8 in the US (AS16509, a
    /// hosting network), 2a01::/32 in Germany, and 203.0.113.0/24 (a
    /// documentation block, which the real sources place too) in Australia.
    fn places() -> IpData<'static> {
        let bytes = snc_ipdata::build::table(&snc_ipdata::build::Sources {
            release: "t",
            country_v4: "184549376,201326591,BR\n201326592,218103807,US\n218103808,234881023,US\n3405803776,3405804031,AU\n",
            country_v6: "55832768119825001489588427028103692288,55832768199053164003852764621647642623,DE\n",
            network_v4: "201326592,218103807,16509,Amazon.com\n218103808,234881023,64500,Home ISP\n",
            network_v6: "",
        })
        .unwrap();
        IpData::open(Box::leak(bytes.into_boxed_slice())).unwrap()
    }

    /// `n` sign-ins of `user` from `ip`, one every `step` seconds from `start`.
    fn sign_ins(first: u32, n: u32, user: &str, ip: &str, start: i64, step: i64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                ev(
                    first + i,
                    "sysevent",
                    Kind::Login,
                    start + i64::from(i) * step,
                    user,
                    Some(ip),
                )
            })
            .collect()
    }

    #[test]
    fn a_country_rare_for_the_instance_judges_a_user_with_too_little_history() {
        // 120 sign-ins from the US over three days, by 40 people, ann among
        // them with a history of her own.
        let mut events: Vec<Event> = (0..120u32)
            .map(|n| {
                let user = if n % 40 == 0 {
                    "ann".to_string()
                } else {
                    format!("p{}", n % 40)
                };
                ev(
                    n,
                    "sysevent",
                    Kind::Login,
                    T0 + i64::from(n) * 2_000,
                    &user,
                    Some("13.0.0.1"),
                )
            })
            .collect();
        events.extend(sign_ins(200, 5, "ann", "13.0.0.2", T0 + 1_000, 60_000));
        let later = T0 + 300_000;
        // kim's first sign-in, from Brazil: rare for the instance.
        events.push(ev(
            300,
            "sysevent",
            Kind::Login,
            later,
            "kim",
            Some("11.0.0.1"),
        ));
        // Near misses: ann from Brazil (her own history judges: new_country);
        // lee's first, from the US; a failed sign-in from Brazil.
        events.push(ev(
            301,
            "sysevent",
            Kind::Login,
            later + 60,
            "ann",
            Some("11.0.0.2"),
        ));
        events.push(ev(
            302,
            "sysevent",
            Kind::Login,
            later + 120,
            "lee",
            Some("13.0.0.9"),
        ));
        events.push(ev(
            303,
            "sysevent",
            Kind::LoginFailed,
            later + 180,
            "max",
            Some("11.0.0.3"),
        ));
        // A documentation address the table places in Australia: nowhere.
        events.push(ev(
            304,
            "sysevent",
            Kind::Login,
            later + 240,
            "sam",
            Some("203.0.113.9"),
        ));
        events.sort_by_key(|e| e.occurred_at.clone());
        let mut d = Detector::new(RuleConfig::default()).with_ip_data(places());
        let all = run(&mut d, &events);
        let rules: BTreeSet<(&str, &str)> = all
            .iter()
            .filter(|a| matches!(a.rule, Rule::InfrequentCountry | Rule::NewCountry))
            .map(|a| (a.rule.as_str(), a.actor.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            rules,
            BTreeSet::from([("infrequent_country", "kim"), ("new_country", "ann")])
        );
        let kim = &all[all
            .iter()
            .position(|a| a.rule == Rule::InfrequentCountry)
            .unwrap()];
        assert!(
            kim.summary.contains(
                "0 of the instance's 125 recent sign-ins came from BR (under 1 %; counts halve every 30 days)"
            ),
            "{}",
            kim.summary
        );
    }

    #[test]
    fn two_sign_ins_farther_apart_than_an_airliner_flies_are_impossible_travel() {
        let login = |n: u32, at: i64, user: &str, ip: &str| {
            ev(n, "sysevent", Kind::Login, at, user, Some(ip))
        };
        let events = [
            // ann: the US, then Brazil an hour later.
            login(1, T0, "ann", "13.0.0.1"),
            login(2, T0 + 3_600, "ann", "11.0.0.1"),
            // Near misses: bob's trip takes eight hours; kim stays in the
            // US (a hosting network's address there).
            login(3, T0, "bob", "13.0.0.2"),
            login(4, T0 + 8 * 3_600, "bob", "11.0.0.2"),
            login(5, T0, "kim", "13.0.0.3"),
            login(6, T0 + 60, "kim", "12.0.0.3"),
            // root, privileged: Brazil then the US ten minutes later.
            login(7, T0, "root", "11.0.0.4"),
            login(8, T0 + 600, "root", "13.0.0.4"),
            // ann again: back in the US ten minutes after Brazil, and in
            // Brazil again ten minutes on: both are her countries now (a VPN
            // flipping between them alerts once, not each time).
            login(9, T0 + 4_200, "ann", "13.0.0.1"),
            login(10, T0 + 4_800, "ann", "11.0.0.1"),
        ];
        let mut sorted = events.to_vec();
        sorted.sort_by_key(|e| e.occurred_at.clone());
        let mut d = Detector::new(RuleConfig::default()).with_ip_data(places());
        let alerts: Vec<Alert> = run(&mut d, &sorted)
            .into_iter()
            .filter(|a| a.rule == Rule::ImpossibleTravel)
            .collect();
        let who: Vec<(&str, Severity)> = alerts
            .iter()
            .map(|a| (a.actor.as_deref().unwrap_or(""), a.severity))
            .collect();
        assert_eq!(who, [("ann", Severity::Medium), ("root", Severity::High)]);
        let a = &alerts[0];
        assert_eq!(a.title, "ann signed in from US and BR 1 h apart");
        assert!(
            a.summary.contains("signed in from 11.0.0.1 (BR) at 2026-01-01T01:00:00Z, 1 h after signing in from 13.0.0.1 (US) at 2026-01-01T00:00:00Z")
                && a.summary.contains("km/h (an airliner flies under 1000)"),
            "{}",
            a.summary
        );
        assert_eq!(a.source_ip.as_deref(), Some("11.0.0.1"));
        // Read again after a restart: nothing new, the same alert ids.
        let mut again =
            Detector::restore(RuleConfig::default(), Some(&d.save())).with_ip_data(places());
        let twice: Vec<Alert> = run(&mut again, &sorted)
            .into_iter()
            .filter(|x| x.rule == Rule::ImpossibleTravel)
            .collect();
        assert!(
            twice.iter().all(|x| alerts.iter().any(|a| a.id == x.id)),
            "{twice:?}"
        );
        // The same stream read by another detector: the same alerts.
        let mut other = Detector::new(RuleConfig::default()).with_ip_data(places());
        let same: Vec<String> = run(&mut other, &sorted)
            .into_iter()
            .filter(|x| x.rule == Rule::ImpossibleTravel)
            .map(|x| x.id)
            .collect();
        assert_eq!(
            same,
            alerts.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
            "deterministic ids"
        );
    }

    #[test]
    fn a_sign_in_from_a_hosting_network_new_to_the_user_is_a_risky_ip() {
        let mut events = sign_ins(1, 5, "ann", "13.0.0.1", T0, 40_000);
        events.push(ev(
            6,
            "sysevent",
            Kind::Login,
            T0 + 300_000,
            "ann",
            Some("12.0.0.7"),
        ));
        // Near misses: bob always signs in from the cloud (his first
        // sign-ins are learning, the later usual); a failed sign-in from it;
        // kim's first sign-in ever, from it (too little history).
        events.extend(sign_ins(20, 6, "bob", "12.0.0.8", T0, 40_000));
        events.push(ev(
            40,
            "sysevent",
            Kind::LoginFailed,
            T0 + 2_000,
            "ann",
            Some("12.0.0.7"),
        ));
        events.push(ev(
            41,
            "sysevent",
            Kind::Login,
            T0 + 3_000,
            "kim",
            Some("12.0.0.10"),
        ));
        // A privileged account is judged with no history.
        events.push(ev(
            42,
            "sysevent",
            Kind::Login,
            T0 + 1_000,
            "root",
            Some("12.0.0.9"),
        ));
        events.sort_by_key(|e| e.occurred_at.clone());
        let mut d = Detector::new(RuleConfig::default()).with_ip_data(places());
        let all = run(&mut d, &events);
        let alerts: Vec<&Alert> = all.iter().filter(|a| a.rule == Rule::RiskyIp).collect();
        let who: Vec<(&str, Severity)> = alerts
            .iter()
            .map(|a| (a.actor.as_deref().unwrap_or(""), a.severity))
            .collect();
        assert_eq!(who, [("ann", Severity::Medium), ("root", Severity::High)]);
        assert!(
            alerts[0].summary.contains("(US, AS16509 Amazon.com) at 2026-01-04T11:20:00Z: a network of servers (Amazon Web Services)")
                && alerts[0].summary.contains("they came from AS64500 (5)"),
            "{}",
            alerts[0].summary
        );
        assert!(
            alerts[1].summary.contains("too short"),
            "{}",
            alerts[1].summary
        );
        // The same country: no new_country beside it.
        assert!(all.iter().all(|a| a.rule != Rule::NewCountry), "{all:?}");
        // Read again after a restart: the same alerts, nothing new.
        let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        let mut again =
            Detector::restore(RuleConfig::default(), Some(&d.save())).with_ip_data(places());
        let twice: Vec<Alert> = run(&mut again, &events);
        assert!(twice
            .iter()
            .all(|a| a.rule != Rule::RiskyIp || ids.contains(&a.id.as_str())));
        let mut other = Detector::new(RuleConfig::default()).with_ip_data(places());
        let same: Vec<String> = run(&mut other, &events)
            .into_iter()
            .filter(|a| a.rule == Rule::RiskyIp)
            .map(|a| a.id)
            .collect();
        assert_eq!(same, ids, "deterministic ids");
    }

    #[test]
    fn a_sign_in_from_a_new_country_alerts_once_the_history_is_long_enough() {
        let mut d = Detector::new(RuleConfig::default()).with_ip_data(places());
        // Five sign-ins from the US over three days: the history.
        let mut events = sign_ins(0, 5, "ann", "13.1.2.3", T0, 12 * 3_600);
        // Then Brazil, then Brazil again (learned: no second alert), then
        // Germany over IPv6.
        events.extend(sign_ins(10, 2, "ann", "11.9.9.9", T0 + 3 * 86_400, 60));
        events.extend(sign_ins(20, 1, "ann", "2a01::7", T0 + 4 * 86_400, 60));
        let alerts = run(&mut d, &events);
        let mine: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.rule == Rule::NewCountry)
            .collect();
        assert_eq!(mine.len(), 2, "{mine:#?}");
        let br = mine.iter().find(|a| a.title.ends_with("BR")).unwrap();
        assert_eq!(br.severity, Severity::Medium);
        assert_eq!(br.event_ids, [events[5].id.clone()]);
        assert!(
            br.summary.contains("from 11.9.9.9 (BR)")
                && br.summary.contains("(5 sign-ins from US over 3 days)"),
            "{}",
            br.summary
        );
        let de = mine.iter().find(|a| a.title.ends_with("DE")).unwrap();
        assert!(
            de.summary
                .contains("5 sign-ins from US and 2 from BR over 4 days"),
            "{}",
            de.summary
        );
        // Saved and restored, the history goes on: ann's US is usual.
        let mut again =
            Detector::restore(RuleConfig::default(), Some(&d.save())).with_ip_data(places());
        let later = run(
            &mut again,
            &sign_ins(30, 1, "ann", "13.7.7.7", T0 + 5 * 86_400, 60),
        );
        assert!(later.iter().all(|a| a.rule != Rule::NewCountry));
    }

    #[test]
    fn near_misses_of_a_new_country_do_not_alert() {
        let mut d = Detector::new(RuleConfig::default()).with_ip_data(places());
        // Too little history: four sign-ins, then Brazil.
        let mut events = sign_ins(0, 4, "ann", "13.1.2.3", T0, 12 * 3_600);
        events.extend(sign_ins(10, 1, "ann", "11.1.1.1", T0 + 3 * 86_400, 60));
        // Many sign-ins, all within one day, then Brazil.
        events.extend(sign_ins(20, 9, "root", "13.1.2.3", T0, 600));
        events.extend(sign_ins(40, 1, "root", "11.1.1.1", T0 + 7_200, 60));
        // An address the table does not place, and none at all.
        events.extend(sign_ins(50, 6, "stuck", "13.1.2.3", T0, 86_400));
        events.extend(sign_ins(60, 1, "stuck", "192.0.2.1", T0 + 7 * 86_400, 60));
        events.push(ev(
            70,
            "sysevent",
            Kind::Login,
            T0 + 7 * 86_400,
            "stuck",
            None,
        ));
        let alerts = run(&mut d, &events);
        assert!(
            alerts.iter().all(|a| a.rule != Rule::NewCountry),
            "{alerts:#?}"
        );
        // Without a table, nothing is placed and nothing judged.
        let mut blind = Detector::new(RuleConfig::default());
        let mut history = sign_ins(0, 6, "ann", "13.1.2.3", T0, 86_400);
        history.extend(sign_ins(10, 1, "ann", "11.1.1.1", T0 + 7 * 86_400, 60));
        assert!(run(&mut blind, &history)
            .iter()
            .all(|a| a.rule != Rule::NewCountry));
    }

    #[test]
    fn a_privileged_account_in_a_new_country_is_high() {
        let mut d = Detector::new(RuleConfig::default()).with_ip_data(places());
        let mut events = sign_ins(0, 6, "root", "13.1.2.3", T0, 86_400);
        events.extend(sign_ins(10, 1, "root", "11.1.1.1", T0 + 7 * 86_400, 60));
        let alerts = run(&mut d, &events);
        let a = alerts.iter().find(|a| a.rule == Rule::NewCountry).unwrap();
        assert_eq!(a.severity, Severity::High);
        assert!(
            a.summary.contains("root, who holds a privileged role,"),
            "{}",
            a.summary
        );
        assert!(a.summary.contains("(BR)"), "{}", a.summary);
        // The US network is named where the table knows it.
        let mut d = Detector::new(RuleConfig::default()).with_ip_data(places());
        let mut events = sign_ins(0, 6, "ann", "11.1.1.1", T0, 86_400);
        events.extend(sign_ins(10, 1, "ann", "13.1.1.1", T0 + 7 * 86_400, 60));
        let a = run(&mut d, &events)
            .into_iter()
            .find(|a| a.rule == Rule::NewCountry)
            .unwrap();
        assert!(
            a.summary.contains("(US, AS64500 Home ISP)"),
            "{}",
            a.summary
        );
    }

    /// `n` downloads by `user`, one every `step` seconds from `start`.
    fn downloads(first: u32, n: u32, user: &str, start: i64, step: i64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = ev(
                    first + i,
                    "syslog_transaction",
                    Kind::Transaction,
                    start + i64::from(i) * step,
                    user,
                    Some("198.51.100.7"),
                );
                e.new_value = Some(format!("/sys_attachment.do?sys_id={:032x}", first + i));
                e
            })
            .collect()
    }

    #[test]
    fn downloads_are_told_by_url_however_it_is_spelled() {
        for url in [
            "/sys_attachment.do?sys_id=0123",
            "/SYS_ATTACHMENT.DO?view=true&SYS_ID=0123",
            "/sys_attachment.do;jsessionid=AB12?sys_id=0123",
            "//sys_attachment.do?sys_id=0123",
            "/./sys_attachment.do?sys%5Fid=0123",
            "/sys%5Fattachment.do?sys_id=0123",
            "/api/now/attachment/0123/file",
            "/api/now/v1/attachment/0123/file?x=1",
            "/api/now/attachment/0123/file/",
            "/api/now/attachment/0123/fil%65",
        ] {
            assert!(is_download(url), "{url}");
        }
        for url in [
            "/sys_attachment.do",
            "/sys_attachment.do?sys_idx=1",
            "/api/now/attachment/0123",
            "/api/now/attachment/a/b/file",
            "/incident_list.do?CSV",
            "%",
            "/%zz%",
        ] {
            assert!(!is_download(url), "{url}");
        }
    }

    #[test]
    fn a_burst_of_downloads_alerts_unless_the_user_often_downloads_as_much() {
        let mut d = Detector::new(RuleConfig::default());
        // 60 in 5 minutes by someone with no history: the count alone.
        let alerts = run(&mut d, &downloads(0, 60, "ann", T0, 5));
        let a: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.rule == Rule::MassDownload)
            .collect();
        assert_eq!(a.len(), 1, "{alerts:#?}");
        assert!(
            a[0].count >= 50 && a[0].title == format!("ann downloaded {} attachments", a[0].count)
        );
        assert!(a[0].summary.contains("too short"), "{}", a[0].summary);
        // 45: below the count.
        let mut d = Detector::new(RuleConfig::default());
        assert!(run(&mut d, &downloads(0, 45, "ann", T0, 5)).is_empty());
        // A burst of 40 on each of three days, then 60 in 5 minutes:
        // usual for them (under 3 x 40).
        let mut d = Detector::new(RuleConfig::default());
        let mut events = Vec::new();
        for day in 0..3 {
            events.extend(downloads(
                1_000 * day as u32,
                40,
                "bob",
                T0 + day * 86_400,
                5,
            ));
        }
        events.extend(downloads(9_000, 60, "bob", T0 + 3 * 86_400, 5));
        let alerts = run(&mut d, &events);
        assert!(
            alerts.iter().all(|a| a.rule != Rule::MassDownload),
            "{alerts:#?}"
        );
        // The next day, 190 in 10 minutes: over 3 x 60.
        let alerts = run(
            &mut d,
            &downloads(20_000, 190, "bob", T0 + 4 * 86_400 + 3_600, 3),
        );
        let a = alerts
            .iter()
            .find(|a| a.rule == Rule::MassDownload)
            .expect("an alert");
        assert!(a.count >= 180, "{}", a.count);
        assert!(
            a.summary.contains(
                "busiest 10 minutes on the days before, in the last 30, had 60 downloads"
            ),
            "{}",
            a.summary
        );
        // What alerted is not learned: the day after, 190 again alerts.
        let alerts = run(
            &mut d,
            &downloads(30_000, 190, "bob", T0 + 5 * 86_400 + 3_600, 3),
        );
        assert!(alerts.iter().any(|a| a.rule == Rule::MassDownload));
    }

    #[test]
    fn the_state_row_stays_under_its_bound_keeping_the_heaviest_histories() {
        let mut d = Detector::new(RuleConfig::default()).with_ip_data(places());
        // 20,000 users of one sign-in each under long names: far past the bound.
        for i in 0..20_000 {
            let mut p = Places::default();
            p.learn(
                "192.0.2.1",
                snc_ipdata::Country::parse("US").unwrap(),
                None,
                T0,
            );
            d.state.places.insert(format!("{i:0>90}"), p);
        }
        let mut heavy = Places::default();
        for day in 0..10 {
            heavy.learn(
                "192.0.2.1",
                snc_ipdata::Country::parse("DE").unwrap(),
                None,
                T0 + day * 60,
            );
        }
        d.state.places.insert("heavy".into(), heavy);
        d.state.watermarks.insert("sysevent".into(), T0);
        let saved = d.save();
        assert!(saved.len() <= STATE_MAX_BYTES, "{}", saved.len());
        assert!(
            saved.len() > STATE_MAX_BYTES / 4,
            "only what it must: {}",
            saved.len()
        );
        let back = Detector::restore(RuleConfig::default(), Some(&saved));
        assert!(back.state.places.contains_key("heavy"));
    }

    #[test]
    fn a_burst_across_midnight_is_judged_by_the_days_before_it() {
        let mut d = Detector::new(RuleConfig::default());
        let midnight = T0 + 4 * 86_400; // T0 is a midnight
        let mut events = Vec::new();
        for day in 1..=3 {
            events.extend(downloads(
                1_000 * day as u32,
                10,
                "cat",
                midnight - day * 86_400 + 3_600,
                5,
            ));
        }
        // 45 in the last four minutes of the day, 20 in the first of the next.
        events.extend(downloads(9_000, 45, "cat", midnight - 240, 5));
        events.extend(downloads(9_100, 20, "cat", midnight + 5, 3));
        let alerts = run(&mut d, &events);
        let a = alerts
            .iter()
            .find(|a| a.rule == Rule::MassDownload)
            .expect("an alert");
        assert!(a.count >= 50, "{}", a.count);
    }

    fn failures(
        n: u32,
        user_of: impl Fn(u32) -> String,
        ip: &str,
        start: i64,
        step: i64,
    ) -> Vec<Event> {
        (0..n)
            .map(|i| {
                ev(
                    i,
                    "sysevent",
                    Kind::LoginFailed,
                    start + i64::from(i) * step,
                    &user_of(i),
                    Some(ip),
                )
            })
            .collect()
    }

    #[test]
    fn a_burst_raises_one_alert_however_it_is_read_again() {
        let burst = failures(12, |_| "ann".into(), "203.0.113.9", T0 + 100, 20);
        let mut d = Detector::new(RuleConfig::default());
        let alerts = run(&mut d, &burst);
        let bursts: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.rule == Rule::FailedLoginBurst)
            .collect();
        assert_eq!(bursts.len(), 1, "{alerts:#?}");
        let a = bursts[0];
        assert_eq!(a.count, 12);
        assert_eq!(a.actor.as_deref(), Some("ann"));
        assert_eq!(a.event_ids.len(), 12);
        assert!(
            a.summary.contains("12 failed sign-ins for ann"),
            "{}",
            a.summary
        );
        // The same page again (a retried page, the overlap): same id, no growth.
        let again = run(&mut d, &burst);
        assert!(
            again.iter().all(|x| x.id == a.id && x.count == 12),
            "{again:#?}"
        );
        // A restored state sees the same.
        let mut restored = Detector::restore(RuleConfig::default(), Some(&d.save()));
        assert!(run(&mut restored, &burst).iter().all(|x| x.id == a.id));
        // A burst split over two pages, the state saved and restored between.
        let mut first = Detector::new(RuleConfig::default());
        run(&mut first, &burst[..7]);
        let saved = first.save();
        assert!(saved.len() > 20, "{saved}");
        let mut second = Detector::restore(RuleConfig::default(), Some(&saved));
        let split = run(&mut second, &burst[7..]);
        let grown = split
            .iter()
            .find(|x| x.rule == Rule::FailedLoginBurst)
            .expect("the burst");
        assert_eq!((grown.id.as_str(), grown.count), (a.id.as_str(), 12));
        // Below the threshold: nothing.
        let mut fresh = Detector::new(RuleConfig::default());
        assert!(run(&mut fresh, &burst[..9]).is_empty());
    }

    #[test]
    fn a_burst_across_a_window_edge_is_one_alert_and_late_events_count_in_their_own_time() {
        // 6 failures before a 5-minute edge, 6 after, all within 4 minutes.
        let edge = (T0 / 300 + 10) * 300;
        let mut events = failures(6, |_| "ann".into(), "198.51.100.1", edge - 120, 20);
        events.extend(
            failures(6, |_| "ann".into(), "198.51.100.1", edge, 20)
                .into_iter()
                .map(|mut e| {
                    e.id.push('x');
                    e
                }),
        );
        let mut d = Detector::new(RuleConfig::default());
        // Late: the second half is read first.
        let mut alerts = run(&mut d, &events[6..]);
        alerts.extend(run(&mut d, &events[..6]));
        let ids: BTreeSet<&str> = alerts
            .iter()
            .filter(|a| a.rule == Rule::FailedLoginBurst)
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(ids.len(), 1, "{alerts:#?}");
    }

    #[test]
    fn an_alert_counts_its_whole_burst_wherever_the_burst_falls_against_the_hops() {
        // 12 failures 20 s apart, started at every 10 s of a whole window
        // (so across every hop boundary), read in one page or one by one:
        // the last word on the alert is always the whole burst.
        let window = RuleConfig::default().failed_login_burst.window_secs;
        for offset in (0..window).step_by(10) {
            let burst = failures(12, |_| "ann".into(), "203.0.113.9", T0 + offset, 20);
            for pages in [1usize, 12] {
                let mut d = Detector::new(RuleConfig::default());
                let mut last: BTreeMap<String, u32> = BTreeMap::new();
                for chunk in burst.chunks(12 / pages) {
                    for a in run(&mut d, chunk)
                        .into_iter()
                        .filter(|a| a.rule == Rule::FailedLoginBurst)
                    {
                        let c = last.entry(a.id.clone()).or_default();
                        *c = (*c).max(a.count);
                    }
                }
                assert_eq!(last.len(), 1, "offset {offset}, {pages} pages: {last:?}");
                assert_eq!(
                    last.values().next(),
                    Some(&12),
                    "offset {offset}, {pages} pages"
                );
            }
        }
    }

    #[test]
    fn another_table_running_hours_ahead_does_not_drop_a_half_counted_burst() {
        let burst = failures(12, |_| "ann".into(), "203.0.113.9", T0 + 100, 20);
        let mut d = Detector::new(RuleConfig::default());
        run(&mut d, &burst[..5]);
        // A page of transactions twelve hours on, read before sysevent's next page.
        let later: Vec<Event> = (0..3)
            .map(|i| {
                ev(
                    i,
                    "syslog_transaction",
                    Kind::Transaction,
                    T0 + 12 * 3_600 + i64::from(i),
                    "bob",
                    None,
                )
            })
            .collect();
        run(&mut d, &later);
        let mut restored = Detector::restore(RuleConfig::default(), Some(&d.save()));
        let alerts = run(&mut restored, &burst[5..]);
        let a = alerts
            .iter()
            .find(|a| a.rule == Rule::FailedLoginBurst)
            .expect("the burst across two pages");
        assert_eq!(a.count, 12);
    }

    #[test]
    fn a_spray_counts_distinct_users_from_one_ip() {
        let spray = failures(11, |i| format!("user{i}"), "192.0.2.50", T0, 30);
        let mut d = Detector::new(RuleConfig::default());
        let alerts = run(&mut d, &spray);
        let sprays: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.rule == Rule::PasswordSpray)
            .collect();
        assert_eq!(sprays.len(), 1);
        assert_eq!(sprays[0].source_ip.as_deref(), Some("192.0.2.50"));
        assert_eq!(sprays[0].count, 11);
        assert!(
            alerts.iter().all(|a| a.rule != Rule::FailedLoginBurst),
            "one failure per user is no burst"
        );
        // One user failing 11 times from the IP is a burst, not a spray.
        let mut d = Detector::new(RuleConfig::default());
        let one = failures(11, |_| "ann".into(), "192.0.2.50", T0, 30);
        assert!(run(&mut d, &one)
            .iter()
            .all(|a| a.rule != Rule::PasswordSpray));
    }

    #[test]
    fn a_sign_in_thirty_days_after_the_last_is_a_dormant_account_used() {
        const DAY: i64 = 86_400;
        let mut people = dir();
        let login = |n: u32, at: i64, user: &str| {
            ev(n, "sysevent", Kind::Login, at, user, Some("203.0.113.9"))
        };
        // ann: the inventory read her last sign-in 45 days ago and has not
        // caught up with this one.
        people.people.get_mut("ann").unwrap().last_login = Some(T0 - 45 * DAY);
        // root, privileged: the inventory caught up (stamped 2 s after the
        // event); what it said before was 60 days back.
        let root = people.people.get_mut("root").unwrap();
        root.last_login = Some(T0 + 3_602);
        root.login_before = Some(T0 - 60 * DAY);
        // Near misses: 29 days; never signed in before (the inventory's only
        // value is this sign-in); unknown to the inventory.
        let mut kim = person("kim", true, false, false);
        kim.last_login = Some(T0 - 29 * DAY);
        people.people.insert("kim".into(), kim);
        let mut new = person("new", true, false, false);
        new.last_login = Some(T0 + 100);
        people.people.insert("new".into(), new);
        let events = [
            login(1, T0, "ann"),
            // Her second sign-in follows the first the rules saw.
            login(2, T0 + 600, "ann"),
            login(3, T0 + 3_600, "root"),
            login(4, T0 + 60, "kim"),
            login(5, T0 + 100, "new"),
            login(6, T0 + 200, "stranger"),
            ev(7, "sysevent", Kind::LoginFailed, T0 + 300, "kim", None),
        ];
        let mut d = Detector::new(RuleConfig::default());
        let refs: Vec<&Event> = events.iter().collect();
        let alerts: Vec<Alert> = d
            .handle("c", &refs, &people)
            .into_iter()
            .filter(|a| a.rule == Rule::DormantAccountUsed)
            .collect();
        let who: Vec<(&str, Severity, u32)> = alerts
            .iter()
            .map(|a| (a.actor.as_deref().unwrap_or(""), a.severity, a.count))
            .collect();
        assert_eq!(
            who,
            [("ann", Severity::Medium, 1), ("root", Severity::High, 1)]
        );
        assert!(
            alerts[0]
                .summary
                .contains("45 days earlier, at 2025-11-17T00:00:00Z"),
            "{}",
            alerts[0].summary
        );
        assert!(
            alerts[1].summary.contains("60 days"),
            "{}",
            alerts[1].summary
        );
        // Read again (the overlap) and after a restart: the same alerts.
        let mut again = Detector::restore(RuleConfig::default(), Some(&d.save()));
        let ids: Vec<String> = again
            .handle("c", &refs[..1], &people)
            .into_iter()
            .filter(|a| a.rule == Rule::DormantAccountUsed)
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, [alerts[0].id.clone()]);
        // Thirty-one days on, the inventory caught up with the sign-in:
        // dormant again, by the rules' record and the inventory's both.
        let later = T0 + 600 + 31 * DAY;
        let ann = people.people.get_mut("ann").unwrap();
        ann.last_login = Some(later + 2);
        ann.login_before = Some(T0 + 600);
        let late = again.handle("c", &[&login(8, later, "ann")], &people);
        assert!(
            late.iter()
                .any(|a| a.rule == Rule::DormantAccountUsed && a.summary.contains("31 days")),
            "{late:?}"
        );
    }

    #[test]
    fn a_sign_in_after_failures_and_by_an_inactive_account() {
        let mut events = failures(5, |_| "ann".into(), "203.0.113.7", T0, 30);
        events.push(ev(
            99,
            "sysevent",
            Kind::Login,
            T0 + 200,
            "ann",
            Some("203.0.113.7"),
        ));
        let mut d = Detector::new(RuleConfig::default());
        let alerts = run(&mut d, &events);
        let a = alerts
            .iter()
            .find(|a| a.rule == Rule::LoginAfterFailures)
            .expect("login after failures");
        assert_eq!(a.count, 6);
        assert!(a
            .event_ids
            .last()
            .unwrap()
            .ends_with(&format!("{:032x}", 99)));
        // The sign-in read before its failures (late failures) raises the same alert.
        let mut d = Detector::new(RuleConfig::default());
        let mut late = run(&mut d, &events[5..]);
        late.extend(run(&mut d, &events[..5]));
        let ids: BTreeSet<&str> = late
            .iter()
            .filter(|x| x.rule == Rule::LoginAfterFailures)
            .map(|x| x.id.as_str())
            .collect();
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), vec![a.id.as_str()]);
        // A later sign-in with no failures before it raises nothing, and the
        // alert already raised is not sent again with it.
        let again = run(
            &mut d,
            &[ev(
                100,
                "sysevent",
                Kind::Login,
                T0 + 1_200,
                "ann",
                Some("203.0.113.7"),
            )],
        );
        assert!(
            again.iter().all(|x| x.rule != Rule::LoginAfterFailures),
            "{again:?}"
        );

        let mut d = Detector::new(RuleConfig::default());
        let logins = [
            ev(1, "sysevent", Kind::Login, T0, "gone", None),
            ev(2, "sysevent", Kind::Login, T0 + 60, "stuck", None),
            ev(3, "sysevent", Kind::Login, T0 + 90, "ann", None),
        ];
        let alerts = run(&mut d, &logins);
        let mut who: Vec<&str> = alerts
            .iter()
            .filter(|a| a.rule == Rule::LoginByInactiveUser)
            .filter_map(|a| a.actor.as_deref())
            .collect();
        who.sort();
        assert_eq!(who, ["gone", "stuck"]);
    }

    /// Counts the questions a page asks of the store behind the directory.
    struct Counting {
        inner: Dir,
        asked: std::cell::Cell<u32>,
    }

    impl Directory for Counting {
        fn person(&self, user: &str) -> Option<Person> {
            self.asked.set(self.asked.get() + 1);
            self.inner.person(user)
        }
        fn role(&self, role: &str) -> Option<RoleInfo> {
            self.asked.set(self.asked.get() + 1);
            self.inner.role(role)
        }
        fn grantee(&self, grant: &str) -> Option<String> {
            self.asked.set(self.asked.get() + 1);
            self.inner.grantee(grant)
        }
        fn property(&self, sys_id: &str) -> Option<String> {
            self.asked.set(self.asked.get() + 1);
            self.inner.property(sys_id)
        }
    }

    #[test]
    fn a_page_asks_the_directory_once_per_name_and_the_next_page_asks_again() {
        let mut d = Detector::new(RuleConfig::default());
        let page: Vec<Event> = (0..500)
            .map(|i| {
                let who = if i % 2 == 0 { "ann" } else { "gone" };
                ev(i, "sysevent", Kind::Login, T0 + i64::from(i), who, None)
            })
            .collect();
        let refs: Vec<&Event> = page.iter().collect();
        let mut counting = Counting {
            inner: dir(),
            asked: std::cell::Cell::new(0),
        };
        let first = d.handle("c", &refs, &counting);
        assert_eq!(counting.asked.get(), 2);
        assert!(first
            .iter()
            .any(|a| a.rule == Rule::LoginByInactiveUser && a.actor.as_deref() == Some("gone")));
        // Between pages the inventory changed: ann was deactivated.
        counting
            .inner
            .people
            .insert("ann".into(), person("ann", false, false, false));
        let next: Vec<Event> = (500..502)
            .map(|i| {
                ev(
                    i,
                    "sysevent",
                    Kind::Login,
                    T0 + 7_200 + i64::from(i),
                    "ann",
                    None,
                )
            })
            .collect();
        let refs: Vec<&Event> = next.iter().collect();
        let later = d.handle("c", &refs, &counting);
        assert_eq!(counting.asked.get(), 3);
        assert!(later
            .iter()
            .any(|a| a.rule == Rule::LoginByInactiveUser && a.actor.as_deref() == Some("ann")));
    }

    #[test]
    fn admin_grants_are_resolved_through_the_inventory_from_either_record() {
        let mut has_role = ev(1, "sys_user_has_role", Kind::RoleGranted, T0, "boss", None);
        has_role.raw = raw(serde_json::json!({"sys_id": "g1", "role": "r-admin", "user": "ann"}));
        let mut audit = ev(2, "sys_audit", Kind::RoleGranted, T0 + 1, "boss", None);
        audit.target = Some(Target {
            table: Some("sys_user_has_role".into()),
            record: Some("g1".into()),
            field: Some("role".into()),
        });
        audit.new_value = Some("r-admin".into());
        let mut d = Detector::new(RuleConfig::default());
        let alerts = run(&mut d, &[has_role.clone(), audit]);
        let grants: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.rule == Rule::AdminRoleGranted)
            .collect();
        assert_eq!(grants.len(), 1, "both records name one grant: {alerts:#?}");
        assert_eq!(grants[0].title, "admin granted to ann");
        assert_eq!(grants[0].count, 2);
        // itil is no admin role.
        let mut itil = has_role;
        itil.id = "sys_user_has_role:other".into();
        itil.raw = raw(serde_json::json!({"sys_id": "g2", "role": "itil", "user": "ann"}));
        assert!(run(&mut Detector::new(RuleConfig::default()), &[itil]).is_empty());
    }

    #[test]
    fn impersonating_a_privileged_user_and_elevating() {
        let mut imp = ev(1, "sysevent", Kind::Impersonation, T0, "ann", None);
        imp.new_value = Some("impersonation.start".into());
        imp.target = Some(Target {
            table: Some("sys_user".into()),
            record: Some("root".into()),
            field: None,
        });
        let mut benign = imp.clone();
        benign.id = "sysevent:b".into();
        benign.target = Some(Target {
            table: Some("sys_user".into()),
            record: Some("ann".into()),
            field: None,
        });
        let mut elev = ev(3, "sysevent", Kind::Elevation, T0, "root", None);
        elev.new_value = Some("security.elevated_role.enabled".into());
        elev.target = Some(Target {
            table: Some("sys_user_role".into()),
            record: Some("security_admin".into()),
            field: None,
        });
        let mut d = Detector::new(RuleConfig::default());
        let alerts = run(&mut d, &[imp, benign, elev]);
        let rules: Vec<Rule> = alerts.iter().map(|a| a.rule).collect();
        assert_eq!(
            rules
                .iter()
                .filter(|r| **r == Rule::AdminImpersonated)
                .count(),
            1
        );
        assert_eq!(
            rules
                .iter()
                .filter(|r| **r == Rule::SecurityElevation)
                .count(),
            1
        );
        assert!(alerts.iter().all(|a| !a.attack.is_empty()));
    }

    #[test]
    fn mass_delete_bulk_export_and_posture_drift() {
        let deletes: Vec<Event> = (0..100)
            .map(|i| {
                ev(
                    i,
                    "sys_audit_delete",
                    Kind::RecordDeleted,
                    T0 + i64::from(i),
                    "ann",
                    None,
                )
            })
            .collect();
        let mut d = Detector::new(RuleConfig::default());
        let alerts = run(&mut d, &deletes);
        assert_eq!(
            alerts.iter().filter(|a| a.rule == Rule::MassDelete).count(),
            1
        );

        let exports: Vec<Event> = (0..20)
            .map(|i| {
                let mut e = ev(
                    i,
                    "syslog_transaction",
                    Kind::Transaction,
                    T0 + i64::from(i) * 5,
                    "ann",
                    Some("203.0.113.2"),
                );
                e.new_value = Some(format!(
                    "/incident_list.do?{}&sysparm_query=active=true",
                    if i % 2 == 0 { "CSV" } else { "XLSX" }
                ));
                e
            })
            .collect();
        let mut d = Detector::new(RuleConfig::default());
        assert_eq!(
            run(&mut d, &exports)
                .iter()
                .filter(|a| a.rule == Rule::BulkExport)
                .count(),
            1
        );
        assert!(!is_export("/incident_list.do?sysparm_query=csv=1"));
        assert!(is_export("/incident.do?PDF&sys_id=1"));

        let drift = |value: &str| {
            let mut e = ev(7, "sys_audit", Kind::RecordUpdated, T0, "ann", None);
            e.target = Some(Target {
                table: Some("sys_properties".into()),
                record: Some("p-timeout".into()),
                field: Some("value".into()),
            });
            e.new_value = Some(value.into());
            e
        };
        let mut d = Detector::new(RuleConfig::default());
        let alerts = run(&mut d, &[drift("480")]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule, Rule::PostureDrift);
        assert_eq!(
            alerts[0].severity,
            Severity::High,
            "the check's own severity"
        );
        assert!(run(&mut Detector::new(RuleConfig::default()), &[drift("15")]).is_empty());
    }

    #[test]
    fn config_is_validated_and_the_state_stays_bounded() {
        assert!(RuleConfig::default().validate().is_ok());
        let mut bad = RuleConfig::default();
        bad.password_spray.count = 1;
        assert!(bad.validate().unwrap_err().contains("password_spray"));
        bad = RuleConfig::default();
        bad.mass_delete.window_secs = 10;
        assert!(bad.validate().is_err());
        let mut d = Detector::new(RuleConfig::default());
        for hour in 0..48 {
            let f = failures(
                3,
                |i| format!("u{hour}-{i}"),
                "192.0.2.1",
                T0 + hour * 3_600,
                1,
            );
            run(&mut d, &f);
        }
        assert!(d.state.windows.len() < 40, "{}", d.state.windows.len());
        assert!(d.state.failures.len() <= 9);
    }
}
