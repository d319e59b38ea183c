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

use crate::http::HttpResponse;
use crate::problem::{Problem, ProblemCode};
use crate::pull::cursor::Key;
use crate::pull::events::{parse_servicenow_time, servicenow_time, text, Event, Kind};
use crate::servicenow::answers::{classify_failure, error_message};
use crate::servicenow::batch;
use crate::servicenow::table;

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

/// One table's page, to upsert, and where its cursor moves (`None`: it
/// stays where it is).
#[derive(Debug)]
pub struct InventoryPage {
    pub table: InventoryTable,
    pub records: Vec<InventoryRecord>,
    pub cursor: Option<TableCursor>,
    /// The table is read up to now.
    pub done: bool,
}

/// A table's place, as kept between syncs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCursor {
    #[serde(flatten)]
    pub key: Key,
    /// Read to its end at this key: the next sync starts `OVERLAP_SECS`
    /// before it, for late commits. Otherwise the read stopped mid-table
    /// (its budget ran out) and the next sync goes on from the key exactly,
    /// so a table with more changes in the overlap than a slice reads still
    /// moves on. Cursors kept before this flag read as done.
    #[serde(default = "read_to_end")]
    pub done: bool,
}

fn read_to_end() -> bool {
    true
}

/// A sync: which tables are still behind and from where.
#[derive(Clone, Debug)]
pub struct InventorySync {
    /// Per table: the key to read after, `None` once the table is done.
    after: Vec<(InventoryTable, Option<Key>)>,
    page: u32,
    /// Every table was read to its end before: this sync reads only what
    /// changed since (its overlap), a small answer.
    was_current: bool,
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
    pub fn new(stored: &[(InventoryTable, Option<TableCursor>)]) -> InventorySync {
        let was_current = InventoryTable::ALL.into_iter().all(|t| {
            stored
                .iter()
                .any(|(s, c)| *s == t && c.as_ref().is_some_and(|c| c.done))
        });
        let after = InventoryTable::ALL
            .into_iter()
            .map(|t| {
                let start = match stored
                    .iter()
                    .find(|(s, _)| *s == t)
                    .and_then(|(_, c)| c.as_ref())
                {
                    Some(c) if !c.done => c.key.clone(),
                    Some(c) => match parse_servicenow_time(&c.key.created_on) {
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
        InventorySync {
            after,
            page: PAGE,
            was_current,
        }
    }

    pub fn with_page(mut self, page: u32) -> Self {
        self.page = page.max(1);
        self
    }

    /// Records per table and call, smaller once the instance cancelled a
    /// page (keep it for the next sync).
    pub fn page(&self) -> u32 {
        self.page
    }

    pub fn done(&self) -> bool {
        self.after.iter().all(|(_, k)| k.is_none())
    }

    /// The next reads: the next page of every table still behind, in one
    /// Batch API call or one call each; `None` when all are current.
    pub fn reads(&self, route: batch::ReadRoute) -> Option<batch::Reads> {
        let items = self.items();
        (!items.is_empty()).then(|| batch::Reads::new("inventory", items, route))
    }

    /// The reads a pull's Batch API call may carry
    /// (`PullRun::with_inventory_reads`): only once every table was read to
    /// its end, so the answers are what changed since (small, but up to a
    /// page per table after a bulk change; a table first found empty or
    /// refused is read whole again, a full page once it fills: an answer
    /// over the cap makes the sync call on its own). A first sync, or one
    /// still behind, makes its own calls.
    pub fn riding_items(&self) -> Vec<batch::BatchItem> {
        if self.was_current {
            self.items()
        } else {
            Vec::new()
        }
    }

    /// The reads of `reads`, as batch items.
    fn items(&self) -> Vec<batch::BatchItem> {
        let limit = self.page.to_string();
        self.after
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
            .collect()
    }

    /// Reads the answers (`Reads::answers`): one page per table served. A
    /// refusal of the whole call, or a refused token, rate limit or web
    /// page on any read, is a problem; a table the user may not read is
    /// skipped for this sync (its records stay as last read); a table not
    /// served stays behind for the next call.
    pub fn handle(
        &mut self,
        answered: Result<Vec<(String, HttpResponse)>, HttpResponse>,
        now: i64,
    ) -> Result<Vec<InventoryPage>, Problem> {
        // A refusal, a rate limit, an outage or a web page on any read
        // holds for the others: the sync ends there. Only a table the user
        // may not read (403) or that is absent is passed over.
        let items = batch::served(answered, "the inventory read", now, cancelled)?;
        // A page the instance cancelled (its transaction quota) is asked
        // again smaller, as a pull's is; the other tables' pages stand.
        if let Some((_, r)) = items.iter().find(|(_, r)| cancelled(r)) {
            match crate::pull::cursor::smaller_page(self.page) {
                Some(smaller) => self.page = smaller,
                None => return Err(classify_failure(r, "the inventory read", now)),
            }
        }
        let mut pages = Vec::new();
        for (t, after) in self.after.iter_mut() {
            let Some(current) = after.clone() else {
                continue;
            };
            let Some((_, r)) = items.iter().find(|(id, _)| id == t.source()) else {
                continue;
            };
            if cancelled(r) {
                // Behind still: read again with the smaller page.
                continue;
            }
            let rows = match r.status {
                200 => rows(r),
                404 => Some(Vec::new()),
                _ => None,
            };
            // A table never read before that is empty or not readable is
            // read to its end all the same: kept as such, later syncs are
            // syncs of what changed (and ride in a pull's call).
            let never_read = current == Key::default();
            let Some(rows) = rows else {
                // Not readable now: leave the table for the next sync.
                *after = None;
                if never_read {
                    pages.push(InventoryPage {
                        table: *t,
                        records: Vec::new(),
                        cursor: Some(TableCursor {
                            key: Key::default(),
                            done: true,
                        }),
                        done: true,
                    });
                }
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
            *after = if done { None } else { last.clone() };
            let cursor = match last {
                Some(key) => Some(TableCursor { key, done }),
                // Nothing after an exact key it went on from: read to the
                // end there. Nothing after an overlap's start: the stored
                // cursor stands (moving it back would drift a little
                // further back at every sync).
                None if done && (never_read || !current.sys_id.is_empty()) => Some(TableCursor {
                    key: current,
                    done: true,
                }),
                None => None,
            };
            pages.push(InventoryPage {
                table: *t,
                records,
                cursor,
                done,
            });
        }
        Ok(pages)
    }
}

/// How a sync before a pull ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncEnd {
    /// Every table is read up to now.
    Current,
    /// The slice's budget ran out (or a delete stopped it) with pages left.
    Behind,
    /// The token (or the user name and password) was refused.
    Refused,
    /// A rate limit: ServiceNow asked to wait this long (0: it did not say).
    Throttled { wait_secs: u64 },
    /// The instance answered with its hibernation page.
    Hibernating,
    /// Another failure: an error, an outage, no answer.
    Failed,
}

impl SyncEnd {
    /// How a sync that met `problem` ended.
    pub fn from_problem(problem: &Problem) -> SyncEnd {
        if problem.is(ProblemCode::CredentialsRejected) {
            SyncEnd::Refused
        } else if problem.is(ProblemCode::RateLimited) {
            SyncEnd::Throttled {
                wait_secs: problem.retry_after.unwrap_or(0),
            }
        } else if problem.is(ProblemCode::InstanceHibernating) {
            SyncEnd::Hibernating
        } else {
            SyncEnd::Failed
        }
    }
}

/// Since when the inventory has been behind, after a sync that ended
/// `synced`: kept from the first sync that was not current, cleared by the
/// next that is.
pub fn behind_since(kept: Option<i64>, synced: SyncEnd, now: i64) -> Option<i64> {
    match synced {
        SyncEnd::Current => None,
        _ => Some(kept.unwrap_or(now)),
    }
}

/// Longest a pull waits for the inventory to be read up to now. Past it,
/// pages are judged with what is known, and each run says so, rather than
/// no event being stored at all.
pub const WAIT_FOR_INVENTORY_SECS: i64 = 1_800;
/// A failed sync is tried again this much later (with the pull it holds),
/// or half as long as the inventory has been behind if that is longer, so a
/// long outage is asked about less and less often.
pub const INVENTORY_RETRY_SECS: i64 = 15;

/// Whether a pull may judge pages now: the rules that ask who is an admin
/// or an inactive account need the inventory read up to the pull, or an
/// impersonated admin planted in the backfill is judged against an
/// inventory that does not know the admin yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventoryGate {
    /// Read up to now: pull.
    Current,
    /// Not yet: no page is read; the next slice syncs again at `retry_at`.
    Wait { retry_at: i64 },
    /// Behind since `since`, longer than the wait: pull anyway, and say so.
    Stale { since: i64 },
}

/// The gate, from the sync just made and since when the inventory has been
/// behind (the first sync that was not current, kept by the caller). A
/// refused token and a hibernating instance are the run's to handle first
/// (a refresh; the hibernation's own wait); here they wait as failures do.
pub fn gate(synced: SyncEnd, behind_since: Option<i64>, now: i64) -> InventoryGate {
    if synced == SyncEnd::Current {
        return InventoryGate::Current;
    }
    let since = behind_since.unwrap_or(now);
    let backoff = (now.saturating_sub(since) / 2).max(INVENTORY_RETRY_SECS);
    // A rate limit is waited out even past the wait: pulling at once would
    // only meet it again.
    if let SyncEnd::Throttled { wait_secs } = synced {
        let asked = wait_secs.min(crate::servicenow::answers::MAX_RETRY_AFTER_SECS) as i64;
        return InventoryGate::Wait {
            retry_at: now.saturating_add(backoff.max(asked)),
        };
    }
    if now - since >= WAIT_FOR_INVENTORY_SECS {
        return InventoryGate::Stale { since };
    }
    InventoryGate::Wait {
        retry_at: match synced {
            SyncEnd::Behind => now,
            _ => now.saturating_add(backoff),
        },
    }
}

/// The instance cancelled the query at its transaction quota.
fn cancelled(r: &HttpResponse) -> bool {
    r.status >= 500 && error_message(r).is_some_and(|m| m.contains("Transaction cancelled"))
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
    use crate::http::HttpRequest;
    use crate::servicenow::instance_url::InstanceUrl;
    use crate::servicenow::table::ApiAuth;
    use base64::Engine;

    fn item(id: &str, status: u16, rows: Vec<Value>) -> Value {
        let raw = serde_json::to_vec(&serde_json::json!({ "result": rows })).unwrap();
        serde_json::json!({"id": id, "status_code": status, "headers": [],
            "body": base64::engine::general_purpose::STANDARD.encode(raw)})
    }

    /// The answers of a served Batch API call, as `Reads` gives them.
    fn served(resp: HttpResponse) -> Result<Vec<(String, HttpResponse)>, HttpResponse> {
        let mut reads = batch::Reads::new(
            "inventory",
            vec![("x".into(), "/x".into())],
            batch::ReadRoute::Batch,
        );
        reads.handle(resp);
        reads.answers()
    }

    fn request(sync: &InventorySync) -> Option<HttpRequest> {
        sync.reads(batch::ReadRoute::Batch)?
            .next_request(&instance(), &auth())
    }

    fn answer(items: Vec<Value>) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&serde_json::json!({ "serviced_requests": items })).unwrap(),
        }
    }

