//! The instance's accounts, roles and groups, kept in full: read whole at
//! connect, then kept current by `sys_updated_on` at each pull. One Batch
//! API call reads the next page of every table still behind, so a
//! caught-up connection spends one call per pull on its inventory.
//!
//! Each table is read in (sys_updated_on, sys_id) order with a keyset query,
//! and every record is an upsert by sys_id, so reading a record twice is
//! harmless: each sync starts `OVERLAP_SECS` before the stored cursor to
//! catch records committed late. Deletions leave no record to read; they
//! arrive as `sys_audit_delete` events (see [`deleted_record`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::batch;
use crate::cursor::Key;
use crate::events::{parse_servicenow_time, servicenow_time, text, Event, Kind};
use crate::http::{HttpRequest, HttpResponse};
use crate::instance_url::InstanceUrl;
use crate::problem::{Problem, ProblemCode};
use crate::servicenow::{classify_failure, is_html};
use crate::table::{self, ApiAuth};

/// Late commits are looked for this far before each table's cursor.
pub const OVERLAP_SECS: i64 = 600;
/// Records per table and call.
pub const PAGE: u32 = 1_000;

/// Roles that make an account privileged whatever their flags.
pub const PRIVILEGED_ROLES: [&str; 4] = ["admin", "security_admin", "impersonator", "oauth_admin"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryTable {
    Users,
    Roles,
    Groups,
    Grants,
    Members,
}

impl InventoryTable {
    pub const ALL: [InventoryTable; 5] = [
        InventoryTable::Users,
        InventoryTable::Roles,
        InventoryTable::Groups,
        InventoryTable::Grants,
        InventoryTable::Members,
    ];

    /// The ServiceNow table.
    pub fn source(self) -> &'static str {
        match self {
            InventoryTable::Users => "sys_user",
            InventoryTable::Roles => "sys_user_role",
            InventoryTable::Groups => "sys_user_group",
            InventoryTable::Grants => "sys_user_has_role",
            InventoryTable::Members => "sys_user_grmember",
        }
    }

    pub fn from_source(table: &str) -> Option<InventoryTable> {
        InventoryTable::ALL
            .into_iter()
            .find(|t| t.source() == table)
    }

    fn fields(self) -> &'static str {
        match self {
            InventoryTable::Users => "sys_id,user_name,first_name,last_name,email,active,locked_out,web_service_access_only,last_login_time,sys_updated_on",
            InventoryTable::Roles => "sys_id,name,elevated_privilege,sys_updated_on",
            InventoryTable::Groups => "sys_id,name,active,sys_updated_on",
            InventoryTable::Grants => "sys_id,user,role,inherited,state,sys_updated_on",
            InventoryTable::Members => "sys_id,user,group,sys_updated_on",
        }
    }
}

/// One account as kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub sys_id: String,
    pub user_name: String,
    pub name: String,
    pub email: Option<String>,
    pub active: bool,
    pub locked_out: bool,
    pub web_service_only: bool,
    /// RFC 3339.
    pub last_login_at: Option<String>,
}

/// One record of an inventory table, typed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum InventoryRecord {
    User(UserRecord),
    Role {
        sys_id: String,
        name: String,
        elevated: bool,
    },
    Group {
        sys_id: String,
        name: String,
    },
    /// A role held by a user (`inherited` through a group or a role).
    Grant {
        sys_id: String,
        user: String,
        role: String,
        inherited: bool,
    },
    Member {
        sys_id: String,
        user: String,
        group: String,
    },
}

/// One table's page, to upsert, and where its cursor moves.
#[derive(Debug)]
pub struct InventoryPage {
    pub table: InventoryTable,
    pub records: Vec<InventoryRecord>,
    pub cursor: Option<Key>,
    /// The table is read up to now.
    pub done: bool,
}

/// A sync: which tables are still behind and from where.
#[derive(Clone, Debug)]
pub struct InventorySync {
    /// Per table: the key to read after, `None` once the table is done.
    after: Vec<(InventoryTable, Option<Key>)>,
    page: u32,
}

