//! The instance's records: deterministic from the seed, spread over the days
//! before "now", with bursts where thousands of records share one second.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};

use crate::time_fmt;

/// A field's value, typed the way the Table API renders it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    /// Unix seconds; rendered `YYYY-MM-DD hh:mm:ss` UTC as raw value.
    DateTime(i64),
    /// A reference to another table's record; `display` is its display value.
    Ref {
        table: &'static str,
        sys_id: String,
        display: String,
    },
    Empty,
}

impl Value {
    /// The raw value as the Table API sends it with `sysparm_display_value=false`.
    pub fn raw(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::DateTime(t) => time_fmt::raw(*t),
            Value::Ref { sys_id, .. } => sys_id.clone(),
            Value::Empty => String::new(),
        }
    }

    /// The display value, in the user's zone and format for date-times.
    pub fn display(&self) -> String {
        match self {
            Value::DateTime(t) => time_fmt::display(*t),
            Value::Ref { display, .. } => display.clone(),
            other => other.raw(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Record {
    pub sys_id: String,
    pub created: i64,
    pub fields: Vec<(&'static str, Value)>,
}

impl Record {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Every table the simulator serves, with the fields it knows.
pub const TABLES: &[(&str, &[&str])] = &[
    (
        "sysevent",
        &[
            "sys_id",
            "name",
            "parm1",
            "parm2",
            "instance",
            "queue",
            "state",
            "table",
            "uri",
            "processed",
            "sys_created_on",
            "sys_created_by",
            "sys_updated_on",
        ],
    ),
    (
        "sys_audit",
        &[
            "sys_id",
            "tablename",
            "documentkey",
            "fieldname",
            "oldvalue",
            "newvalue",
            "user",
            "reason",
            "record_checkpoint",
            "internal_checkpoint",
            "sys_created_on",
            "sys_created_by",
        ],
    ),
    (
        "sys_audit_delete",
        &[
            "sys_id",
            "tablename",
            "documentkey",
            "display_value",
            "sys_created_on",
            "sys_created_by",
        ],
    ),
    (
        "syslog_transaction",
        &[
            "sys_id",
            "url",
            "remote_ip",
            "type",
            "response_time",
            "response_status",
            "session",
            "system_id",
            "sys_created_on",
            "sys_created_by",
        ],
    ),
    (
        "sys_user",
        &[
            "sys_id",
            "user_name",
            "first_name",
            "last_name",
            "email",
            "active",
            "locked_out",
            "web_service_access_only",
            "last_login_time",
            "sys_created_on",
            "sys_created_by",
            "sys_updated_on",
        ],
    ),
    (
        "sys_user_role",
        &[
            "sys_id",
            "name",
            "description",
            "elevated_privilege",
            "sys_created_on",
            "sys_updated_on",
        ],
    ),
    (
        "sys_user_group",
        &[
            "sys_id",
            "name",
            "description",
            "active",
            "sys_created_on",
            "sys_updated_on",
        ],
    ),
    (
        "sys_user_has_role",
        &[
            "sys_id",
            "user",
            "role",
            "inherited",
            "state",
            "granted_by",
            "sys_created_on",
            "sys_created_by",
            "sys_updated_on",
        ],
    ),
    (
        "sys_user_grmember",
        &[
            "sys_id",
            "user",
            "group",
            "sys_created_on",
            "sys_created_by",
            "sys_updated_on",
        ],
    ),
    (
        "v_plugin",
        &[
            "sys_id",
            "id",
            "name",
            "active",
            "sys_created_on",
            "sys_updated_on",
        ],
    ),
    (
        "sysevent_script_action",
        &[
            "sys_id",
            "name",
            "event_name",
            "active",
            "sys_created_on",
            "sys_updated_on",
        ],
    ),
    (
        "ip_access",
        &[
            "sys_id",
            "type",
            "range_start",
            "range_end",
            "active",
            "sys_created_on",
            "sys_updated_on",
        ],
    ),
    (
        "sys_user_basic_auth_exception",
        &["sys_id", "user", "sys_created_on", "sys_updated_on"],
    ),
    (
        "sys_properties",
        &[
            "sys_id",
            "name",
            "value",
            "type",
            "description",
            "sys_created_on",
        ],
    ),
];

pub fn table_fields(table: &str) -> Option<&'static [&'static str]> {
    TABLES.iter().find(|(t, _)| *t == table).map(|(_, f)| *f)
}

/// The tables whose records count as "events" for `--events-per-day`.
pub const EVENT_TABLES: [&str; 4] = [
    "sysevent",
    "sys_audit",
    "sys_audit_delete",
    "syslog_transaction",
];

/// A table's records, kept sorted by (sys_created_on, sys_id): the order the
/// connector asks for, so the common query needs no sort.
#[derive(Default)]
pub struct Table {
    pub records: Vec<Record>,
}

impl Table {
    pub fn insert_sorted(&mut self, mut new: Vec<Record>) {
        self.records.append(&mut new);
        self.records
            .sort_unstable_by(|a, b| (a.created, &a.sys_id).cmp(&(b.created, &b.sys_id)));
    }
}

pub struct Generator {
    rng: rand::rngs::SmallRng,
    pub users: Vec<(String, String)>,
    /// Active, unlocked, unprivileged people: who the benign noise signs in
    /// as and impersonates, so noise alone never matches a detection.
    pub benign: Vec<String>,
}

/// Roles that make an account privileged (as the connector's detections see it).
pub const PRIVILEGED: &[&str] = &["admin", "security_admin", "impersonator", "oauth_admin"];

/// Every second benign person is kept for the attack scenarios: the noise
/// never names them, so a planted attack (or near miss) is all there is of
/// them and the ground truth stays exact. Enough that a suite of every
/// rule's four plantings names each person once (the rules that learn a
/// person's sign-ins would otherwise see two plantings as one history).
pub fn reserved_users(tables: &HashMap<&'static str, Table>) -> Vec<String> {
    benign_users(tables).into_iter().step_by(2).collect()
}

/// Whether an account has not signed in for a week before the newest
/// sign-in of the instance (`newest`): the noise never names it, so a
/// dormant account stays dormant until a scenario signs it in.
fn away(r: &Record, newest: i64) -> bool {
    matches!(r.get("last_login_time"), Some(Value::DateTime(t)) if *t < newest - 7 * 86_400)
}

fn newest_login(t: &Table) -> i64 {
    t.records
        .iter()
        .filter_map(|r| match r.get("last_login_time") {
            Some(Value::DateTime(t)) => Some(*t),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The people the noise may name: everyone but the reserved and the away.
pub fn noise_users(tables: &HashMap<&'static str, Table>) -> Vec<(String, String)> {
    let reserved: std::collections::HashSet<String> = reserved_users(tables).into_iter().collect();
    tables
        .get("sys_user")
        .map(|t| {
            let newest = newest_login(t);
            t.records
                .iter()
                .filter(|r| !away(r, newest))
                .filter_map(|r| match r.get("user_name") {
                    Some(Value::Str(u)) if !reserved.contains(u) => {
                        Some((u.clone(), r.sys_id.clone()))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The benign people of an instance: active, not locked out, no privileged
/// role, signed in this week.
pub fn benign_users(tables: &HashMap<&'static str, Table>) -> Vec<String> {
    let privileged: std::collections::HashSet<String> = tables
        .get("sys_user_has_role")
        .map(|t| {
            t.records
                .iter()
                .filter(|r| matches!(r.get("role"), Some(Value::Ref { display, .. }) if PRIVILEGED.contains(&display.as_str())))
                .filter_map(|r| match r.get("user") {
                    Some(Value::Ref { sys_id, .. }) => Some(sys_id.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    tables
        .get("sys_user")
        .map(|t| {
            let newest = newest_login(t);
            t.records
                .iter()
                .filter(|r| !away(r, newest))
                .filter(|r| matches!(r.get("active"), Some(Value::Bool(true))))
                .filter(|r| matches!(r.get("locked_out"), Some(Value::Bool(false))))
                .filter(|r| !privileged.contains(&r.sys_id))
                .filter_map(|r| match r.get("user_name") {
                    Some(Value::Str(u)) if u.contains('.') && !u.starts_with("svc.") => {
                        Some(u.clone())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

const FIRST: &[&str] = &[
    "Abel", "Beth", "Carlos", "Dana", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kiri",
    "Lena",
];
const LAST: &[&str] = &[
    "Tuter", "Anaya", "Ruiz", "Okafor", "Novak", "Sato", "Meyer", "Haddad", "Lund", "Park",
];
pub const ROLES: &[&str] = &[
    "admin",
    "itil",
    "security_admin",
    "user_admin",
    "catalog_admin",
    "snc_internal",
    "knowledge",
    "impersonator",
    "report_user",
    "approver_user",
    "asset",
];
/// Roles no detection counts as privileged, for the audit noise.
const PLAIN_ROLES: &[&str] = &[
    "itil",
    "knowledge",
    "report_user",
    "approver_user",
    "asset",
    "catalog_admin",
    "user_admin",
];
const GROUPS: &[&str] = &[
    "Service Desk",
    "Network",
    "Security Operations",
    "Database",
    "Human Resources",
    "Finance",
    "Change Advisory Board",
];
const AUDITED: &[(&str, &str)] = &[
    ("sys_user", "user_name"),
    ("incident", "state"),
    ("incident", "assigned_to"),
    ("sys_user", "active"),
    ("sys_user", "locked_out"),
    ("sys_user_has_role", "role"),
    ("change_request", "approval"),
    ("sys_properties", "value"),
];
/// The people's networks the noise signs in from, by weight: ISPs' /24s in
/// six countries (the IP data's, 2026-06: Comcast, Deutsche Telekom, BT,
/// NTT, Telefonica Brasil, Vodacom). Written into records only.
const HOMES: &[(&str, u32)] = &[
    ("73.0.0", 8),
    ("80.128.0", 4),
    ("86.128.0", 3),
    ("153.128.0", 2),
    ("189.0.0", 2),
    ("41.13.0", 2),
];

/// A person's own address: each signs in from home, always the same one.
fn home(user: &str) -> String {
    // FNV-1a: stable across runs and platforms.
    let h = user.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let total: u32 = HOMES.iter().map(|(_, w)| w).sum();
    let mut pick = (h % u64::from(total)) as u32;
    let block = HOMES
        .iter()
        .find(|(_, w)| {
            let here = pick < *w;
            pick = pick.saturating_sub(*w);
            here
        })
        .map_or("73.0.0", |(b, _)| b);
    format!("{block}.{}", 1 + (h >> 32) % 250)
}

const URLS: &[&str] = &[
    "/api/now/table/incident",
    "/incident.do",
    "/navpage.do",
    "/sys_user_list.do",
    "/api/now/table/sys_user",
    "/login.do",
    "/stats.do",
];

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: rand::rngs::SmallRng::seed_from_u64(seed),
            users: Vec::new(),
            benign: Vec::new(),
        }
    }

    pub fn sys_id(&mut self) -> String {
        let v: u128 = self.rng.random();
        format!("{v:032x}")
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn ip(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.rng.random_range(0..255),
            self.rng.random_range(0..255),
            self.rng.random_range(1..255)
        )
    }

    fn benign_user(&mut self) -> Option<String> {
        if self.benign.is_empty() {
            return None;
        }
        Some(self.benign[self.rng.random_range(0..self.benign.len())].clone())
    }

    fn user(&mut self) -> (String, String) {
        if self.users.is_empty() {
            return ("system".into(), String::new());
        }
        self.users[self.rng.random_range(0..self.users.len())].clone()
    }

    /// A record of a burst: thousands share its second, so it is a plain
    /// sign-in or sign-out (a burst of failures would be an attack).
    pub fn burst_event(&mut self, table: &str, created: i64) -> Record {
        let mut r = self.event(table, created);
        if table == "sysevent" {
            let quiet = if self.rng.random_bool(0.5) {
                "login"
            } else {
                "logout"
            };
            let user = self.benign_user();
            let from = user.as_deref().map_or_else(|| self.ip(), home);
            for (name, v) in r.fields.iter_mut() {
                match *name {
                    "name" => *v = Value::Str(quiet.into()),
                    "parm2" => *v = Value::Str(from.clone()),
                    "parm1" | "sys_created_by" => {
                        if let Some(u) = &user {
                            *v = Value::Str(u.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
        r
    }

    /// One record of an event table, created at `created`.
    pub fn event(&mut self, table: &str, created: i64) -> Record {
        let sys_id = self.sys_id();
        let (user, _) = self.user();
        let at = Value::DateTime(created);
        let fields: Vec<(&'static str, Value)> = match table {
            "sysevent" => {
                let name = self.pick(&[
                    "login",
                    "login",
                    "login",
                    "login.failed",
                    "logout",
                    "logout",
                    "impersonation.start",
                    "impersonation.end",
                    "security.elevated_role.disabled",
                    "security.elevated_role.disabled",
                    "external.authentication.succeeded",
                    "external.authentication.failed",
                ]);
                // Noise signs in and impersonates only benign people.
                let user = if matches!(name, "login" | "external.authentication.succeeded") {
                    self.benign_user().unwrap_or(user)
                } else {
                    user
                };
                let parm2 = if name.starts_with("impersonation") {
                    self.benign_user().unwrap_or_else(|| self.user().0)
                } else if name.starts_with("security.elevated") {
                    "security_admin".into()
                } else if name.starts_with("login") || name.starts_with("external.authentication") {
                    // People sign in from home.
                    home(&user)
                } else {
                    self.ip()
                };
                vec![
                    ("name", Value::Str(name.into())),
                    ("parm1", Value::Str(user.clone())),
                    ("parm2", Value::Str(parm2)),
                    ("instance", Value::Empty),
                    ("queue", Value::Empty),
                    ("state", Value::Str("processed".into())),
                    ("table", Value::Empty),
                    ("uri", Value::Empty),
                    ("processed", at.clone()),
                    ("sys_created_on", at.clone()),
                    ("sys_created_by", Value::Str(user)),
                    ("sys_updated_on", at),
                ]
            }
            "sys_audit" => {
                let (tablename, fieldname) = AUDITED[self.rng.random_range(0..AUDITED.len())];
                let (old, new) = match fieldname {
                    // A new user: the audit of an insert has no old value.
                    "user_name" => (String::new(), self.user().0),
                    "active" | "locked_out" => ("true".to_string(), "false".to_string()),
                    "role" => (String::new(), self.pick(PLAIN_ROLES).to_string()),
                    "state" => ("1".into(), "2".into()),
                    _ => (String::new(), self.sys_id()),
                };
                let doc = self.sys_id();
                vec![
                    ("tablename", Value::Str(tablename.into())),
                    ("documentkey", Value::Str(doc)),
                    ("fieldname", Value::Str(fieldname.into())),
                    ("oldvalue", Value::Str(old)),
                    ("newvalue", Value::Str(new)),
                    ("user", Value::Str(user.clone())),
                    ("reason", Value::Empty),
                    (
                        "record_checkpoint",
                        Value::Int(if fieldname == "user_name" {
                            0
                        } else {
                            self.rng.random_range(1..40)
                        }),
                    ),
                    (
                        "internal_checkpoint",
                        Value::Str(format!("{:x}", self.rng.random::<u64>())),
                    ),
                    ("sys_created_on", at),
                    ("sys_created_by", Value::Str(user)),
                ]
            }
            "sys_audit_delete" => {
                let doc = self.sys_id();
                let tablename =
                    self.pick(&["incident", "sys_user", "sys_user_has_role", "kb_knowledge"]);
                vec![
                    ("tablename", Value::Str(tablename.into())),
                    ("documentkey", Value::Str(doc)),
                    ("display_value", Value::Str(format!("{tablename} record"))),
                    ("sys_created_on", at),
                    ("sys_created_by", Value::Str(user)),
                ]
            }
            _ => {
                let url = self.pick(URLS);
                let status = *[200, 200, 200, 200, 302, 401, 403, 404]
                    .get(self.rng.random_range(0..8))
                    .unwrap_or(&200);
                let session = format!("{:032X}", self.rng.random::<u128>());
                vec![
                    ("url", Value::Str(url.into())),
                    ("remote_ip", Value::Str(self.ip())),
                    (
                        "type",
                        Value::Str(
                            if url.starts_with("/api") {
                                "rest"
                            } else {
                                "form"
                            }
                            .into(),
                        ),
                    ),
                    ("response_time", Value::Int(self.rng.random_range(3..4000))),
                    ("response_status", Value::Int(status)),
                    ("session", Value::Str(session)),
                    ("system_id", Value::Str("app128.sim".into())),
                    ("sys_created_on", at),
                    ("sys_created_by", Value::Str(user)),
                ]
            }
        };
        Record {
            sys_id: sys_id.clone(),
            created,
            fields: with_sys_id(sys_id, fields),
        }
    }
}

fn with_sys_id(
    sys_id: String,
    mut fields: Vec<(&'static str, Value)>,
) -> Vec<(&'static str, Value)> {
    fields.insert(0, ("sys_id", Value::Str(sys_id)));
    fields
}

/// An instance's tables by name.
pub type Tables = HashMap<&'static str, Table>;

/// Parameters of a generated instance.
pub struct DataSpec<'a> {
    pub seed: u64,
    pub now: i64,
    pub days: u32,
    pub events_per_day: u32,
    pub release: &'a str,
    pub username: &'a str,
    pub user_is_admin: bool,
    /// The OAuth application's user (client credentials act as it).
    pub app_user: &'a str,
    /// Writes the instance's hardening settings (`posture::apply` with a
    /// profile), at their place in the generator's sequence.
    pub hardening: &'a dyn Fn(&mut Tables, &mut Generator, i64),
    /// People besides the service accounts.
    pub people: u32,
    /// Accounts like the connector's (`config::is_account`), with its roles.
    pub fleet_accounts: u32,
}

/// Builds every table. Event records fall in `[now - days, now)`; each day has
/// one burst second holding a tenth of that day's sysevent records.
pub fn generate(spec: &DataSpec<'_>) -> HashMap<&'static str, Table> {
    let mut g = Generator::new(spec.seed);
    let mut tables: HashMap<&'static str, Table> =
        TABLES.iter().map(|(t, _)| (*t, Table::default())).collect();
    let start = spec.now - i64::from(spec.days) * 86_400;
    let old = start - 400 * 86_400;

    // Roles and groups.
    let mut role_ids = HashMap::new();
    let mut rows = Vec::new();
    for role in ROLES {
        let id = g.sys_id();
        role_ids.insert(*role, id.clone());
        rows.push(Record {
            sys_id: id.clone(),
            created: old,
            fields: with_sys_id(
                id,
                vec![
                    ("name", Value::Str((*role).into())),
                    ("description", Value::Str(format!("The {role} role"))),
                    ("elevated_privilege", Value::Bool(*role == "security_admin")),
                    ("sys_created_on", Value::DateTime(old)),
                    ("sys_updated_on", Value::DateTime(old)),
                ],
            ),
        });
    }
    table_mut(&mut tables, "sys_user_role").insert_sorted(rows);
    let mut group_ids = Vec::new();
    let mut rows = Vec::new();
    for name in GROUPS {
        let id = g.sys_id();
        group_ids.push((id.clone(), *name));
        rows.push(Record {
            sys_id: id.clone(),
            created: old,
            fields: with_sys_id(
                id,
                vec![
                    ("name", Value::Str((*name).into())),
                    ("description", Value::Str(format!("The {name} group"))),
                    ("active", Value::Bool(true)),
                    ("sys_created_on", Value::DateTime(old)),
                    ("sys_updated_on", Value::DateTime(old)),
                ],
            ),
        });
    }
    table_mut(&mut tables, "sys_user_group").insert_sorted(rows);

    // Users: the connector's service account first, then people, then the
    // OAuth application's user. Every 17th person is inactive, every 23rd
    // locked out; roles and groups rotate.
    let mut users = Vec::new();
    let mut names: Vec<(String, String, String)> = vec![(
        spec.username.to_string(),
        "Connector".into(),
        "Service".into(),
    )];
    for i in 0..spec.people as usize {
        let f = FIRST[i % FIRST.len()];
        let l = LAST[(i / FIRST.len()) % LAST.len()];
        let round = i / (FIRST.len() * LAST.len());
        let suffix = if round == 0 {
            String::new()
        } else {
            round.to_string()
        };
        names.push((
            format!("{}.{}{suffix}", f.to_lowercase(), l.to_lowercase()),
            (*f).into(),
            l.into(),
        ));
    }
    names.push((
        spec.app_user.to_string(),
        "Integration".into(),
        "Account".into(),
    ));
    // Last, so that an instance without them generates what it always did.
    let fleet_from = names.len();
    for k in 1..=spec.fleet_accounts {
        names.push((
            format!("{}-{k}", spec.username),
            "Connector".into(),
            format!("Fleet {k}"),
        ));
    }
    let mut has_role = Vec::new();
    let mut members = Vec::new();
    for (i, (user_name, first, last)) in names.iter().enumerate() {
        let id = g.sys_id();
        let created = old + i as i64 * 3_600;
        let display = format!("{first} {last}");
        let fleet = i >= fleet_from;
        let person = i > 0 && user_name != spec.app_user && !fleet;
        let inactive = person && i % 17 == 0;
        let locked = person && i % 23 == 0;
        // Most people signed in within the day; one in 25 not for 35 to 74
        // days (a dormant account) and one in 25 not for 15 to 24 (away a
        // while): the noise never signs either in (`away`).
        let last_login = match i % 25 {
            7 if person => spec.now - 86_400 * (35 + (i as i64 % 40)),
            8 if person => spec.now - 86_400 * (15 + (i as i64 % 10)),
            _ => spec.now - 3_600 * (i as i64 % 24 + 1),
        };
        users.push(Record {
            sys_id: id.clone(),
            created,
            fields: with_sys_id(
                id.clone(),
                vec![
                    ("user_name", Value::Str(user_name.clone())),
                    ("first_name", Value::Str(first.clone())),
                    ("last_name", Value::Str(last.clone())),
                    ("email", Value::Str(format!("{user_name}@example.com"))),
                    ("active", Value::Bool(!inactive)),
                    ("locked_out", Value::Bool(locked)),
                    (
                        "web_service_access_only",
                        Value::Bool(user_name == spec.app_user),
                    ),
                    ("last_login_time", Value::DateTime(last_login)),
                    ("sys_created_on", Value::DateTime(created)),
                    ("sys_created_by", Value::Str("admin".into())),
                    ("sys_updated_on", Value::DateTime(created)),
                ],
            ),
        });
        g.users.push((user_name.clone(), id.clone()));
        let user_ref = Value::Ref {
            table: "sys_user",
            sys_id: id.clone(),
            display: display.clone(),
        };
        let mut grant = |role: &str, g: &mut Generator| {
            has_role.push(role_grant(
                g,
                &user_ref,
                role,
                role_ids.get(role).cloned().unwrap_or_default(),
                created,
            ));
        };
        if i == 0 || fleet {
            if spec.user_is_admin {
                grant("admin", &mut g);
            }
            grant("snc_internal", &mut g);
        } else if user_name == spec.app_user {
            grant("admin", &mut g);
        } else {
            grant(ROLES[i % ROLES.len()], &mut g);
            if i % 3 == 0 {
                grant("itil", &mut g);
            }
            for (gid, gname) in [
                &group_ids[i % group_ids.len()],
                &group_ids[(i / 2) % group_ids.len()],
            ]
            .into_iter()
            .take(if i % 2 == 0 { 2 } else { 1 })
            {
                let mid = g.sys_id();
                members.push(Record {
                    sys_id: mid.clone(),
                    created,
                    fields: with_sys_id(
                        mid,
                        vec![
                            ("user", user_ref.clone()),
                            (
                                "group",
                                Value::Ref {
                                    table: "sys_user_group",
                                    sys_id: gid.clone(),
                                    display: (*gname).into(),
                                },
                            ),
                            ("sys_created_on", Value::DateTime(created)),
                            ("sys_created_by", Value::Str("admin".into())),
                            ("sys_updated_on", Value::DateTime(created)),
                        ],
                    ),
                });
            }
        }
    }
    members.dedup_by(|a, b| a.get("user") == b.get("user") && a.get("group") == b.get("group"));
    table_mut(&mut tables, "sys_user").insert_sorted(users);
    table_mut(&mut tables, "sys_user_has_role").insert_sorted(has_role);
    table_mut(&mut tables, "sys_user_grmember").insert_sorted(members);
    let reserved = reserved_users(&tables);
    g.benign = benign_users(&tables)
        .into_iter()
        .filter(|u| !reserved.contains(u))
        .collect();
    g.users = noise_users(&tables);
    table_mut(&mut tables, "sys_properties").insert_sorted(release_properties(
        &mut g,
        spec.release,
        old,
    ));
    (spec.hardening)(&mut tables, &mut g, old);

    // Events: a share per table, uniform over the window, plus a daily burst.
    let shares = [
        ("sysevent", 30u32),
        ("sys_audit", 30),
        ("sys_audit_delete", 5),
        ("syslog_transaction", 35),
    ];
    let span = (spec.now - start).max(1);
    for (table, share) in shares {
        let per_day = u64::from(spec.events_per_day) * u64::from(share) / 100;
        let total = per_day * u64::from(spec.days);
        let burst_per_day = if table == "sysevent" { per_day / 10 } else { 0 };
        let mut rows = Vec::with_capacity(total as usize);
        for day in 0..spec.days {
            let day_start = start + i64::from(day) * 86_400;
            let burst_at = day_start + g.rng.random_range(0..86_400);
            for _ in 0..burst_per_day {
                rows.push(g.burst_event(table, burst_at));
            }
        }
        while (rows.len() as u64) < total {
            let at = start + g.rng.random_range(0..span);
            rows.push(g.event(table, at));
        }
        table_mut(&mut tables, table).insert_sorted(rows);
    }
    tables
}

/// A system property's value, when its record exists.
pub fn property(tables: &HashMap<&'static str, Table>, name: &str) -> Option<String> {
    tables.get("sys_properties")?.records.iter().find_map(|r| {
        matches!(r.get("name"), Some(Value::Str(n)) if n == name)
            .then(|| r.get("value").map(Value::raw).unwrap_or_default())
    })
}

/// Deletes a system property's record: its platform default applies again.
pub fn remove_property(tables: &mut HashMap<&'static str, Table>, name: &str) {
    if let Some(t) = tables.get_mut("sys_properties") {
        t.records
            .retain(|r| !matches!(r.get("name"), Some(Value::Str(n)) if n == name));
    }
}

/// A successful sign-in by `user` at `at`, as ServiceNow records it on the
/// account: `last_login_time` moves to it (when later), and the record is
/// updated `now`.
pub fn signed_in(tables: &mut HashMap<&'static str, Table>, user: &str, at: i64, now: i64) {
    let Some(t) = tables.get_mut("sys_user") else {
        return;
    };
    for r in t
        .records
        .iter_mut()
        .filter(|r| matches!(r.get("user_name"), Some(Value::Str(u)) if u == user))
    {
        for (name, v) in r.fields.iter_mut() {
            match (*name, &v) {
                ("last_login_time", Value::DateTime(t)) if *t >= at => {}
                ("last_login_time", _) => *v = Value::DateTime(at),
                ("sys_updated_on", Value::DateTime(t)) if *t >= now => {}
                ("sys_updated_on", _) => *v = Value::DateTime(now),
                _ => {}
            }
        }
    }
}

/// A `sys_audit` record of one field's change.
pub fn audit_record(
    g: &mut Generator,
    table: &str,
    document: &str,
    field: &str,
    old: &str,
    new: &str,
    at: i64,
) -> Record {
    let id = g.sys_id();
    Record {
        sys_id: id.clone(),
        created: at,
        fields: with_sys_id(
            id,
            vec![
                ("tablename", Value::Str(table.into())),
                ("documentkey", Value::Str(document.into())),
                ("fieldname", Value::Str(field.into())),
                ("oldvalue", Value::Str(old.into())),
                ("newvalue", Value::Str(new.into())),
                ("user", Value::Str("admin".into())),
                ("reason", Value::Empty),
                ("record_checkpoint", Value::Int(2)),
                ("internal_checkpoint", Value::Str(format!("{at:x}"))),
                ("sys_created_on", Value::DateTime(at)),
                ("sys_created_by", Value::Str("admin".into())),
            ],
        ),
    }
}

/// A `sys_audit_delete` record of a deleted record.
pub fn deletion_record(
    g: &mut Generator,
    table: &str,
    document: &str,
    display: &str,
    at: i64,
) -> Record {
    let id = g.sys_id();
    Record {
        sys_id: id.clone(),
        created: at,
        fields: with_sys_id(
            id,
            vec![
                ("tablename", Value::Str(table.into())),
                ("documentkey", Value::Str(document.into())),
                ("display_value", Value::Str(display.into())),
                ("sys_created_on", Value::DateTime(at)),
                ("sys_created_by", Value::Str("admin".into())),
            ],
        ),
    }
}

/// A `sys_user_has_role` record: `role` granted to the user at `at`.
pub fn role_grant(
    g: &mut Generator,
    user: &Value,
    role: &str,
    role_sys_id: String,
    at: i64,
) -> Record {
    let rid = g.sys_id();
    Record {
        sys_id: rid.clone(),
        created: at,
        fields: with_sys_id(
            rid,
            vec![
                ("user", user.clone()),
                (
                    "role",
                    Value::Ref {
                        table: "sys_user_role",
                        sys_id: role_sys_id,
                        display: role.to_string(),
                    },
                ),
                ("inherited", Value::Bool(false)),
                ("state", Value::Str("active".into())),
                ("granted_by", Value::Empty),
                ("sys_created_on", Value::DateTime(at)),
                ("sys_created_by", Value::Str("admin".into())),
                ("sys_updated_on", Value::DateTime(at)),
            ],
        ),
    }
}

/// Sets a system property, creating its record when absent (a property a
/// hardening switch or a posture profile names).
pub fn set_property(
    tables: &mut HashMap<&'static str, Table>,
    g: &mut Generator,
    name: &str,
    value: &str,
    now: i64,
) {
    let table = table_mut(tables, "sys_properties");
    let existing = table
        .records
        .iter_mut()
        .find(|r| matches!(r.get("name"), Some(Value::Str(n)) if n == name));
    if let Some(record) = existing {
        for (field, v) in record.fields.iter_mut() {
            if *field == "value" {
                *v = Value::Str(value.to_string());
            }
        }
        return;
    }
    let id = g.sys_id();
    table.insert_sorted(vec![Record {
        sys_id: id.clone(),
        created: now,
        fields: with_sys_id(
            id,
            vec![
                ("name", Value::Str(name.into())),
                ("value", Value::Str(value.into())),
                ("type", Value::Str("true|false".into())),
                ("description", Value::Empty),
                ("sys_created_on", Value::DateTime(now)),
            ],
        ),
    }]);
}

fn table_mut<'a>(
    tables: &'a mut HashMap<&'static str, Table>,
    name: &'static str,
) -> &'a mut Table {
    tables.entry(name).or_default()
}

/// `glide.war` and `glide.buildname` as the release family would show them.
fn release_properties(g: &mut Generator, family: &str, created: i64) -> Vec<Record> {
    let build_name = display_family(family);
    let war = format!(
        "glide-{}-06-01-2024__patch4-11-05-2024_11-12-2024_1200.zip",
        family.to_ascii_lowercase().replace([' ', '_', '-'], "")
    );
    [
        ("glide.war", war),
        ("glide.buildname", build_name),
        ("glide.product.name", "ServiceNow".into()),
    ]
    .into_iter()
    .map(|(name, value)| {
        let id = g.sys_id();
        Record {
            sys_id: id.clone(),
            created,
            fields: with_sys_id(
                id,
                vec![
                    ("name", Value::Str(name.into())),
                    ("value", Value::Str(value)),
                    ("type", Value::Str("string".into())),
                    ("description", Value::Empty),
                    ("sys_created_on", Value::DateTime(created)),
                ],
            ),
        }
    })
    .collect()
}

/// `washingtondc` → `Washington DC`, `sandiego` → `San Diego`, `tokyo` → `Tokyo`.
pub fn display_family(family: &str) -> String {
    let f = family.to_ascii_lowercase().replace([' ', '_', '-'], "");
    match f.as_str() {
        "newyork" => "New York".into(),
        "sandiego" => "San Diego".into(),
        "washingtondc" => "Washington DC".into(),
        _ => {
            let mut c = f.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        }
    }
}