    fn instance() -> InstanceUrl {
        crate::servicenow::instance_url::parse("acme", &Default::default()).unwrap()
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
        let req = request(&sync).unwrap();
        let q = queries(&req);
        assert_eq!(q.len(), 5);
        assert!(
            q.iter()
                .all(|(_, q)| q == "ORDERBYsys_updated_on^ORDERBYsys_id"),
            "{q:?}"
        );
        let pages = sync
            .handle(
                served(answer(vec![
                    item("sys_user", 200, vec![user("u1", "ann", "2026-01-01 00:00:00"), user("u2", "bob", "2026-01-01 00:00:00")]),
                    item("sys_user_role", 200, vec![serde_json::json!({"sys_id": "r1", "name": "security_admin", "elevated_privilege": "true", "sys_updated_on": "2025-01-01 00:00:00"})]),
                    item("sys_user_group", 200, vec![]),
                    item("sys_user_has_role", 200, vec![serde_json::json!({"sys_id": "g1", "user": "u1", "role": {"value": "r1", "link": "x"}, "inherited": "false", "state": "active", "sys_updated_on": "2025-01-01 00:00:00"})]),
                    item("sys_user_grmember", 403, vec![]),
                ])),
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
        // An unreadable table changes no record; never read before, it is
        // kept as read to its end (so later syncs ride in a pull's call),
        // from the start again.
        let members = pages
            .iter()
            .find(|p| p.table == InventoryTable::Members)
            .unwrap();
        assert!(members.records.is_empty());
        assert_eq!(
            members.cursor,
            Some(TableCursor {
                key: Key::default(),
                done: true
            })
        );
        // Only the users are still behind, after their last key.
        let next = queries(&request(&sync).unwrap());
        assert_eq!(next, vec![("sys_user".to_string(), "sys_updated_on=2026-01-01 00:00:00^sys_id>u2^NQsys_updated_on>2026-01-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id".to_string())]);
        sync.handle(served(answer(vec![item("sys_user", 200, vec![])])), 0)
            .unwrap();
        assert!(sync.done());
        assert!(request(&sync).is_none());
    }

    #[test]
    fn a_later_sync_starts_the_overlap_before_each_cursor() {
        // A cursor kept by an earlier release (a bare key) reads as done.
        let kept: TableCursor =
            serde_json::from_str(r#"{"created_on":"2026-01-01 00:10:00","sys_id":"u9"}"#).unwrap();
        assert!(kept.done);
        let stored = [(InventoryTable::Users, Some(kept.clone()))];
        let sync = InventorySync::new(&stored);
        let q = queries(&request(&sync).unwrap());
        let users = q.iter().find(|(id, _)| id == "sys_user").unwrap();
        assert_eq!(
            users.1,
            "sys_updated_on>=2026-01-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id"
        );
        // A read stopped mid-table goes on from its key exactly: a table
        // with more changes in the overlap than one slice reads moves on.
        let mid = TableCursor {
            done: false,
            ..kept
        };
        let mut sync = InventorySync::new(&[(InventoryTable::Users, Some(mid))]).with_page(2);
        let q = queries(&request(&sync).unwrap());
        let users = q.iter().find(|(id, _)| id == "sys_user").unwrap();
        assert_eq!(
            users.1,
            "sys_updated_on=2026-01-01 00:10:00^sys_id>u9^NQsys_updated_on>2026-01-01 00:10:00^ORDERBYsys_updated_on^ORDERBYsys_id"
        );
        // Nothing after it: read to the end at that key, the overlap next.
        let pages = sync
            .handle(served(answer(vec![item("sys_user", 200, vec![])])), 0)
            .unwrap();
        let users = pages
            .iter()
            .find(|p| p.table == InventoryTable::Users)
            .unwrap();
        assert_eq!(
            users.cursor,
            Some(TableCursor {
                key: Key {
                    created_on: "2026-01-01 00:10:00".into(),
                    sys_id: "u9".into()
                },
                done: true
            })
        );
        // An overlap that finds nothing leaves the stored cursor as it is.
        let mut sync = InventorySync::new(&stored);
        let pages = sync
            .handle(served(answer(vec![item("sys_user", 200, vec![])])), 0)
            .unwrap();
        assert_eq!(
            pages
                .iter()
                .find(|p| p.table == InventoryTable::Users)
                .unwrap()
                .cursor,
            None
        );
    }

    #[test]
    fn only_a_sync_of_what_changed_since_rides_in_a_pulls_call() {
        let kept: TableCursor =
            serde_json::from_str(r#"{"created_on":"2026-01-01 00:10:00","sys_id":"u9"}"#).unwrap();
        let all_read: Vec<_> = InventoryTable::ALL
            .into_iter()
            .map(|t| (t, Some(kept.clone())))
            .collect();
        let riding = InventorySync::new(&all_read).riding_items();
        assert_eq!(riding.len(), InventoryTable::ALL.len());
        // A first sync, a table never read, or one stopped mid-table: its
        // pages are whole, so it calls on its own.
        assert!(InventorySync::new(&[]).riding_items().is_empty());
        assert!(InventorySync::new(&all_read[1..]).riding_items().is_empty());
        // A table first read empty, or refused, counts as read to its end.
        let mut first = InventorySync::new(&[]);
        let answers: Vec<_> = InventoryTable::ALL
            .into_iter()
            .map(|t| match t {
                InventoryTable::Groups => item(t.source(), 403, vec![]),
                _ => item(t.source(), 200, vec![]),
            })
            .collect();
        let pages = first.handle(served(answer(answers)), 0).unwrap();
        let firsts: Vec<_> = pages.iter().map(|p| (p.table, p.cursor.clone())).collect();
        assert_eq!(firsts.len(), InventoryTable::ALL.len());
        assert!(firsts
            .iter()
            .all(|(_, c)| c.as_ref().is_some_and(|c| c.done)));
        assert_eq!(
            InventorySync::new(&firsts).riding_items().len(),
            InventoryTable::ALL.len()
        );
        let mut behind = all_read.clone();
        behind[0].1 = Some(TableCursor {
            done: false,
            ..kept
        });
        assert!(InventorySync::new(&behind).riding_items().is_empty());
    }

    #[test]
    fn a_pull_waits_for_the_inventory_but_not_for_ever() {
        let t = 1_000_000;
        assert_eq!(
            gate(SyncEnd::Current, Some(t - 99_999), t),
            InventoryGate::Current
        );
        // Pages left: the next slice goes on at once; a failure waits.
        assert_eq!(
            gate(SyncEnd::Behind, None, t),
            InventoryGate::Wait { retry_at: t }
        );
        assert_eq!(
            gate(SyncEnd::Failed, None, t),
            InventoryGate::Wait {
                retry_at: t + INVENTORY_RETRY_SECS
            }
        );
        assert_eq!(behind_since(Some(t - 60), SyncEnd::Failed, t), Some(t - 60));
        assert_eq!(behind_since(None, SyncEnd::Behind, t), Some(t));
        assert_eq!(behind_since(Some(t - 60), SyncEnd::Current, t), None);
        // A long outage is asked about less and less often.
        assert_eq!(
            gate(SyncEnd::Failed, Some(t - 600), t),
            InventoryGate::Wait { retry_at: t + 300 }
        );
        // A rate limit's own wait wins when longer.
        assert_eq!(
            gate(SyncEnd::Throttled { wait_secs: 120 }, None, t),
            InventoryGate::Wait { retry_at: t + 120 }
        );
        let limited = crate::servicenow::answers::classify_failure(
            &HttpResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "120".into())],
                body: b"{}".to_vec(),
            },
            "the inventory read",
            t,
        );
        assert_eq!(
            SyncEnd::from_problem(&limited),
            SyncEnd::Throttled { wait_secs: 120 }
        );
        // Behind for the whole wait: pages are judged, and the run says so.
        let since = t - WAIT_FOR_INVENTORY_SECS;
        assert_eq!(
            gate(SyncEnd::Failed, Some(since), t),
            InventoryGate::Stale { since }
        );
    }

