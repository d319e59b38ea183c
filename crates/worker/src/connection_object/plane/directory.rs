//! The account directory (users, roles, groups, grants) the inventory
//! keeps, the accounts API's reads of it, and the detector's view of it.

use serde::{Deserialize, Serialize};
use snc_core::clock::parse_rfc3339;
use snc_core::watch::detect::{Directory, Person, RoleInfo};
use snc_core::watch::inventory::{privileged, InventoryPage, InventoryRecord, InventoryTable};
use worker::{Result, SqlStorageValue as V};

use super::{int, opt_text, text, Plane};

/// What the accounts API asks for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AccountsQuery {
    pub role: Option<String>,
    pub active: Option<bool>,
    /// (user_name, sys_id) to continue after.
    pub after: Option<(String, String)>,
    pub limit: u32,
}

/// One account as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub sys_id: String,
    pub user_name: String,
    pub name: String,
    pub email: Option<String>,
    pub active: bool,
    pub locked_out: bool,
    pub web_service_only: bool,
    pub last_login_at: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub privileged: bool,
}

/// The rules' questions, answered from the inventory and the posture's
/// property ids.
impl Directory for Plane {
    fn person(&self, user: &str) -> Option<Person> {
        #[derive(Deserialize)]
        struct Row {
            sys_id: String,
            user_name: String,
            #[serde(deserialize_with = "snc_core::stored::flag")]
            active: bool,
            #[serde(deserialize_with = "snc_core::stored::flag")]
            locked_out: bool,
            last_login_at: Option<String>,
            previous_login_at: Option<String>,
        }
        let row: Row = self
            .sql
            .exec(
                "SELECT sys_id, user_name, active, locked_out, last_login_at, previous_login_at FROM inv_users WHERE user_name = ?1 OR sys_id = ?1 LIMIT 1",
                vec![text(user)],
            )
            .ok()?
            .to_array::<Row>()
            .ok()?
            .into_iter()
            .next()?;
        #[derive(Deserialize)]
        struct Held {
            name: String,
            #[serde(deserialize_with = "snc_core::stored::flag")]
            elevated: bool,
        }
        let held: Vec<Held> = self
            .sql
            .exec(
                "SELECT r.name AS name, r.elevated AS elevated FROM inv_grants g JOIN inv_roles r ON r.sys_id = g.role WHERE g.user = ?",
                vec![text(&row.sys_id)],
            )
            .ok()?
            .to_array()
            .ok()?;
        Some(Person {
            privileged: privileged(held.iter().map(|h| (h.name.as_str(), h.elevated))),
            user_name: row.user_name,
            active: row.active,
            locked_out: row.locked_out,
            last_login: row.last_login_at.as_deref().and_then(parse_rfc3339),
            login_before: row.previous_login_at.as_deref().and_then(parse_rfc3339),
        })
    }

    fn role(&self, role: &str) -> Option<RoleInfo> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
            #[serde(deserialize_with = "snc_core::stored::flag")]
            elevated: bool,
        }
        let row: Row = self
            .sql
            .exec(
                "SELECT name, elevated FROM inv_roles WHERE name = ?1 OR sys_id = ?1 LIMIT 1",
                vec![text(role)],
            )
            .ok()?
            .to_array::<Row>()
            .ok()?
            .into_iter()
            .next()?;
        Some(RoleInfo {
            name: row.name,
            elevated: row.elevated,
        })
    }

    fn grantee(&self, grant: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Row {
            user_name: String,
        }
        self.sql
            .exec(
                "SELECT u.user_name AS user_name FROM inv_grants g JOIN inv_users u ON u.sys_id = g.user WHERE g.sys_id = ?",
                vec![text(grant)],
            )
            .ok()?
            .to_array::<Row>()
            .ok()?
            .into_iter()
            .next()
            .map(|r| r.user_name)
    }

    fn property(&self, sys_id: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
        }
        self.sql
            .exec(
                "SELECT name FROM properties WHERE sys_id = ?",
                vec![text(sys_id)],
            )
            .ok()?
            .to_array::<Row>()
            .ok()?
            .into_iter()
            .next()
            .map(|r| r.name)
    }
}

impl Plane {
    /// Keeps since when the inventory has been behind (core's
    /// `inventory::behind_since`) after a sync that ended `synced`.
    pub fn inventory_behind_since(
        &self,
        synced: snc_core::watch::inventory::SyncEnd,
        now: i64,
    ) -> Result<Option<i64>> {
        const KEY: &str = "inventory_behind_since";
        let kept = self.meta(KEY)?.and_then(|v| v.parse().ok());
        let since = snc_core::watch::inventory::behind_since(kept, synced, now);
        match since {
            Some(at) if kept != Some(at) => self.set_meta(KEY, &at.to_string())?,
            Some(_) => {}
            None => {
                self.sql
                    .exec("DELETE FROM meta WHERE k = ?", vec![text(KEY)])?;
            }
        }
        Ok(since)
    }