fn after_query(after: &Key) -> String {
    let order = "^ORDERBYsys_updated_on^ORDERBYsys_id";
    if after.created_on.is_empty() {
        return order.trim_start_matches('^').to_string();
    }
    if after.sys_id.is_empty() {
        format!("sys_updated_on>={}{order}", after.created_on)
    } else {
        format!(
            "sys_updated_on={t}^sys_id>{id}^NQsys_updated_on>{t}{order}",
            t = after.created_on,
            id = after.sys_id
        )
    }
}

impl InventorySync {
    /// A sync from the stored cursors (absent: read the table whole).
    pub fn new(stored: &[(InventoryTable, Option<Key>)]) -> InventorySync {
        let after = InventoryTable::ALL
            .into_iter()
            .map(|t| {
                let start = match stored
                    .iter()
                    .find(|(s, _)| *s == t)
                    .and_then(|(_, k)| k.as_ref())
                {
                    Some(k) => match parse_servicenow_time(&k.created_on) {
                        Some(at) => Key {
                            created_on: servicenow_time(at - OVERLAP_SECS),
                            sys_id: String::new(),
                        },
                        None => Key::default(),
                    },
                    None => Key::default(),
                };
                (t, Some(start))
            })
            .collect();
        InventorySync { after, page: PAGE }
    }

    pub fn with_page(mut self, page: u32) -> Self {
        self.page = page.max(1);
        self
    }

    pub fn done(&self) -> bool {
        self.after.iter().all(|(_, k)| k.is_none())
    }

    /// The next call: a Batch API request with the next page of every table
    /// still behind, or `None` when all are current.
    pub fn request(&self, instance: &InstanceUrl, auth: &ApiAuth) -> Option<HttpRequest> {
        let limit = self.page.to_string();
        let items: Vec<batch::BatchItem> = self
            .after
            .iter()
            .filter_map(|(t, k)| {
                let k = k.as_ref()?;
                Some((
                    t.source().to_string(),
                    table::table_path(
                        t.source(),
                        &[
                            ("sysparm_query", &after_query(k)),
                            ("sysparm_fields", t.fields()),
                            ("sysparm_limit", &limit),
                            ("sysparm_exclude_reference_link", "true"),
                            ("sysparm_no_count", "true"),
                        ],
                    ),
                ))
            })
            .collect();
        (!items.is_empty()).then(|| batch::request(instance, auth, "inventory", &items))
    }

    /// Reads the answer: one page per table asked for. A refusal of the
    /// whole call is a problem; a table the user may not read is skipped
    /// for this sync (its records stay as last read).
    pub fn handle(&mut self, resp: &HttpResponse, now: i64) -> Result<Vec<InventoryPage>, Problem> {
        if resp.status != 200 || is_html(resp) {
            return Err(classify_failure(resp, "the inventory read", now));
        }
        let items = batch::parse(resp).ok_or_else(|| {
            Problem::with_context(
                ProblemCode::NotServicenow,
                "The Batch API answer could not be read.",
            )
        })?;
        let mut pages = Vec::new();
        for (t, after) in self.after.iter_mut() {
            let Some(current) = after.clone() else {
                continue;
            };
            let Some((_, r)) = items.iter().find(|(id, _)| id == t.source()) else {
                continue;
            };
            if r.status == 401 || r.status == 429 || is_html(r) {
                return Err(classify_failure(r, "the inventory read", now));
            }
            let rows = match r.status {
                200 => rows(r),
                404 => Some(Vec::new()),
                _ => None,
            };
            let Some(rows) = rows else {
                // Not readable now: leave the table for the next sync.
                *after = None;
                continue;
            };
            let records: Vec<InventoryRecord> =
                rows.iter().filter_map(|row| record(*t, row)).collect();
            let last = rows.last().and_then(|row| {
                Some(Key {
                    created_on: text(row, "sys_updated_on")?,
                    sys_id: text(row, "sys_id")?,
                })
            });
            let done = (rows.len() as u32) < self.page;
            let cursor = last
                .clone()
                .or_else(|| (!current.created_on.is_empty()).then_some(current));
            *after = if done { None } else { last.clone() };
            pages.push(InventoryPage {
                table: *t,
                records,
                cursor: if done { cursor } else { last },
                done,
            });
        }
        Ok(pages)
    }
}