    #[test]
    fn without_a_batch_api_each_table_is_its_own_call_with_the_same_pages() {
        let mut sync = InventorySync::new(&[]).with_page(2);
        let mut reads = sync.reads(batch::ReadRoute::OneByOne).unwrap();
        let mut paths = Vec::new();
        while let Some(req) = reads.next_request(&instance(), &auth()) {
            let table = req
                .url
                .split("/table/")
                .nth(1)
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string();
            let rows = match table.as_str() {
                "sys_user" => vec![user("u1", "ann", "2026-01-01 00:00:00")],
                _ => vec![],
            };
            paths.push(table);
            reads.handle(HttpResponse {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: serde_json::to_vec(&serde_json::json!({ "result": rows })).unwrap(),
            });
        }
        assert_eq!(paths.len(), 5, "{paths:?}");
        let pages = sync.handle(reads.answers(), 0).unwrap();
        assert_eq!(pages.len(), 5);
        assert!(pages.iter().all(|p| p.done));
        assert!(sync.done());
        // A rate limit on the second table is the sync's problem.
        let mut sync = InventorySync::new(&[]);
        let mut reads = sync.reads(batch::ReadRoute::OneByOne).unwrap();
        reads.handle(HttpResponse {
            status: 200,
            headers: vec![],
            body: br#"{"result":[]}"#.to_vec(),
        });
        reads.handle(HttpResponse {
            status: 429,
            headers: vec![],
            body: b"{}".to_vec(),
        });
        assert!(reads.next_request(&instance(), &auth()).is_none());
        assert!(sync.handle(reads.answers(), 0).is_err());
        assert!(!sync.done());
    }

