//! The SQL of one connection's Durable Object: its cursors, run history,
//! page index and event index. The object is the only writer, so no leases;
//! statements between two awaits commit together, so a page's index rows,
//! its page row, its cursor and the count land all or nothing.

use serde::{Deserialize, Serialize};
use worker::{Result, SqlStorage, SqlStorageValue as V};

use crate::d1::connections::Progress;
use snc_core::detect::{Alert, Directory, Person, RoleInfo};
use snc_core::inventory::{privileged, InventoryPage, InventoryRecord, InventoryTable};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    // Last record stored per table, in (sys_created_on, sys_id) order, and
    // when the run that stored it started (see core::cursor::resume_start).
    "CREATE TABLE IF NOT EXISTS cursors (source_table TEXT PRIMARY KEY, created_on TEXT, sys_id TEXT, backfill_total INTEGER NOT NULL DEFAULT 0, caught_up INTEGER NOT NULL DEFAULT 0, page_size INTEGER, read_at INTEGER)",
    // One row per archived object; `members` are the gzip members' offsets.
    "CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, source_table TEXT NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL, events INTEGER NOT NULL, bytes INTEGER NOT NULL, members TEXT NOT NULL)",
    // Events of a page no longer in the index (older than the hot window):
    // read from the archive, and counted out when their page goes.
    "CREATE TABLE IF NOT EXISTS page_cold (page INTEGER PRIMARY KEY, events INTEGER NOT NULL)",
    // The event index: what the events API filters and orders by, and where
    // the whole event lies in the archive (page, line). Time-ordered key, so
    // inserts append and the listing needs no second index.
    "CREATE TABLE IF NOT EXISTS events (occurred_at INTEGER NOT NULL, source_table TEXT NOT NULL, sys_id TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT, page INTEGER NOT NULL, line INTEGER NOT NULL, PRIMARY KEY (occurred_at, source_table, sys_id)) WITHOUT ROWID",
    // Every posture check: its score for the history, the whole report for
    // the latest.
    "CREATE TABLE IF NOT EXISTS posture (checked_at INTEGER PRIMARY KEY, score INTEGER NOT NULL, report TEXT NOT NULL)",
    // The inventory: accounts, roles, groups, role grants and group
    // memberships as last read (upserts by sys_id), cursors in `meta`.
    "CREATE TABLE IF NOT EXISTS inv_users (sys_id TEXT PRIMARY KEY, user_name TEXT NOT NULL, name TEXT NOT NULL, email TEXT, active INTEGER NOT NULL, locked_out INTEGER NOT NULL, web_service_only INTEGER NOT NULL, last_login_at TEXT)",
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

/// Runs kept in the health history.
const RUNS_KEPT: i64 = 500;
/// Posture is checked daily (and at connect, and when asked).
pub const POSTURE_EVERY_SECS: i64 = 86_400;

/// One point of the posture history.
#[derive(Deserialize, Serialize)]
pub struct PosturePoint {
    pub checked_at: i64,
    pub score: i64,
}

pub struct Plane {
    pub(super) sql: SqlStorage,
}

pub use snc_core::archive::Order;

/// An archived page some of whose events are no longer indexed.
#[derive(Deserialize)]
pub struct ColdPage {
    pub key: String,
    pub first_at: i64,
    pub last_at: i64,
}

#[derive(Deserialize)]
pub struct CursorRow {
    pub source_table: String,
    pub created_on: Option<String>,
    pub sys_id: Option<String>,
    pub page_size: Option<i64>,
    pub read_at: Option<i64>,
    #[serde(deserialize_with = "snc_core::stored::flag")]
    pub caught_up: bool,
    pub backfill_total: i64,
}

#[derive(Deserialize, Serialize)]
pub struct RunRow {
    pub started_at: String,
    pub finished_at: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub events: i64,
    pub calls: i64,
    pub statements: i64,
}

/// A cursor row of D1's pre-event-plane `cursors` table.
#[derive(Deserialize)]
pub struct LegacyCursor {
    pub source_table: String,
    pub created_on: Option<String>,
    pub sys_id: Option<String>,
    pub backfill_total: i64,
    #[serde(deserialize_with = "snc_core::stored::flag")]
    pub caught_up: bool,
    pub page_size: Option<i64>,
}

