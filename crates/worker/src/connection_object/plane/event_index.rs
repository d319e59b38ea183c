//! The event index: each table's cursor, the archived pages, one row per
//! archive member (core's `pull::index`), the recent keys the overlap's
//! duplicate check reads, the count, and what retention drops.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use worker::{Result, SqlStorageValue as V};

use snc_core::pull::cursor::Key;
use snc_core::pull::index::{self, IndexedEvent, RecentKeys, Trim};
use snc_core::pull::run::StoredCursor;

use super::{int, text, Plane};
use crate::d1::connections::Progress;

pub use snc_core::pull::archive::Order;

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

/// One member a read may open: where it lies in the archive and its range.
#[derive(Clone, Deserialize)]
pub struct MemberSpot {
    pub key: String,
    /// The page's member offsets (`archive::member_range`).
    pub offsets: String,
    pub page: i64,
    pub member: i64,
    pub first_at: i64,
    pub last_at: i64,
}

impl MemberSpot {
    /// The member's first line in its page.
    pub fn first_line(&self) -> usize {
        usize::try_from(self.member).unwrap_or(0) * snc_core::pull::archive::LINES_PER_MEMBER
    }
}

/// One archived page, to index.
pub struct StoredPage<'a> {
    pub source_table: &'a str,
    pub key: &'a str,
    pub bytes: usize,
    pub members: &'a str,
    pub entries: Vec<IndexedEvent<'a>>,
    /// The page's recent keys (`index::recent_keys`).
    pub recent: Option<RecentKeys>,
    pub cursor: Option<(&'a str, &'a str)>,
    /// Recent keys of this table older than this go (`index::keys_floor`).
    pub keys_floor: Option<i64>,
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