    #[test]
    fn a_cancelled_page_is_read_again_smaller_and_an_outage_is_a_problem() {
        let mut sync = InventorySync::new(&[]).with_page(1000);
        let cancelled = serde_json::json!({"id": "sys_user_has_role", "status_code": 500, "headers": [],
            "body": base64::engine::general_purpose::STANDARD.encode(br#"{"error":{"message":"Transaction cancelled: maximum execution time exceeded"}}"#)});
        let pages = sync
            .handle(
                served(answer(vec![
                    item(
                        "sys_user",
                        200,
                        vec![user("u1", "ann", "2026-01-01 00:00:00")],
                    ),
                    cancelled,
                ])),
                0,
            )
            .unwrap();
        assert_eq!(sync.page(), 500);
        assert!(pages
            .iter()
            .any(|p| p.table == InventoryTable::Users && p.done));
        assert!(pages.iter().all(|p| p.table != InventoryTable::Grants));
        let next = queries(&request(&sync).unwrap());
        assert!(
            next.iter().any(|(id, _)| id == "sys_user_has_role"),
            "the grants are still behind"
        );
        // Another 5xx is the instance failing: the sync ends, nothing is
        // taken as read.
        let mut sync = InventorySync::new(&[]);
        let failed = sync.handle(
            served(answer(vec![item("sys_user_grmember", 503, vec![])])),
            0,
        );
        assert!(failed.is_err());
        assert!(!sync.done());
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
            .handle(Err(refused), 0)
            .unwrap_err()
            .is(ProblemCode::CredentialsRejected));
        assert!(privileged([("itil", false), ("admin", false)]));
        assert!(privileged([("custom_elevated", true)]));
        assert!(!privileged([("itil", false)]));
    }
}