    /// Each inventory table's cursor (none: never read).
    pub fn inventory_cursors(
        &self,
    ) -> Result<
        Vec<(
            InventoryTable,
            Option<snc_core::watch::inventory::TableCursor>,
        )>,
    > {
        let mut out = Vec::new();
        for t in InventoryTable::ALL {
            let key = self
                .meta(&format!("inv:{}", t.source()))?
                .and_then(|v| serde_json::from_str(&v).ok());
            out.push((t, key));
        }
        Ok(out)
    }

    /// Adds what an object made before it lacks: `previous_login_at`, the
    /// `last_login_time` a sync replaced (the dormant account rule's).
    pub(super) fn upgrade_directory(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct Column {
            name: String,
        }
        let columns: Vec<Column> = self
            .sql
            .exec("SELECT name FROM pragma_table_info('inv_users')", None)?
            .to_array()?;
        if !columns.iter().any(|c| c.name == "previous_login_at") {
            self.sql.exec(
                "ALTER TABLE inv_users ADD COLUMN previous_login_at TEXT",
                None,
            )?;
        }
        Ok(())
    }

    /// Upserts one page of an inventory table and moves its cursor, in one
    /// step (no await between); a record read again unchanged (the sync
    /// re-reads its overlap every pull) writes no row.
    pub fn store_inventory_page(&self, page: &InventoryPage) -> Result<()> {
        let flag = |b: bool| int(i64::from(b));
        for r in &page.records {
            match r {
                InventoryRecord::User(u) => self.sql.exec(
                    "INSERT INTO inv_users (sys_id, user_name, name, email, active, locked_out, web_service_only, last_login_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sys_id) DO UPDATE SET user_name = excluded.user_name, name = excluded.name, email = excluded.email, active = excluded.active, locked_out = excluded.locked_out, web_service_only = excluded.web_service_only, last_login_at = excluded.last_login_at, previous_login_at = CASE WHEN excluded.last_login_at IS NOT last_login_at AND last_login_at IS NOT NULL THEN last_login_at ELSE previous_login_at END WHERE (user_name, name, email, active, locked_out, web_service_only, last_login_at) IS NOT (excluded.user_name, excluded.name, excluded.email, excluded.active, excluded.locked_out, excluded.web_service_only, excluded.last_login_at)",
                    vec![text(&u.sys_id), text(&u.user_name), text(&u.name), opt_text(u.email.as_deref()), flag(u.active), flag(u.locked_out), flag(u.web_service_only), opt_text(u.last_login_at.as_deref())],
                )?,
                InventoryRecord::Role { sys_id, name, elevated } => self.sql.exec(
                    "INSERT INTO inv_roles (sys_id, name, elevated) VALUES (?, ?, ?) ON CONFLICT (sys_id) DO UPDATE SET name = excluded.name, elevated = excluded.elevated WHERE (name, elevated) IS NOT (excluded.name, excluded.elevated)",
                    vec![text(sys_id), text(name), flag(*elevated)],
                )?,
                InventoryRecord::Group { sys_id, name } => self.sql.exec(
                    "INSERT INTO inv_groups (sys_id, name) VALUES (?, ?) ON CONFLICT (sys_id) DO UPDATE SET name = excluded.name WHERE name IS NOT excluded.name",
                    vec![text(sys_id), text(name)],
                )?,
                InventoryRecord::Grant { sys_id, user, role, inherited } => self.sql.exec(
                    "INSERT INTO inv_grants (sys_id, user, role, inherited) VALUES (?, ?, ?, ?) ON CONFLICT (sys_id) DO UPDATE SET user = excluded.user, role = excluded.role, inherited = excluded.inherited WHERE (user, role, inherited) IS NOT (excluded.user, excluded.role, excluded.inherited)",
                    vec![text(sys_id), text(user), text(role), flag(*inherited)],
                )?,
                InventoryRecord::Member { sys_id, user, group } => self.sql.exec(
                    "INSERT INTO inv_members (sys_id, user, grp) VALUES (?, ?, ?) ON CONFLICT (sys_id) DO UPDATE SET user = excluded.user, grp = excluded.grp WHERE (user, grp) IS NOT (excluded.user, excluded.grp)",
                    vec![text(sys_id), text(user), text(group)],
                )?,
            };
        }
        if let Some(cursor) = &page.cursor {
            self.set_meta(
                &format!("inv:{}", page.table.source()),
                &serde_json::to_string(cursor)?,
            )?;
        }
        Ok(())
    }

