//! The SQL of one connection's Durable Object, one file per thing it keeps:
//! the event index (cursors, pages, member rows, recent keys), the run
//! history, posture checks, the account directory, the alert outbox and the
//! sinks' cursors. The object is the only writer, so no leases; statements
//! between two awaits commit together, so a page's member rows, its page
//! row, its recent keys, its cursor and the count land all or nothing.

mod alert_outbox;
mod directory;
mod event_index;
mod posture_checks;
mod run_history;
mod sink_cursors;

pub use directory::{Account, AccountsQuery};
pub use event_index::{IndexQuery, LegacyCursor, MemberFilter, MemberSpot, Order, StoredPage};
pub use posture_checks::PosturePoint;
pub use run_history::RunRow;
pub use sink_cursors::SinkCursor;

use std::cell::Cell;

use serde::Deserialize;
use worker::{Result, SqlStorage, SqlStorageValue as V};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    // Last record stored per table, in (sys_created_on, sys_id) order, and
    // when the run that stored it started (see core::pull::cursor::resume_start).
    "CREATE TABLE IF NOT EXISTS cursors (source_table TEXT PRIMARY KEY, created_on TEXT, sys_id TEXT, backfill_total INTEGER NOT NULL DEFAULT 0, caught_up INTEGER NOT NULL DEFAULT 0, page_size INTEGER, read_at INTEGER)",
    // One row per archived object; `members` are the gzip members' offsets.
    "CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, source_table TEXT NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL, events INTEGER NOT NULL, bytes INTEGER NOT NULL, members TEXT NOT NULL)",
    // The event index: one row per archive member of 256 events (core's
    // pull::index): its time range, the events it still counts, its kinds
    // and its actors packed, or too many of them as a filter (both NULL:
    // any). Keyed for newest-first reads, indexed on first_at for
    // oldest-first ones.
    "CREATE TABLE IF NOT EXISTS members (page INTEGER NOT NULL, member INTEGER NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL, events INTEGER NOT NULL, kinds TEXT, actors TEXT, actor_filter TEXT, PRIMARY KEY (last_at, page, member)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS members_by_first ON members (first_at)",
    // The sys_ids a coming run may read again (the overlap), a row per
    // page, dropped as the table's cursor moves past them.
    "CREATE TABLE IF NOT EXISTS recent_keys (page INTEGER PRIMARY KEY, source_table TEXT NOT NULL, last_at INTEGER NOT NULL, keys TEXT NOT NULL)",
    // Every posture check: its score for the history, the whole report for
    // the latest.
    "CREATE TABLE IF NOT EXISTS posture (checked_at INTEGER PRIMARY KEY, score INTEGER NOT NULL, report TEXT NOT NULL)",
    // The inventory: accounts, roles, groups, role grants and group
    // memberships as last read (upserts by sys_id), cursors in `meta`; an
    // account's `previous_login_at` is the `last_login_at` a sync replaced.
    "CREATE TABLE IF NOT EXISTS inv_users (sys_id TEXT PRIMARY KEY, user_name TEXT NOT NULL, name TEXT NOT NULL, email TEXT, active INTEGER NOT NULL, locked_out INTEGER NOT NULL, web_service_only INTEGER NOT NULL, last_login_at TEXT, previous_login_at TEXT)",
    "CREATE INDEX IF NOT EXISTS inv_users_by_name ON inv_users (user_name, sys_id)",
    "CREATE TABLE IF NOT EXISTS inv_roles (sys_id TEXT PRIMARY KEY, name TEXT NOT NULL, elevated INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inv_groups (sys_id TEXT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inv_grants (sys_id TEXT PRIMARY KEY, user TEXT NOT NULL, role TEXT NOT NULL, inherited INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS inv_grants_by_user ON inv_grants (user)",
    "CREATE TABLE IF NOT EXISTS inv_members (sys_id TEXT PRIMARY KEY, user TEXT NOT NULL, grp TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS inv_members_by_user ON inv_members (user)",
    // The checked properties' sys_ids (sys_audit names a property by it).
    "CREATE TABLE IF NOT EXISTS properties (sys_id TEXT PRIMARY KEY, name TEXT NOT NULL)",
    // Alerts raised with a page, until D1 has them: written in the same step
    // as the page's index, so a failed D1 write loses none.
    "CREATE TABLE IF NOT EXISTS alert_outbox (id TEXT PRIMARY KEY, alert TEXT NOT NULL)",
    // Forwarding (outbox.rs): when each page was stored (a new sink starts
    // after the pages stored before it), the alerts raised here in order,
    // and each sink's cursor over both.
    "CREATE TABLE IF NOT EXISTS page_stored (page INTEGER PRIMARY KEY, at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS alert_feed (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, alert TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sink_cursors (sink_id TEXT PRIMARY KEY, page INTEGER NOT NULL, line INTEGER NOT NULL, alert_seq INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0, failing_since INTEGER, next_at INTEGER NOT NULL DEFAULT 0, replay_at INTEGER NOT NULL DEFAULT 0, replay_after TEXT)",
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT, events INTEGER NOT NULL, calls INTEGER NOT NULL, statements INTEGER NOT NULL)",
];