type Row = Map<String, Value>;

fn rows(r: &HttpResponse) -> Option<Vec<Row>> {
    #[derive(Deserialize)]
    struct Page {
        result: Vec<Row>,
    }
    serde_json::from_slice::<Page>(&r.body)
        .ok()
        .map(|p| p.result)
}

fn flag(row: &Row, field: &str) -> bool {
    text(row, field).is_some_and(|v| v == "true" || v == "1")
}

fn record(t: InventoryTable, row: &Row) -> Option<InventoryRecord> {
    let sys_id = text(row, "sys_id")?;
    Some(match t {
        InventoryTable::Users => {
            let first = text(row, "first_name").unwrap_or_default();
            let last = text(row, "last_name").unwrap_or_default();
            InventoryRecord::User(UserRecord {
                user_name: text(row, "user_name")?,
                name: format!("{first} {last}").trim().to_string(),
                email: text(row, "email"),
                active: flag(row, "active"),
                locked_out: flag(row, "locked_out"),
                web_service_only: flag(row, "web_service_access_only"),
                last_login_at: text(row, "last_login_time")
                    .and_then(|t| parse_servicenow_time(&t))
                    .map(crate::clock::rfc3339),
                sys_id,
            })
        }
        InventoryTable::Roles => InventoryRecord::Role {
            name: text(row, "name")?,
            elevated: flag(row, "elevated_privilege"),
            sys_id,
        },
        InventoryTable::Groups => InventoryRecord::Group {
            name: text(row, "name")?,
            sys_id,
        },
        InventoryTable::Grants => {
            // A grant whose state is not active (pending, requested) gives nothing yet.
            if text(row, "state").is_some_and(|s| s != "active") {
                return None;
            }
            InventoryRecord::Grant {
                user: text(row, "user")?,
                role: text(row, "role")?,
                inherited: flag(row, "inherited"),
                sys_id,
            }
        }
        InventoryTable::Members => InventoryRecord::Member {
            user: text(row, "user")?,
            group: text(row, "group")?,
            sys_id,
        },
    })
}

/// A record an event says was deleted from an inventory table (role
/// revocations, deleted users, left groups): `(table, sys_id)`.
pub fn deleted_record(e: &Event) -> Option<(InventoryTable, String)> {
    if e.source_table != "sys_audit_delete" {
        return None;
    }
    if !matches!(
        e.kind,
        Kind::RoleRevoked | Kind::UserDeleted | Kind::RecordDeleted
    ) {
        return None;
    }
    let target = e.target.as_ref()?;
    let table = InventoryTable::from_source(target.table.as_deref()?)?;
    Some((table, target.record.clone()?))
}