    pub fn inventory_delete(&self, table: InventoryTable, sys_id: &str) -> Result<()> {
        let sql_table = match table {
            InventoryTable::Users => "inv_users",
            InventoryTable::Roles => "inv_roles",
            InventoryTable::Groups => "inv_groups",
            InventoryTable::Grants => "inv_grants",
            InventoryTable::Members => "inv_members",
        };
        self.sql.exec(
            &format!("DELETE FROM {sql_table} WHERE sys_id = ?"),
            vec![text(sys_id)],
        )?;
        if table == InventoryTable::Users {
            self.sql
                .exec("DELETE FROM inv_grants WHERE user = ?", vec![text(sys_id)])?;
            self.sql
                .exec("DELETE FROM inv_members WHERE user = ?", vec![text(sys_id)])?;
        }
        Ok(())
    }

    /// A page of accounts in (user_name, sys_id) order, with their roles
    /// and groups.
    pub fn accounts(&self, q: &AccountsQuery) -> Result<Vec<Account>> {
        #[derive(Deserialize)]
        struct UserRow {
            sys_id: String,
            user_name: String,
            name: String,
            email: Option<String>,
            #[serde(deserialize_with = "snc_core::stored::flag")]
            active: bool,
            #[serde(deserialize_with = "snc_core::stored::flag")]
            locked_out: bool,
            #[serde(deserialize_with = "snc_core::stored::flag")]
            web_service_only: bool,
            last_login_at: Option<String>,
        }
        let (after_name, after_id) = q.after.clone().unwrap_or_default();
        let users: Vec<UserRow> = self
            .sql
            .exec(
                "SELECT sys_id, user_name, name, email, active, locked_out, web_service_only, last_login_at FROM inv_users u \
                 WHERE (u.user_name, u.sys_id) > (?1, ?2) \
                 AND (?3 IS NULL OR u.active = ?3) \
                 AND (?4 IS NULL OR EXISTS (SELECT 1 FROM inv_grants g JOIN inv_roles r ON r.sys_id = g.role WHERE g.user = u.sys_id AND r.name = ?4)) \
                 ORDER BY u.user_name, u.sys_id LIMIT ?5",
                vec![
                    text(&after_name),
                    text(&after_id),
                    q.active.map_or(V::Null, |a| int(i64::from(a))),
                    opt_text(q.role.as_deref()),
                    int(i64::from(q.limit)),
                ],
            )?
            .to_array()?;
        let ids =
            serde_json::to_string(&users.iter().map(|u| u.sys_id.as_str()).collect::<Vec<_>>())?;
        #[derive(Deserialize)]
        struct Held {
            user: String,
            name: String,
            #[serde(deserialize_with = "snc_core::stored::flag")]
            elevated: bool,
        }
        let roles: Vec<Held> = self
            .sql
            .exec(
                "SELECT DISTINCT g.user AS user, r.name AS name, r.elevated AS elevated FROM inv_grants g JOIN inv_roles r ON r.sys_id = g.role WHERE g.user IN (SELECT value FROM json_each(?)) ORDER BY r.name",
                vec![text(&ids)],
            )?
            .to_array()?;
        #[derive(Deserialize)]
        struct InGroup {
            user: String,
            name: String,
        }
        let groups: Vec<InGroup> = self
            .sql
            .exec(
                "SELECT DISTINCT m.user AS user, g.name AS name FROM inv_members m JOIN inv_groups g ON g.sys_id = m.grp WHERE m.user IN (SELECT value FROM json_each(?)) ORDER BY g.name",
                vec![text(&ids)],
            )?
            .to_array()?;
        Ok(users
            .into_iter()
            .map(|u| {
                let held: Vec<&Held> = roles.iter().filter(|r| r.user == u.sys_id).collect();
                Account {
                    privileged: privileged(held.iter().map(|r| (r.name.as_str(), r.elevated))),
                    roles: held.iter().map(|r| r.name.clone()).collect(),
                    groups: groups
                        .iter()
                        .filter(|g| g.user == u.sys_id)
                        .map(|g| g.name.clone())
                        .collect(),
                    user_name: u.user_name,
                    name: u.name,
                    email: u.email,
                    active: u.active,
                    locked_out: u.locked_out,
                    web_service_only: u.web_service_only,
                    last_login_at: u.last_login_at,
                    sys_id: u.sys_id,
                }
            })
            .collect())
    }

    pub fn remember_properties(
        &self,
        ids: &std::collections::HashMap<String, String>,
    ) -> Result<()> {
        for (sys_id, name) in ids {
            self.sql.exec(
                "INSERT OR REPLACE INTO properties (sys_id, name) VALUES (?, ?)",
                vec![text(sys_id), text(name)],
            )?;
        }
        Ok(())
    }
}
