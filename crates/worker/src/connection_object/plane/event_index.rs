//! The event index: each table's cursor, the archived pages, one row per
//! event of the hot window, the count, and what retention and the hot
//! window drop.

use serde::{Deserialize, Serialize};
use worker::{Result, SqlStorageValue as V};

use snc_core::pull::cursor::Key;
use snc_core::pull::run::StoredCursor;

use super::{int, text, Plane};
use crate::d1::connections::Progress;

pub use snc_core::pull::archive::Order;

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

impl CursorRow {
    /// The cursor as the pull run takes it, with its table.
    pub fn stored(self) -> (String, StoredCursor) {
        let cursor = match (self.created_on, self.sys_id) {
            (Some(created_on), Some(sys_id)) => Some(Key { created_on, sys_id }),
            _ => None,
        };
        let stored = StoredCursor {
            cursor,
            page_size: self.page_size.and_then(|p| u32::try_from(p).ok()),
            read_at: self.read_at,
            caught_up: self.caught_up,
            total: u64::try_from(self.backfill_total).ok().filter(|t| *t > 0),
        };
        (self.source_table, stored)
    }
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

impl Plane {
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
        Ok(self.meta("hot_from")?.and_then(|v| v.parse::<i64>().ok()))
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
}