/// Whether a set of role names (and their elevated flags) makes an account
/// privileged.
pub fn privileged<'a>(roles: impl IntoIterator<Item = (&'a str, bool)>) -> bool {
    roles
        .into_iter()
        .any(|(name, elevated)| elevated || PRIVILEGED_ROLES.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn item(id: &str, status: u16, rows: Vec<Value>) -> Value {
        let raw = serde_json::to_vec(&serde_json::json!({ "result": rows })).unwrap();
        serde_json::json!({"id": id, "status_code": status, "headers": [],
            "body": base64::engine::general_purpose::STANDARD.encode(raw)})
    }

    fn answer(items: Vec<Value>) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&serde_json::json!({ "serviced_requests": items })).unwrap(),
        }
    }

    fn instance() -> InstanceUrl {
        crate::instance_url::parse("acme", &Default::default()).unwrap()
    }

    fn auth() -> ApiAuth {
        ApiAuth::Bearer(crate::secret::Secret::new("t"))
    }

    fn queries(req: &HttpRequest) -> Vec<(String, String)> {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        body["rest_requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let url = r["url"].as_str().unwrap();
                let q = form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
                    .find(|(k, _)| k == "sysparm_query")
                    .map(|(_, v)| v.into_owned())
                    .unwrap();
                (r["id"].as_str().unwrap().to_string(), q)
            })
            .collect()
    }

    fn user(id: &str, name: &str, updated: &str) -> Value {
        serde_json::json!({"sys_id": id, "user_name": name, "first_name": "A", "last_name": "B", "active": "true", "locked_out": "false", "web_service_access_only": "false", "last_login_time": "2026-01-02 03:04:05", "sys_updated_on": updated})
    }

    #[test]
    fn a_first_sync_reads_every_table_whole_then_pages_on_by_key() {
        let mut sync = InventorySync::new(&[]).with_page(2);
        let req = sync.request(&instance(), &auth()).unwrap();
        let q = queries(&req);
        assert_eq!(q.len(), 5);
        assert!(
            q.iter()
                .all(|(_, q)| q == "ORDERBYsys_updated_on^ORDERBYsys_id"),
            "{q:?}"
        );
        let pages = sync
            .handle(
                &answer(vec![
                    item("sys_user", 200, vec![user("u1", "ann", "2026-01-01 00:00:00"), user("u2", "bob", "2026-01-01 00:00:00")]),
                    item("sys_user_role", 200, vec![serde_json::json!({"sys_id": "r1", "name": "security_admin", "elevated_privilege": "true", "sys_updated_on": "2025-01-01 00:00:00"})]),
                    item("sys_user_group", 200, vec![]),
                    item("sys_user_has_role", 200, vec![serde_json::json!({"sys_id": "g1", "user": "u1", "role": {"value": "r1", "link": "x"}, "inherited": "false", "state": "active", "sys_updated_on": "2025-01-01 00:00:00"})]),
                    item("sys_user_grmember", 403, vec![]),
                ]),
                0,
            )
            .unwrap();
        let users = pages
            .iter()
            .find(|p| p.table == InventoryTable::Users)
            .unwrap();
        assert!(!users.done, "a full page: more to read");
        assert_eq!(users.records.len(), 2);
        let InventoryRecord::User(ann) = &users.records[0] else {
            panic!()
        };
        assert_eq!(ann.last_login_at.as_deref(), Some("2026-01-02T03:04:05Z"));
        let grants = pages
            .iter()
            .find(|p| p.table == InventoryTable::Grants)
            .unwrap();
        assert_eq!(
            grants.records,
            vec![InventoryRecord::Grant {
                sys_id: "g1".into(),
                user: "u1".into(),
                role: "r1".into(),
                inherited: false
            }]
        );
        assert!(
            pages.iter().all(|p| p.table != InventoryTable::Members),
            "an unreadable table is left for later"
        );
        // Only the users are still behind, after their last key.
        let next = queries(&sync.request(&instance(), &auth()).unwrap());
        assert_eq!(next, vec![("sys_user".to_string(), "sys_updated_on=2026-01-01 00:00:00^sys_id>u2^NQsys_updated_on>2026-01-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id".to_string())]);
        sync.handle(&answer(vec![item("sys_user", 200, vec![])]), 0)
            .unwrap();
        assert!(sync.done());
        assert!(sync.request(&instance(), &auth()).is_none());
    }

    #[test]
    fn a_later_sync_starts_the_overlap_before_each_cursor() {
        let stored = [(
            InventoryTable::Users,
            Some(Key {
                created_on: "2026-01-01 00:10:00".into(),
                sys_id: "u9".into(),
            }),
        )];
        let sync = InventorySync::new(&stored);
        let q = queries(&sync.request(&instance(), &auth()).unwrap());
        let users = q.iter().find(|(id, _)| id == "sys_user").unwrap();
        assert_eq!(
            users.1,
            "sys_updated_on>=2026-01-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id"
        );
    }

    #[test]
    fn a_refused_call_is_a_problem_and_privilege_is_by_role() {
        let mut sync = InventorySync::new(&[]);
        let refused = HttpResponse {
            status: 401,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"error":{"message":"User Not Authenticated"}}"#.to_vec(),
        };
        assert!(sync
            .handle(&refused, 0)
            .unwrap_err()
            .is(ProblemCode::CredentialsRejected));
        assert!(privileged([("itil", false), ("admin", false)]));
        assert!(privileged([("custom_elevated", true)]));
        assert!(!privileged([("itil", false)]));
    }
}