impl IndexQuery {
    /// The oldest second the answer may hold.
    pub fn lower(&self) -> Option<i64> {
        match (self.from, self.not_before) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Which members a read wants, in its order: those whose range meets
/// `[lower, upper)` and whose lists may hold the kind and the actor.
pub struct MemberFilter<'a> {
    pub lower: Option<i64>,
    pub upper: i64,
    pub kind: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub order: Order,
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

    /// The sys_ids of `table`'s events a run may read again (the overlap).
    pub fn recent_keys(&self, table: &str) -> Result<HashSet<String>> {
        #[derive(Deserialize)]
        struct Row {
            keys: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT keys FROM recent_keys WHERE source_table = ?",
                vec![text(table)],
            )?
            .to_array()?;
        let mut out = HashSet::new();
        for row in rows {
            let ids: Vec<String> = serde_json::from_str(&row.keys)?;
            out.extend(ids);
        }
        Ok(out)
    }

    /// Indexes one archived page with its cursor, synchronously (one commit).
    /// Returns the number of events new to the index.
    pub fn store_page(&self, p: &StoredPage<'_>) -> Result<u64> {
        let inserted = self.index_page(p.source_table, p.key, p.bytes, p.members, &p.entries)?;
        if let Some(keys) = &p.recent {
            self.keep_keys(p.source_table, p.key, keys)?;
        }
        if let Some(floor) = p.keys_floor {
            self.write(
                "DELETE FROM recent_keys WHERE source_table = ? AND last_at < ?",
                vec![text(p.source_table), int(floor)],
            )?;
        }
        let (t, s) = p
            .cursor
            .map(|(t, s)| (text(t), text(s)))
            .unwrap_or((V::Null, V::Null));
        let total = p.backfill_total.map_or(V::Null, |n| int(n as i64));
        self.write(
            "INSERT INTO cursors (source_table, created_on, sys_id, backfill_total, caught_up, page_size, read_at) VALUES (?1, ?2, ?3, coalesce(?4, 0), ?5, ?6, ?7) \
             ON CONFLICT (source_table) DO UPDATE SET created_on = coalesce(excluded.created_on, cursors.created_on), sys_id = coalesce(excluded.sys_id, cursors.sys_id), \
             backfill_total = coalesce(?4, cursors.backfill_total), caught_up = max(cursors.caught_up, excluded.caught_up), page_size = excluded.page_size, \
             read_at = CASE WHEN excluded.created_on IS NULL THEN cursors.read_at ELSE excluded.read_at END \
             WHERE (coalesce(excluded.created_on, cursors.created_on), coalesce(excluded.sys_id, cursors.sys_id), coalesce(?4, cursors.backfill_total), max(cursors.caught_up, excluded.caught_up), excluded.page_size, CASE WHEN excluded.created_on IS NULL THEN cursors.read_at ELSE excluded.read_at END) \
             IS NOT (cursors.created_on, cursors.sys_id, cursors.backfill_total, cursors.caught_up, cursors.page_size, cursors.read_at)",
            vec![text(p.source_table), t, s, total, int(i64::from(p.caught_up)), int(i64::from(p.page_size)), int(p.read_at)],
        )?;
        Ok(inserted)
    }

    /// A page's recent keys, as one row.
    pub fn keep_keys(&self, source_table: &str, key: &str, keys: &RecentKeys) -> Result<()> {
        self.write(
            "INSERT OR REPLACE INTO recent_keys (page, source_table, last_at, keys) SELECT id, ?2, ?3, ?4 FROM pages WHERE key = ?1",
            vec![text(key), text(source_table), int(keys.last_at), V::String(serde_json::to_string(&keys.sys_ids)?)],
        )?;
        Ok(())
    }

    /// The page row and the member rows of one archived object, and the
    /// count. Returns the number of events new to the index: none when the
    /// page was stored before (the same key is the same events).
    pub fn index_page(
        &self,
        source_table: &str,
        key: &str,
        bytes: usize,
        members: &str,
        entries: &[IndexedEvent<'_>],
    ) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        let known: Vec<Id> = self
            .sql
            .exec("SELECT id FROM pages WHERE key = ?", vec![text(key)])?
            .to_array()?;
        if !known.is_empty() {
            return Ok(0);
        }
        let first = entries.iter().map(|e| e.occurred_at).min().unwrap_or(0);
        let last = entries.iter().map(|e| e.occurred_at).max().unwrap_or(0);
        self.write(
            "INSERT INTO pages (key, source_table, first_at, last_at, events, bytes, members) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![text(key), text(source_table), int(first), int(last), int(entries.len() as i64), int(bytes as i64), text(members)],
        )?;
        let page: Vec<Id> = self
            .sql
            .exec("SELECT id FROM pages WHERE key = ?", vec![text(key)])?
            .to_array()?;
        let page = page.first().map(|r| r.id).unwrap_or(0);
        // The first time it was stored (forwarding starts a new sink after it).
        self.write(
            "INSERT OR IGNORE INTO page_stored (page, at) VALUES (?, CAST(strftime('%s', 'now') AS INTEGER))",
            vec![int(page)],
        )?;
        type Row = (u32, i64, i64, u32, String, Option<String>, Option<String>);
        let rows: Vec<Row> = index::member_rows(entries)
            .into_iter()
            .map(|m| {
                (
                    m.member,
                    m.first_at,
                    m.last_at,
                    m.events,
                    m.kinds,
                    m.actors,
                    m.actor_filter,
                )
            })
            .collect();
        self.write(
            "INSERT OR REPLACE INTO members (page, member, first_at, last_at, events, kinds, actors, actor_filter) \
             SELECT ?1, value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6 FROM json_each(?2)",
            vec![int(page), V::String(serde_json::to_string(&rows)?)],
        )?;
        let span = rows.iter().map(|r| r.2 - r.1).max().unwrap_or(0);
        self.widen_span(span)?;
        self.add_count(entries.len() as i64)?;
        Ok(entries.len() as u64)
    }

    /// The widest member's span (`last_at - first_at`): a read bounds its
    /// walk of the keyed table with it (`members`). Written only when it grows.
    fn widen_span(&self, span: i64) -> Result<()> {
        self.write(
            "INSERT INTO meta (k, v) VALUES ('member_span', ?1) ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE CAST(meta.v AS INTEGER) < CAST(excluded.v AS INTEGER)",
            vec![int(span)],
        )?;
        Ok(())
    }

    /// `None` when never written: no bound.
    fn member_span(&self) -> Result<Option<i64>> {
        Ok(self
            .meta("member_span")?
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as i64))
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
        self.write(
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

    /// Up to `n` members the filter wants, in its order, after `after` (the
    /// last one of the previous call).
    pub fn members(
        &self,
        f: &MemberFilter<'_>,
        after: Option<&MemberSpot>,
        n: usize,
    ) -> Result<Vec<MemberSpot>> {
        let mut sql = String::from(
            "SELECT p.key, p.members AS offsets, m.page, m.member, m.first_at, m.last_at FROM members m JOIN pages p ON p.id = m.page WHERE m.first_at < ? AND m.last_at >= ?",
        );
        let mut binds = vec![int(f.upper), int(f.lower.unwrap_or(i64::MIN))];
        // No member spans more than the widest: bounds on the key (newest
        // first) and on the first_at index (oldest first) that seek.
        match index::seek_bound(f.order, f.lower, f.upper, self.member_span()?) {
            Some(index::SeekBound::LastBefore(at)) => {
                sql.push_str(" AND m.last_at < ?");
                binds.push(int(at));
            }
            Some(index::SeekBound::FirstFrom(at)) => {
                sql.push_str(" AND m.first_at >= ?");
                binds.push(int(at));
            }
            None => {}
        }
        if let Some(kind) = f.kind {
            sql.push_str(" AND (m.kinds IS NULL OR instr(m.kinds, ?) > 0)");
            binds.push(text(&index::needle(kind)));
        }
        if let Some(actor) = f.actor {
            // Listed, or in the filter, or neither kept (any actor).
            sql.push_str(" AND (instr(m.actors, ?) > 0 OR (m.actor_filter IS NOT NULL");
            binds.push(text(&index::needle(actor)));
            for probe in index::ActorFilter::probes(actor) {
                sql.push_str(" AND instr(?, substr(m.actor_filter, ?, 1)) > 0");
                binds.extend([text(probe.digits), int(i64::from(probe.place))]);
            }
            sql.push_str(") OR (m.actors IS NULL AND m.actor_filter IS NULL))");
        }
        // Keyset order, as the table's key and its index on first_at hold it.
        match (f.order, after) {
            (Order::NewestFirst, Some(a)) => {
                sql.push_str(" AND (m.last_at, m.page, m.member) < (?, ?, ?)");
                binds.extend([int(a.last_at), int(a.page), int(a.member)]);
            }
            (Order::OldestFirst, Some(a)) => {
                sql.push_str(" AND (m.first_at, m.last_at, m.page, m.member) > (?, ?, ?, ?)");
                binds.extend([int(a.first_at), int(a.last_at), int(a.page), int(a.member)]);
            }
            (_, None) => {}
        }
        sql.push_str(match f.order {
            Order::NewestFirst => " ORDER BY m.last_at DESC, m.page DESC, m.member DESC LIMIT ?",
            Order::OldestFirst => {
                " ORDER BY m.first_at ASC, m.last_at ASC, m.page ASC, m.member ASC LIMIT ?"
            }
        });
        binds.push(int(n as i64));
        self.sql.exec(&sql, binds)?.to_array()
    }

    /// Trims the index to the retention; returns how many events went and
    /// the archive objects now wholly past it (their rows are gone; the
    /// caller deletes the objects). Members reaching across the cutoff are
    /// trimmed by `straddling` and `trim_member`.
    pub fn apply_retention(&self, cutoff: i64) -> Result<(u64, Vec<String>)> {
        #[derive(Deserialize)]
        struct Key {
            key: String,
        }
        #[derive(Deserialize)]
        struct Sum {
            n: Option<i64>,
        }
        let gone: Vec<Key> = self
            .sql
            .exec("SELECT key FROM pages WHERE last_at < ?", vec![int(cutoff)])?
            .to_array()?;
        let sum: Vec<Sum> = self
            .sql
            .exec(
                "SELECT sum(events) AS n FROM members WHERE last_at < ?",
                vec![int(cutoff)],
            )?
            .to_array()?;
        let removed = sum.first().and_then(|s| s.n).unwrap_or(0);
        self.sql
            .exec("DELETE FROM members WHERE last_at < ?", vec![int(cutoff)])?;
        if !gone.is_empty() {
            self.sql
                .exec("DELETE FROM pages WHERE last_at < ?", vec![int(cutoff)])?;
            for table in ["page_stored", "recent_keys"] {
                self.sql.exec(
                    &format!("DELETE FROM {table} WHERE page NOT IN (SELECT id FROM pages)"),
                    None,
                )?;
            }
        }
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

    /// Up to `n` members holding events on both sides of the cutoff, oldest
    /// first (after `apply_retention`, every member starting before it).
    pub fn straddling(&self, cutoff: i64, n: usize) -> Result<Vec<MemberSpot>> {
        self.sql
            .exec(
                "SELECT p.key, p.members AS offsets, m.page, m.member, m.first_at, m.last_at FROM members m JOIN pages p ON p.id = m.page \
                 WHERE m.first_at < ?1 ORDER BY m.first_at LIMIT ?2",
                vec![int(cutoff), int(n as i64)],
            )?
            .to_array()
    }

    /// A straddling member's events before the cutoff leave the count, and
    /// the member starts at its oldest event left. Returns how many left.
    pub fn trim_member(&self, m: &MemberSpot, t: &Trim) -> Result<u64> {
        let at = vec![int(m.last_at), int(m.page), int(m.member)];
        match t.first_at {
            Some(first) => self.sql.exec(
                "UPDATE members SET first_at = ?4, events = max(events - ?5, 0) WHERE last_at = ?1 AND page = ?2 AND member = ?3",
                [at, vec![int(first), int(i64::from(t.counted_out))]].concat(),
            )?,
            // Nothing left to read (its object gone): all it counts goes.
            None => {
                #[derive(Deserialize)]
                struct Left {
                    events: i64,
                }
                let left: Vec<Left> = self
                    .sql
                    .exec(
                        "SELECT events FROM members WHERE last_at = ?1 AND page = ?2 AND member = ?3",
                        at.clone(),
                    )?
                    .to_array()?;
                self.sql.exec(
                    "DELETE FROM members WHERE last_at = ?1 AND page = ?2 AND member = ?3",
                    at,
                )?;
                let gone = left.first().map_or(0, |l| l.events).max(0);
                self.add_count(-gone)?;
                return Ok(gone as u64);
            }
        };
        if t.counted_out > 0 {
            self.add_count(-i64::from(t.counted_out))?;
        }
        Ok(u64::from(t.counted_out))
    }

    /// An object whose index kept a row per event (before `members`) moves
    /// to member rows, in one commit: each page's members with the page's
    /// range and no lists (they are opened for any filter until retention
    /// drops them), the overlap's recent keys from the event rows, the
    /// count as the members hold it; the event rows go later, in steps
    /// (`drop_event_rows`). A new object passes through the same statements
    /// with nothing in them.
    pub fn upgrade_index(&self) -> Result<()> {
        if self.meta("index")?.as_deref() == Some("members") {
            return Ok(());
        }
        for stmt in LEGACY_SCHEMA {
            self.sql.exec(stmt, None)?;
        }
        #[derive(Deserialize)]
        struct Page {
            id: i64,
            first_at: i64,
            last_at: i64,
            events: i64,
        }
        let pages: Vec<Page> = self
            .sql
            .exec("SELECT id, first_at, last_at, events FROM pages", None)?
            .to_array()?;
        // 4,000 member rows a statement, built as they go (a large object
        // has millions).
        let mut rows = pages.iter().flat_map(|p| {
            let events = u32::try_from(p.events).unwrap_or(0);
            index::whole_page_members(events).map(move |(m, n)| (p.id, m, p.first_at, p.last_at, n))
        });
        loop {
            let chunk: Vec<(i64, u32, i64, i64, u32)> = rows.by_ref().take(4_000).collect();
            if chunk.is_empty() {
                break;
            }
            self.sql.exec(
                "INSERT OR IGNORE INTO members (page, member, first_at, last_at, events) \
                 SELECT value->>0, value->>1, value->>2, value->>3, value->>4 FROM json_each(?)",
                vec![V::String(serde_json::to_string(&chunk)?)],
            )?;
        }
        for c in self.cursors()? {
            let Some(at) = c
                .created_on
                .as_deref()
                .and_then(snc_core::pull::events::parse_servicenow_time)
            else {
                continue;
            };
            self.sql.exec(
                "INSERT OR REPLACE INTO recent_keys (page, source_table, last_at, keys) \
                 SELECT page, source_table, max(occurred_at), json_group_array(sys_id) FROM events \
                 WHERE source_table = ?1 AND occurred_at >= ?2 GROUP BY page",
                vec![
                    text(&c.source_table),
                    int(index::keys_floor(at, c.read_at.unwrap_or(at))),
                ],
            )?;
        }
        self.sql.exec(
            "INSERT INTO meta (k, v) VALUES ('event_count', (SELECT coalesce(sum(events), 0) FROM members)) \
             ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            None,
        )?;
        let widest = pages
            .iter()
            .map(|p| p.last_at - p.first_at)
            .max()
            .unwrap_or(0);
        self.widen_span(widest)?;
        self.sql.exec("DROP TABLE page_cold", None)?;
        self.sql
            .exec("DELETE FROM meta WHERE k = 'hot_from'", None)?;
        // The event rows go in bounded steps, from the alarm
        // (`drop_event_rows`): nothing reads them any more.
        self.set_meta("index", "members")?;
        self.set_meta("event_rows", "left")
    }

    /// Deletes up to `n` of the row-per-event index's rows an upgrade left
    /// (then the table); true once none is left.
    pub fn drop_event_rows(&self, n: u32) -> Result<bool> {
        if self.meta("event_rows")?.is_none() {
            return Ok(true);
        }
        let deleted = self.sql.exec(
            "DELETE FROM events WHERE (occurred_at, source_table, sys_id) IN (SELECT occurred_at, source_table, sys_id FROM events LIMIT ?)",
            vec![int(i64::from(n))],
        )?;
        deleted.to_array::<serde_json::Value>()?;
        if deleted.rows_written() < n as usize {
            self.sql.exec("DROP TABLE IF EXISTS events", None)?;
            self.sql
                .exec("DELETE FROM meta WHERE k = 'event_rows'", None)?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// The tables of the index that kept a row per event (`upgrade_index`
/// reads them, then drops them).
const LEGACY_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS page_cold (page INTEGER PRIMARY KEY, events INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (occurred_at INTEGER NOT NULL, source_table TEXT NOT NULL, sys_id TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT, page INTEGER NOT NULL, line INTEGER NOT NULL, PRIMARY KEY (occurred_at, source_table, sys_id)) WITHOUT ROWID",
];