pub struct Plane {
    pub(super) sql: SqlStorage,
    /// Rows the page writes (`write`) have written since `take_rows_written`.
    rows_written: Cell<u64>,
}

pub(super) fn int(n: i64) -> V {
    V::Integer(n)
}

pub(super) fn text(s: &str) -> V {
    V::String(s.to_string())
}

fn opt_text(s: Option<&str>) -> V {
    s.map_or(V::Null, text)
}

impl Plane {
    /// Opens the object's storage, creating what is missing (a fresh
    /// object, or one whose storage was deleted).
    pub fn open(sql: SqlStorage) -> Result<Plane> {
        for stmt in SCHEMA {
            sql.exec(stmt, None)?;
        }
        let plane = Plane::opened(sql);
        plane.upgrade_index()?;
        plane.upgrade_runs()?;
        plane.upgrade_directory()?;
        Ok(plane)
    }

    /// A plane whose schema this object instance already created.
    pub fn opened(sql: SqlStorage) -> Plane {
        Plane {
            sql,
            rows_written: Cell::new(0),
        }
    }

    /// The rows a page's store wrote (the object's bill), since last asked.
    pub fn take_rows_written(&self) -> u64 {
        self.rows_written.replace(0)
    }

    pub fn meta(&self, k: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            v: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT v FROM meta WHERE k = ?", vec![text(k)])?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.v))
    }

    pub fn set_meta(&self, k: &str, v: &str) -> Result<()> {
        self.write(
            // An unchanged value is not written again (rows written bill).
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE v IS NOT excluded.v",
            vec![text(k), text(v)],
        )?;
        Ok(())
    }

    /// The object's clocks (core's `Schedule`); one that does not decode
    /// (written by a later release) makes a pull due, as a new object's.
    pub fn schedule(&self) -> Result<snc_core::pull::schedule::Schedule> {
        Ok(self
            .meta("schedule")?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    pub fn save_schedule(&self, s: &snc_core::pull::schedule::Schedule) -> Result<()> {
        self.set_meta("schedule", &serde_json::to_string(s)?)
    }

    /// Runs a write to completion and returns the rows it wrote (index
    /// entries included), counted for `take_rows_written`.
    fn write(&self, stmt: &str, binds: Vec<V>) -> Result<usize> {
        let cursor = self.sql.exec(stmt, binds)?;
        cursor.to_array::<serde_json::Value>()?;
        let n = cursor.rows_written();
        self.rows_written.set(self.rows_written.get() + n as u64);
        Ok(n)
    }

    pub fn database_size(&self) -> usize {
        self.sql.database_size()
    }
}