/// One index row and where its event lies.
#[derive(Deserialize)]
pub struct IndexRow {
    pub source_table: String,
    pub sys_id: String,
    pub key: String,
    pub members: String,
    pub line: i64,
}

/// An event's index entry, as a page is stored.
pub struct IndexEntry<'a> {
    pub occurred_at: i64,
    pub sys_id: &'a str,
    pub kind: &'a str,
    pub actor: Option<&'a str>,
}

/// One archived page, to index.
pub struct StoredPage<'a> {
    pub source_table: &'a str,
    pub key: &'a str,
    pub bytes: usize,
    pub members: &'a str,
    pub entries: Vec<IndexEntry<'a>>,
    pub cursor: Option<(&'a str, &'a str)>,
    pub backfill_total: Option<u64>,
    pub caught_up: bool,
    pub page_size: u32,
    pub read_at: i64,
}

/// What the events API asks for; times in unix seconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexQuery {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub kind: Option<String>,
    pub actor: Option<String>,
    /// (occurred_at, source_table, sys_id) to continue after.
    pub after: Option<(i64, String, String)>,
    pub limit: u32,
    pub newest_first: bool,
    /// Nothing older than this is shown (the retention's cutoff).
    pub not_before: Option<i64>,
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

impl Plane {
    /// Opens the object's storage, creating what is missing (a fresh
    /// object, or one whose storage was deleted).
    pub fn open(sql: SqlStorage) -> Result<Plane> {
        for stmt in SCHEMA {
            sql.exec(stmt, None)?;
        }
        Ok(Plane { sql })
    }

    /// A plane whose schema this object instance already created.
    pub fn opened(sql: SqlStorage) -> Plane {
        Plane { sql }
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
        self.sql.exec(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            vec![text(k), text(v)],
        )?;
        Ok(())
    }

    /// The object's clocks (core's `Schedule`); one that does not decode
    /// (written by a later release) makes a pull due, as a new object's.
    pub fn schedule(&self) -> Result<snc_core::schedule::Schedule> {
        Ok(self
            .meta("schedule")?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    pub fn save_schedule(&self, s: &snc_core::schedule::Schedule) -> Result<()> {
        self.set_meta("schedule", &serde_json::to_string(s)?)
    }

    pub fn cursors(&self) -> Result<Vec<CursorRow>> {
        self.sql
            .exec(
                "SELECT source_table, created_on, sys_id, page_size, read_at, caught_up, backfill_total FROM cursors",
                None,
            )?
            .to_array()
    }

    /// Whether the index holds this event (the overlap re-reads records).
    pub fn has_event(&self, occurred_at: i64, table: &str, sys_id: &str) -> Result<bool> {
        let cursor = self.sql.exec(
            "SELECT 1 AS x FROM events WHERE occurred_at = ? AND source_table = ? AND sys_id = ?",
            vec![int(occurred_at), text(table), text(sys_id)],
        )?;
        Ok(cursor.next::<serde_json::Value>().next().is_some())
    }

    /// Indexes one archived page with its cursor, synchronously (one commit).
    /// Returns the number of new index rows.
    pub fn store_page(&self, p: &StoredPage<'_>) -> Result<u64> {
        let inserted = self.index_page(p.source_table, p.key, p.bytes, p.members, &p.entries)?;
        let (t, s) = p
            .cursor
            .map(|(t, s)| (text(t), text(s)))
            .unwrap_or((V::Null, V::Null));
        let total = p.backfill_total.map_or(V::Null, |n| int(n as i64));
        self.sql.exec(
            "INSERT INTO cursors (source_table, created_on, sys_id, backfill_total, caught_up, page_size, read_at) VALUES (?1, ?2, ?3, coalesce(?4, 0), ?5, ?6, ?7) \
             ON CONFLICT (source_table) DO UPDATE SET created_on = coalesce(excluded.created_on, cursors.created_on), sys_id = coalesce(excluded.sys_id, cursors.sys_id), \
             backfill_total = coalesce(?4, cursors.backfill_total), caught_up = max(cursors.caught_up, excluded.caught_up), page_size = excluded.page_size, \
             read_at = CASE WHEN excluded.created_on IS NULL THEN cursors.read_at ELSE excluded.read_at END",
            vec![text(p.source_table), t, s, total, int(i64::from(p.caught_up)), int(i64::from(p.page_size)), int(p.read_at)],
        )?;
        Ok(inserted)
    }

    /// The page row and the index rows of one archived object, and the
    /// count. Returns the number of new index rows.
    pub fn index_page(
        &self,
        source_table: &str,
        key: &str,
        bytes: usize,
        members: &str,
        entries: &[IndexEntry<'_>],
    ) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let first = entries.iter().map(|e| e.occurred_at).min().unwrap_or(0);
        let last = entries.iter().map(|e| e.occurred_at).max().unwrap_or(0);
        self.sql.exec(
            "INSERT INTO pages (key, source_table, first_at, last_at, events, bytes, members) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET first_at = excluded.first_at, last_at = excluded.last_at, events = excluded.events, bytes = excluded.bytes, members = excluded.members",
            vec![text(key), text(source_table), int(first), int(last), int(entries.len() as i64), int(bytes as i64), text(members)],
        )?;
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        let page: Vec<Id> = self
            .sql
            .exec("SELECT id FROM pages WHERE key = ?", vec![text(key)])?
            .to_array()?;
        let page = page.first().map(|r| r.id).unwrap_or(0);
        // The first time it was stored (a rewrite of the same page keeps it).
        self.sql.exec(
            "INSERT OR IGNORE INTO page_stored (page, at) VALUES (?, CAST(strftime('%s', 'now') AS INTEGER))",
            vec![int(page)],
        )?;
        // One statement per 4,000 rows: they cross into SQLite as one JSON
        // array instead of one call (and one argument array) per row, and
        // each bound text stays far under SQLite's 2 MB argument limit.
        let mut inserted = 0u64;
        for (n, chunk) in entries.chunks(4_000).enumerate() {
            let rows: Vec<(i64, &str, &str, Option<&str>)> = chunk
                .iter()
                .map(|e| (e.occurred_at, e.sys_id, e.kind, e.actor))
                .collect();
            inserted += self.write(
                "INSERT OR IGNORE INTO events (occurred_at, source_table, sys_id, kind, actor, page, line) \
                 SELECT value->>0, ?1, value->>1, value->>2, value->>3, ?2, key + ?3 FROM json_each(?4)",
                vec![text(source_table), int(page), int((n * 4_000) as i64), V::String(serde_json::to_string(&rows)?)],
            )? as u64;
        }
        self.add_count(inserted as i64)?;
        Ok(inserted)
    }

    /// A cursor carried over from before the event plane, unless the object
    /// already has one for the table.
    pub fn import_cursor(&self, c: &LegacyCursor) -> Result<()> {
        self.sql.exec(
            "INSERT OR IGNORE INTO cursors (source_table, created_on, sys_id, backfill_total, caught_up, page_size) VALUES (?, ?, ?, ?, ?, ?)",
            vec![text(&c.source_table), c.created_on.as_deref().map_or(V::Null, text), c.sys_id.as_deref().map_or(V::Null, text), int(c.backfill_total), int(i64::from(c.caught_up)), c.page_size.map_or(V::Null, int)],
        )?;
        Ok(())
    }

    /// Runs a write to completion and returns the rows it wrote.
    fn write(&self, stmt: &str, binds: Vec<V>) -> Result<usize> {
        let cursor = self.sql.exec(stmt, binds)?;
        cursor.to_array::<serde_json::Value>()?;
        Ok(cursor.rows_written())
    }

    fn add_count(&self, n: i64) -> Result<()> {
        self.sql.exec(
            "INSERT INTO meta (k, v) VALUES ('event_count', ?1) ON CONFLICT (k) DO UPDATE SET v = CAST(v AS REAL) + ?1",
            vec![int(n)],
        )?;
        Ok(())
    }

    /// A cancellation taught a smaller page size: keep it even if no page of
    /// this table succeeds before the run ends.
    pub fn remember_page_size(&self, table: &str, page_size: u32) -> Result<()> {
        self.sql.exec(
            "INSERT INTO cursors (source_table, page_size) VALUES (?, ?) ON CONFLICT (source_table) DO UPDATE SET page_size = excluded.page_size",
            vec![text(table), int(i64::from(page_size))],
        )?;
        Ok(())
    }

    /// A table's backfill total, asked before its first page (the
    /// progress shows it from the start); its first page stores it again.
    pub fn remember_total(&self, table: &str, total: u64) -> Result<()> {
        self.sql.exec(
            "INSERT INTO cursors (source_table, backfill_total) VALUES (?, ?) ON CONFLICT (source_table) DO UPDATE SET backfill_total = excluded.backfill_total",
            vec![text(table), int(i64::try_from(total).unwrap_or(i64::MAX))],
        )?;
        Ok(())
    }

    pub fn event_count(&self) -> Result<u64> {
        // Bound numbers arrive as JS doubles: the text column holds "600.0".
        #[derive(Deserialize)]
        struct Row {
            n: i64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT CAST(v AS REAL) AS n FROM meta WHERE k = 'event_count'",
                None,
            )?
            .to_array()?;
        Ok(rows.first().map_or(0, |r| r.n).max(0) as u64)
    }

    /// What the connection's row shows of this object, as of `at`.
    pub fn progress(&self, at: i64) -> Result<Progress> {
        Ok(Progress {
            at,
            event_count: self.event_count()?,
            backfill_total: self.backfill_total()?,
        })
    }

    pub fn backfill_total(&self) -> Result<u64> {
        #[derive(Deserialize)]
        struct Row {
            n: Option<i64>,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT sum(backfill_total) AS n FROM cursors", None)?
            .to_array()?;
        Ok(rows.first().and_then(|r| r.n).unwrap_or(0).max(0) as u64)
    }

    pub fn record_run(&self, run: &RunRow) -> Result<()> {
        self.sql.exec(
            "INSERT INTO runs (started_at, finished_at, outcome, detail, events, calls, statements) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![text(&run.started_at), text(&run.finished_at), text(&run.outcome), run.detail.as_deref().map_or(V::Null, text), int(run.events), int(run.calls), int(run.statements)],
        )?;
        self.sql.exec(
            "DELETE FROM runs WHERE id <= (SELECT max(id) FROM runs) - ?",
            vec![int(RUNS_KEPT)],
        )?;
        Ok(())
    }

    pub fn runs(&self, limit: u32) -> Result<Vec<RunRow>> {
        self.sql
            .exec(
                "SELECT started_at, finished_at, outcome, detail, events, calls, statements FROM runs ORDER BY id DESC LIMIT ?",
                vec![int(i64::from(limit))],
            )?
            .to_array()
    }

    /// Index rows matching the query, with where each event lies.
    pub fn events(&self, q: &IndexQuery) -> Result<Vec<IndexRow>> {
        let mut sql = String::from(
            "SELECT e.source_table, e.sys_id, p.key, p.members, e.line FROM events e JOIN pages p ON p.id = e.page WHERE 1",
        );
        let mut binds = Vec::new();
        let lower = match (q.from, q.not_before) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(from) = lower {
            sql.push_str(" AND e.occurred_at >= ?");
            binds.push(int(from));
        }
        if let Some(to) = q.to {
            sql.push_str(" AND e.occurred_at < ?");
            binds.push(int(to));
        }
        if let Some(kind) = &q.kind {
            sql.push_str(" AND e.kind = ?");
            binds.push(text(kind));
        }
        if let Some(actor) = &q.actor {
            sql.push_str(" AND e.actor = ?");
            binds.push(text(actor));
        }
        if let Some((t, table, sys_id)) = &q.after {
            let op = if q.newest_first { "<" } else { ">" };
            sql.push_str(&format!(
                " AND (e.occurred_at, e.source_table, e.sys_id) {op} (?, ?, ?)"
            ));
            binds.extend([int(*t), text(table), text(sys_id)]);
        }
        let dir = if q.newest_first { "DESC" } else { "ASC" };
        sql.push_str(&format!(
            " ORDER BY e.occurred_at {dir}, e.source_table {dir}, e.sys_id {dir} LIMIT ?"
        ));
        binds.push(int(i64::from(q.limit)));
        self.sql.exec(&sql, binds)?.to_array()
    }

    /// Trims the index to the retention; returns how many events went and
    /// the archive objects now wholly past it (their rows are gone; the
    /// caller deletes the objects).
    pub fn apply_retention(&self, cutoff: i64) -> Result<(u64, Vec<String>)> {
        #[derive(Deserialize)]
        struct Key {
            key: String,
        }
        #[derive(Deserialize)]
        struct Cold {
            n: i64,
        }
        let gone: Vec<Key> = self
            .sql
            .exec("SELECT key FROM pages WHERE last_at < ?", vec![int(cutoff)])?
            .to_array()?;
        // Events out of the index leave the count with their page.
        let cold: Vec<Cold> = self
            .sql
            .exec(
                "SELECT coalesce(sum(c.events), 0) AS n FROM page_cold c JOIN pages p ON p.id = c.page WHERE p.last_at < ?",
                vec![int(cutoff)],
            )?
            .to_array()?;
        let removed = self.write(
            "DELETE FROM events WHERE occurred_at < ?",
            vec![int(cutoff)],
        )? as i64
            + cold.first().map_or(0, |c| c.n);
        self.sql
            .exec("DELETE FROM pages WHERE last_at < ?", vec![int(cutoff)])?;
        self.sql.exec(
            "DELETE FROM page_stored WHERE page NOT IN (SELECT id FROM pages)",
            None,
        )?;
        self.sql.exec(
            "DELETE FROM page_cold WHERE page NOT IN (SELECT id FROM pages)",
            None,
        )?;
        self.sql
            .exec("DELETE FROM alert_feed WHERE at < ?", vec![int(cutoff)])?;
        // The posture history follows the retention; the latest check stays.
        self.sql.exec(
            "DELETE FROM posture WHERE checked_at < ? AND checked_at < (SELECT max(checked_at) FROM posture)",
            vec![int(cutoff)],
        )?;
        if removed > 0 {
            self.add_count(-removed)?;
        }
        Ok((
            removed.max(0) as u64,
            gone.into_iter().map(|k| k.key).collect(),
        ))
    }

    /// Where the index starts: events before it (and stored before the last
    /// trim) are only in the archive. `None`: the index holds everything.
    pub fn hot_from(&self) -> Result<Option<i64>> {
        Ok(self
            .meta("hot_from")?
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as i64))
    }

    /// Moves the index's rows older than `cutoff` out (their pages keep
    /// them): the object holds the hot window only, whatever the retention.
    /// The event count is unchanged. Returns how many rows went.
    pub fn trim_hot(&self, cutoff: i64) -> Result<u64> {
        if self.hot_from()?.is_some_and(|h| h >= cutoff) {
            return Ok(0);
        }
        self.sql.exec(
            "INSERT INTO page_cold (page, events) SELECT page, count(*) FROM events WHERE occurred_at < ?1 GROUP BY page \
             ON CONFLICT (page) DO UPDATE SET events = page_cold.events + excluded.events",
            vec![int(cutoff)],
        )?;
        let moved = self.write(
            "DELETE FROM events WHERE occurred_at < ?",
            vec![int(cutoff)],
        )?;
        self.set_meta("hot_from", &cutoff.to_string())?;
        Ok(moved as u64)
    }

    /// The archived pages holding events no longer indexed that may fall in
    /// `[from, to)`, newest first or oldest first.
    pub fn cold_pages(&self, from: Option<i64>, to: i64, order: Order) -> Result<Vec<ColdPage>> {
        let sql = format!(
            "SELECT p.key, p.first_at, p.last_at FROM pages p JOIN page_cold c ON c.page = p.id \
             WHERE p.first_at < ?1 AND p.last_at >= ?2 ORDER BY {}",
            match order {
                Order::NewestFirst => "p.last_at DESC, p.id DESC",
                Order::OldestFirst => "p.first_at ASC, p.id ASC",
            }
        );
        self.sql
            .exec(&sql, vec![int(to), int(from.unwrap_or(i64::MIN))])?
            .to_array()
    }

    pub fn store_posture(&self, checked_at: i64, score: u8, report: &str) -> Result<()> {
        self.sql.exec(
            "INSERT OR REPLACE INTO posture (checked_at, score, report) VALUES (?, ?, ?)",
            vec![int(checked_at), int(i64::from(score)), text(report)],
        )?;
        self.sql
            .exec("DELETE FROM meta WHERE k = 'posture_requested'", None)?;
        Ok(())
    }

    /// The latest report, as stored (JSON).
    pub fn latest_posture(&self) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            report: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT report FROM posture ORDER BY checked_at DESC LIMIT 1",
                None,
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.report))
    }

    /// Scores over time, oldest first.
    pub fn posture_history(&self, limit: u32) -> Result<Vec<PosturePoint>> {
        let mut rows: Vec<PosturePoint> = self
            .sql
            .exec(
                "SELECT checked_at, score FROM posture ORDER BY checked_at DESC LIMIT ?",
                vec![int(i64::from(limit))],
            )?
            .to_array()?;
        rows.reverse();
        Ok(rows)
    }

    pub fn request_posture(&self) -> Result<()> {
        self.set_meta("posture_requested", "1")
    }

    /// Asked for, never checked, or last checked a day ago.
    pub fn posture_due(&self, now: i64) -> Result<bool> {
        if self.meta("posture_requested")?.is_some() {
            return Ok(true);
        }
        let last = self.posture_history(1)?;
        Ok(last
            .first()
            .is_none_or(|p| p.checked_at <= now - POSTURE_EVERY_SECS))
    }

    /// Keeps since when the inventory has been behind (core's
    /// `inventory::behind_since`) after a sync that ended `synced`.
    pub fn inventory_behind_since(
        &self,
        synced: snc_core::inventory::SyncEnd,
        now: i64,
    ) -> Result<Option<i64>> {
        const KEY: &str = "inventory_behind_since";
        let kept = self.meta(KEY)?.and_then(|v| v.parse().ok());
        let since = snc_core::inventory::behind_since(kept, synced, now);
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
    ) -> Result<Vec<(InventoryTable, Option<snc_core::inventory::TableCursor>)>> {
        let mut out = Vec::new();
        for t in InventoryTable::ALL {
            let key = self
                .meta(&format!("inv:{}", t.source()))?
                .and_then(|v| serde_json::from_str(&v).ok());
            out.push((t, key));
        }
        Ok(out)
    }

    /// Upserts one page of an inventory table and moves its cursor, in one
    /// step (no await between).
    pub fn store_inventory_page(&self, page: &InventoryPage) -> Result<()> {
        let flag = |b: bool| int(i64::from(b));
        for r in &page.records {
            match r {
                InventoryRecord::User(u) => self.sql.exec(
                    "INSERT OR REPLACE INTO inv_users (sys_id, user_name, name, email, active, locked_out, web_service_only, last_login_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    vec![text(&u.sys_id), text(&u.user_name), text(&u.name), opt_text(u.email.as_deref()), flag(u.active), flag(u.locked_out), flag(u.web_service_only), opt_text(u.last_login_at.as_deref())],
                )?,
                InventoryRecord::Role { sys_id, name, elevated } => self.sql.exec(
                    "INSERT OR REPLACE INTO inv_roles (sys_id, name, elevated) VALUES (?, ?, ?)",
                    vec![text(sys_id), text(name), flag(*elevated)],
                )?,
                InventoryRecord::Group { sys_id, name } => self.sql.exec(
                    "INSERT OR REPLACE INTO inv_groups (sys_id, name) VALUES (?, ?)",
                    vec![text(sys_id), text(name)],
                )?,
                InventoryRecord::Grant { sys_id, user, role, inherited } => self.sql.exec(
                    "INSERT OR REPLACE INTO inv_grants (sys_id, user, role, inherited) VALUES (?, ?, ?, ?)",
                    vec![text(sys_id), text(user), text(role), flag(*inherited)],
                )?,
                InventoryRecord::Member { sys_id, user, group } => self.sql.exec(
                    "INSERT OR REPLACE INTO inv_members (sys_id, user, grp) VALUES (?, ?, ?)",
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

    /// Queues alerts for D1 (an alert queued twice keeps its latest form).
    pub fn queue_alerts(&self, alerts: &[Alert]) -> Result<()> {
        for a in alerts {
            self.sql.exec(
                "INSERT OR REPLACE INTO alert_outbox (id, alert) VALUES (?, ?)",
                vec![text(&a.id), text(&serde_json::to_string(a)?)],
            )?;
        }
        Ok(())
    }

    pub fn queued_alerts(&self) -> Result<Vec<Alert>> {
        #[derive(Deserialize)]
        struct Row {
            alert: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT alert FROM alert_outbox ORDER BY id LIMIT 200", None)?
            .to_array()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.alert).ok())
            .collect())
    }

    pub fn forget_alerts(&self, alerts: &[Alert]) -> Result<()> {
        for a in alerts {
            self.sql
                .exec("DELETE FROM alert_outbox WHERE id = ?", vec![text(&a.id)])?;
        }
        Ok(())
    }

    pub fn database_size(&self) -> usize {
        self.sql.database_size()
    }
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
        }
        let row: Row = self
            .sql
            .exec(
                "SELECT sys_id, user_name, active, locked_out FROM inv_users WHERE user_name = ?1 OR sys_id = ?1 LIMIT 1",
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
