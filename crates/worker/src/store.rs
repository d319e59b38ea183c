//! All SQL in one place. D1 binds integers as i32 and `undefined` is not NULL,
//! so values go in as strings, f64 or explicit NULL.

use serde::Deserialize;
use snc_core::clock::rfc3339;
use snc_core::connection::{Backfill, Connection, Status, StatusDetail};
use snc_core::preflight::Warning;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Result};

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

fn opt(v: Option<&str>) -> JsValue {
    v.map(JsValue::from_str).unwrap_or(JsValue::NULL)
}

#[derive(Deserialize)]
pub struct ConnectionRow {
    pub id: String,
    pub name: String,
    pub instance_url: String,
    pub username: String,
    pub method: String,
    pub client_id: Option<String>,
    pub enabled: f64,
    pub status: String,
    pub status_code: Option<String>,
    pub status_message: Option<String>,
    pub status_since: Option<String>,
    pub warnings: String,
    pub release: Option<String>,
    pub build: Option<String>,
    pub created_at: String,
    pub last_pull_at: Option<String>,
    pub next_pull_at: Option<String>,
    pub backfill_from: String,
    pub backfill_to: String,
    pub backfill_done: f64,
    pub event_count: f64,
    pub backfill_total: f64,
}

impl ConnectionRow {
    pub fn to_api(&self) -> Connection {
        let status = Status::parse(&self.status).unwrap_or(Status::Error);
        let status_detail = match (status, &self.status_code) {
            (Status::Connected, _) | (_, None) => None,
            (_, Some(code)) => Some(StatusDetail {
                code: code.clone(),
                message: self.status_message.clone().unwrap_or_default(),
                since: self.status_since.clone().unwrap_or_default(),
            }),
        };
        Connection {
            id: self.id.clone(),
            name: self.name.clone(),
            instance_url: self.instance_url.clone(),
            method: self.method.clone(),
            enabled: self.enabled != 0.0,
            status,
            status_detail,
            warnings: serde_json::from_str::<Vec<Warning>>(&self.warnings).unwrap_or_default(),
            release: self.release.clone(),
            build: self.build.clone(),
            created_at: self.created_at.clone(),
            last_pull_at: self.last_pull_at.clone(),
            next_pull_at: self.next_pull_at.clone(),
            backfill: Backfill {
                from: self.backfill_from.clone(),
                to: self.backfill_to.clone(),
                done: self.backfill_done != 0.0,
                events: self.event_count.max(0.0) as u64,
                total: self.backfill_total.max(0.0) as u64,
            },
            event_count: self.event_count.max(0.0) as u64,
        }
    }
}

/// A new connection's row.
pub struct NewConnection<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub instance_url: &'a str,
    pub username: &'a str,
    pub method: &'a str,
    pub client_id: Option<&'a str>,
    pub warnings_json: &'a str,
    pub release: &'a str,
    pub build: &'a str,
    pub now: i64,
    pub backfill_days: i64,
}

/// What a reconnect changes besides the secrets.
pub struct Renewal<'a> {
    pub username: &'a str,
    pub client_id: Option<&'a str>,
    pub warnings_json: &'a str,
    pub release: &'a str,
    pub build: &'a str,
}

/// One sealed secret to store.
pub struct SealedSecret {
    pub kind: &'static str,
    pub key_id: String,
    pub sealed: String,
    pub expires_at: Option<i64>,
}

pub struct Store {
    db: D1Database,
}

const COLUMNS: &str = "id, name, instance_url, username, method, client_id, enabled, status, status_code, status_message, status_since, warnings, release, build, created_at, last_pull_at, next_pull_at, backfill_from, backfill_to, backfill_done, event_count, \
    (SELECT coalesce(sum(backfill_total), 0) FROM cursors WHERE cursors.connection_id = connections.id) AS backfill_total";

impl Store {
    pub fn new(db: D1Database) -> Self {
        Store { db }
    }

    pub async fn list(&self) -> Result<Vec<ConnectionRow>> {
        let q = format!("SELECT {COLUMNS} FROM connections ORDER BY created_at, id");
        self.db.prepare(q).all().await?.results()
    }

    pub async fn get(&self, id: &str) -> Result<Option<ConnectionRow>> {
        let q = format!("SELECT {COLUMNS} FROM connections WHERE id = ?1");
        self.db.prepare(q).bind(&[s(id)])?.first(None).await
    }

    /// The id of a connection with this name, or with this instance and user.
    pub async fn conflicting(
        &self,
        name: Option<&str>,
        instance_url: &str,
        username: &str,
        except_id: Option<&str>,
    ) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let row: Option<Id> = self
            .db
            .prepare("SELECT id FROM connections WHERE (name = ?1 COLLATE NOCASE OR (instance_url = ?2 AND username = ?3)) AND id != ?4 LIMIT 1")
            .bind(&[opt(name), s(instance_url), s(username), s(except_id.unwrap_or(""))])?
            .first(None)
            .await?;
        Ok(row.map(|r| r.id))
    }

    fn secret_statements(
        &self,
        connection_id: &str,
        secrets: &[SealedSecret],
    ) -> Result<Vec<D1PreparedStatement>> {
        let mut out = vec![self
            .db
            .prepare("DELETE FROM connection_secrets WHERE connection_id = ?1")
            .bind(&[s(connection_id)])?];
        for sec in secrets {
            let expires = sec.expires_at.map(rfc3339);
            out.push(
                self.db
                    .prepare("INSERT INTO connection_secrets (connection_id, kind, key_id, sealed, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                    .bind(&[s(connection_id), s(sec.kind), s(&sec.key_id), s(&sec.sealed), opt(expires.as_deref())])?,
            );
        }
        Ok(out)
    }

    /// Inserts the connection and its secrets atomically (one D1 batch).
    pub async fn insert(&self, c: &NewConnection<'_>, secrets: &[SealedSecret]) -> Result<()> {
        let now = rfc3339(c.now);
        let from = rfc3339(c.now - c.backfill_days * 86_400);
        let mut stmts = vec![self
            .db
            .prepare(
                "INSERT INTO connections (id, name, instance_url, username, method, client_id, enabled, status, warnings, release, build, created_at, backfill_from, backfill_to, next_pull_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 'connected', ?7, ?8, ?9, ?10, ?11, ?10, ?10)",
            )
            .bind(&[s(c.id), s(c.name), s(c.instance_url), s(c.username), s(c.method), opt(c.client_id), s(c.warnings_json), s(c.release), s(c.build), s(&now), s(&from)])?];
        stmts.extend(self.secret_statements(c.id, secrets)?);
        self.db.batch(stmts).await?;
        Ok(())
    }

    /// New credentials for an existing connection: secrets replaced, error cleared.
    pub async fn reconnect(
        &self,
        id: &str,
        r: &Renewal<'_>,
        secrets: &[SealedSecret],
    ) -> Result<()> {
        let mut stmts = vec![self
            .db
            .prepare(
                "UPDATE connections SET username = ?2, client_id = ?3, warnings = ?4, release = ?5, build = ?6, \
                 status = CASE WHEN enabled = 1 THEN 'connected' ELSE 'disabled' END, status_code = NULL, status_message = NULL, status_since = NULL WHERE id = ?1",
            )
            .bind(&[s(id), s(r.username), opt(r.client_id), s(r.warnings_json), s(r.release), s(r.build)])?];
        stmts.extend(self.secret_statements(id, secrets)?);
        self.db.batch(stmts).await?;
        Ok(())
    }

    pub async fn rename(&self, id: &str, name: &str) -> Result<()> {
        self.db
            .prepare("UPDATE connections SET name = ?2 WHERE id = ?1")
            .bind(&[s(id), s(name)])?
            .run()
            .await?;
        Ok(())
    }

    /// Disabling keeps any error detail so enabling can restore it.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<()> {
        let q = if enabled {
            "UPDATE connections SET enabled = 1, status = CASE WHEN status_code IS NULL THEN 'connected' ELSE 'error' END WHERE id = ?1"
        } else {
            "UPDATE connections SET enabled = 0, status = 'disabled' WHERE id = ?1"
        };
        self.db.prepare(q).bind(&[s(id)])?.run().await?;
        Ok(())
    }

    /// Removes the connection and everything of it, atomically.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.db
            .batch(vec![
                self.db
                    .prepare("DELETE FROM connection_secrets WHERE connection_id = ?1")
                    .bind(&[s(id)])?,
                self.db
                    .prepare("DELETE FROM connections WHERE id = ?1")
                    .bind(&[s(id)])?,
            ])
            .await?;
        Ok(())
    }
}

// ---- pulls -------------------------------------------------------------

#[derive(Deserialize)]
pub struct SecretRow {
    pub kind: String,
    pub sealed: String,
    pub expires_at: Option<String>,
}

#[derive(Deserialize)]
pub struct CursorRow {
    pub source_table: String,
    pub created_on: Option<String>,
    pub sys_id: Option<String>,
    pub page_size: Option<f64>,
}

#[derive(Deserialize, serde::Serialize)]
pub struct RunRow {
    pub started_at: String,
    pub finished_at: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub events: f64,
    pub calls: f64,
    pub statements: f64,
}

/// One pull run's outcome, for the health history.
pub struct RunRecord<'a> {
    pub started: i64,
    pub finished: i64,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
    pub events: u64,
    pub calls: u32,
    pub statements: usize,
}

/// One stored event row, as the events API reads it.
#[derive(Deserialize)]
pub struct EventRow {
    pub source_table: String,
    pub sys_id: String,
    pub occurred_at: String,
    pub kind: String,
    pub actor: Option<String>,
    pub source_ip: Option<String>,
    pub target_table: Option<String>,
    pub target_record: Option<String>,
    pub target_field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub raw: String,
}

/// Bound JSON strings above ~2.2 MB fail with SQLITE_TOOBIG; stay well under.
const CHUNK_BYTES: usize = 1_500_000;

pub struct EventFilter {
    pub from: Option<String>,
    pub to: Option<String>,
    pub kind: Option<String>,
    pub actor: Option<String>,
    /// (occurred_at, source_table, sys_id) to continue after.
    pub after: Option<(String, String, String)>,
    pub limit: u32,
    pub newest_first: bool,
}

impl Store {
    pub async fn secrets(&self, id: &str) -> Result<Vec<SecretRow>> {
        self.db
            .prepare(
                "SELECT kind, sealed, expires_at FROM connection_secrets WHERE connection_id = ?1",
            )
            .bind(&[s(id)])?
            .all()
            .await?
            .results()
    }

    pub async fn replace_secret(&self, id: &str, sec: &SealedSecret) -> Result<()> {
        let expires = sec.expires_at.map(rfc3339);
        self.db
            .prepare("INSERT INTO connection_secrets (connection_id, kind, key_id, sealed, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (connection_id, kind) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, expires_at = excluded.expires_at")
            .bind(&[s(id), s(sec.kind), s(&sec.key_id), s(&sec.sealed), opt(expires.as_deref())])?
            .run()
            .await?;
        Ok(())
    }

    pub async fn cursors(&self, id: &str) -> Result<Vec<CursorRow>> {
        self.db
            .prepare(
                "SELECT source_table, created_on, sys_id, page_size FROM cursors WHERE connection_id = ?1",
            )
            .bind(&[s(id)])?
            .all()
            .await?
            .results()
    }

    /// Takes the connection's lease unless another live holder has it.
    pub async fn acquire_lease(
        &self,
        id: &str,
        holder: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<bool> {
        let now_v = JsValue::from_f64(now as f64);
        let until = JsValue::from_f64((now + ttl_secs) as f64);
        self.db
            .prepare("INSERT INTO leases (connection_id, holder, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT (connection_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at WHERE leases.expires_at <= ?4")
            .bind(&[s(id), s(holder), until, now_v])?
            .run()
            .await?;
        #[derive(Deserialize)]
        struct H {
            holder: String,
        }
        let h: Option<H> = self
            .db
            .prepare("SELECT holder FROM leases WHERE connection_id = ?1")
            .bind(&[s(id)])?
            .first(None)
            .await?;
        Ok(h.is_some_and(|h| h.holder == holder))
    }

    pub async fn release_lease(&self, id: &str, holder: &str) -> Result<()> {
        self.db
            .prepare("DELETE FROM leases WHERE connection_id = ?1 AND holder = ?2")
            .bind(&[s(id), s(holder)])?
            .run()
            .await?;
        Ok(())
    }

    /// Stores one page: new events (once each), the count of the new ones and
    /// the table's cursor, in one atomic batch. Returns the statements used.
    #[allow(clippy::too_many_arguments)] // one row of the cursors table, spelled out
    pub async fn write_page(
        &self,
        id: &str,
        table: &str,
        rows: &[String],
        cursor: Option<(&str, &str)>,
        backfill_total: Option<u64>,
        caught_up: bool,
        page_size: u32,
    ) -> Result<usize> {
        let mut stmts = Vec::new();
        let push = |json: &str, stmts: &mut Vec<D1PreparedStatement>| -> Result<()> {
            stmts.push(
                self.db
                    // Each reference to json_each's `value` renders the row's JSON text
                    // again (eleven times a row); materialized, it is rendered once and
                    // the `->>` lookups share one parse. A quarter less SQLite time.
                    .prepare("WITH r AS MATERIALIZED (SELECT value AS v FROM json_each(?3)) INSERT OR IGNORE INTO events (connection_id, source_table, sys_id, occurred_at, kind, actor, source_ip, target_table, target_record, target_field, old_value, new_value, raw) SELECT ?1, ?2, v->>0, v->>1, v->>2, v->>3, v->>4, v->>5, v->>6, v->>7, v->>8, v->>9, v->10 FROM r")
                    .bind(&[s(id), s(table), s(json)])?,
            );
            // changes() is the INSERT's count of new rows: duplicates ignored
            // by the unique key are not counted.
            stmts.push(
                self.db
                    .prepare("UPDATE connections SET event_count = event_count + changes() WHERE id = ?1")
                    .bind(&[s(id)])?,
            );
            Ok(())
        };
        // Rows arrive as JSON texts: a chunk is `[row,row,...]`, joined
        // rather than serialized again.
        let mut chunk = String::from("[");
        for row in rows {
            if chunk.len() > 1 && chunk.len() + row.len() + 1 > CHUNK_BYTES {
                chunk.push(']');
                push(&chunk, &mut stmts)?;
                chunk.truncate(1);
            }
            if chunk.len() > 1 {
                chunk.push(',');
            }
            chunk.push_str(row);
        }
        if chunk.len() > 1 {
            chunk.push(']');
            push(&chunk, &mut stmts)?;
        }
        let (t, sid) = cursor
            .map(|(t, s)| (opt(Some(t)), opt(Some(s))))
            .unwrap_or((JsValue::NULL, JsValue::NULL));
        let total = backfill_total
            .map(|n| JsValue::from_f64(n as f64))
            .unwrap_or(JsValue::NULL);
        stmts.push(
            self.db
                .prepare("INSERT INTO cursors (connection_id, source_table, created_on, sys_id, backfill_total, caught_up, page_size) VALUES (?1, ?2, ?3, ?4, coalesce(?5, 0), ?6, ?7) ON CONFLICT (connection_id, source_table) DO UPDATE SET created_on = coalesce(excluded.created_on, cursors.created_on), sys_id = coalesce(excluded.sys_id, cursors.sys_id), backfill_total = coalesce(?5, cursors.backfill_total), caught_up = max(cursors.caught_up, excluded.caught_up), page_size = excluded.page_size")
                .bind(&[s(id), s(table), t, sid, total, JsValue::from_f64(if caught_up { 1.0 } else { 0.0 }), JsValue::from_f64(f64::from(page_size))])?,
        );
        let n = stmts.len();
        self.db.batch(stmts).await?;
        Ok(n)
    }

    /// A cancellation taught a smaller page size: keep it even if no page of
    /// this table succeeds before the run's budget ends.
    pub async fn remember_page_size(&self, id: &str, table: &str, page_size: u32) -> Result<()> {
        self.db
            .prepare("INSERT INTO cursors (connection_id, source_table, page_size) VALUES (?1, ?2, ?3) ON CONFLICT (connection_id, source_table) DO UPDATE SET page_size = excluded.page_size")
            .bind(&[s(id), s(table), JsValue::from_f64(f64::from(page_size))])?
            .run()
            .await?;
        Ok(())
    }

    pub async fn finish_run(
        &self,
        id: &str,
        now: i64,
        next_pull_at: i64,
        backfill_done: bool,
        clear_passing_error: bool,
    ) -> Result<()> {
        let q = "UPDATE connections SET last_pull_at = ?2, next_pull_at = ?3, backfill_done = max(backfill_done, ?4), \
                 status = CASE WHEN ?5 = 1 AND status = 'error' AND status_code = 'instance_hibernating' THEN 'connected' ELSE status END, \
                 status_code = CASE WHEN ?5 = 1 AND status_code = 'instance_hibernating' THEN NULL ELSE status_code END WHERE id = ?1";
        self.db
            .prepare(q)
            .bind(&[
                s(id),
                s(&rfc3339(now)),
                s(&rfc3339(next_pull_at)),
                JsValue::from_f64(if backfill_done { 1.0 } else { 0.0 }),
                JsValue::from_f64(if clear_passing_error { 1.0 } else { 0.0 }),
            ])?
            .run()
            .await?;
        Ok(())
    }

    pub async fn set_error(
        &self,
        id: &str,
        code: &str,
        message: &str,
        now: i64,
        retry_at: Option<i64>,
    ) -> Result<()> {
        self.db
            .prepare("UPDATE connections SET status = CASE WHEN enabled = 1 THEN 'error' ELSE status END, status_code = ?2, status_message = ?3, status_since = coalesce(CASE WHEN status_code = ?2 THEN status_since END, ?4), next_pull_at = ?5 WHERE id = ?1")
            .bind(&[s(id), s(code), s(message), s(&rfc3339(now)), opt(retry_at.map(rfc3339).as_deref())])?
            .run()
            .await?;
        Ok(())
    }

    pub async fn record_run(&self, id: &str, run: &RunRecord<'_>) -> Result<()> {
        self.db
            .prepare("INSERT INTO pull_runs (connection_id, started_at, finished_at, outcome, detail, events, calls, statements) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .bind(&[
                s(id),
                s(&rfc3339(run.started)),
                s(&rfc3339(run.finished)),
                s(run.outcome),
                opt(run.detail),
                JsValue::from_f64(run.events as f64),
                JsValue::from_f64(f64::from(run.calls)),
                JsValue::from_f64(run.statements as f64),
            ])?
            .run()
            .await?;
        Ok(())
    }

    pub async fn runs(&self, id: &str, limit: u32) -> Result<Vec<RunRow>> {
        self.db
            .prepare("SELECT started_at, finished_at, outcome, detail, events, calls, statements FROM pull_runs WHERE connection_id = ?1 ORDER BY id DESC LIMIT ?2")
            .bind(&[s(id), JsValue::from_f64(f64::from(limit))])?
            .all()
            .await?
            .results()
    }

    /// Connections the cron should queue: connected and due, still
    /// backfilling, or waiting out a hibernation.
    pub async fn due(&self, now: i64) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let rows: Vec<Id> = self
            .db
            .prepare("SELECT id FROM connections WHERE enabled = 1 AND (status = 'connected' OR (status = 'error' AND status_code = 'instance_hibernating')) AND (next_pull_at IS NULL OR next_pull_at <= ?1 OR backfill_done = 0)")
            .bind(&[s(&rfc3339(now))])?
            .all()
            .await?
            .results()?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Drops events older than the retention and recounts what changed.
    pub async fn apply_retention(&self, cutoff: i64) -> Result<()> {
        self.db
            .batch(vec![
                self.db.prepare("DELETE FROM events WHERE occurred_at < ?1").bind(&[s(&rfc3339(cutoff))])?,
                self.db.prepare("UPDATE connections SET event_count = (SELECT count(*) FROM events WHERE events.connection_id = connections.id) WHERE changes() > 0")
                    .bind(&[])?,
            ])
            .await?;
        Ok(())
    }

    pub async fn events(&self, id: &str, f: &EventFilter) -> Result<Vec<EventRow>> {
        let mut sql = String::from("SELECT source_table, sys_id, occurred_at, kind, actor, source_ip, target_table, target_record, target_field, old_value, new_value, raw FROM events WHERE connection_id = ?1");
        let mut binds = vec![s(id)];
        let mut add = |cond: &str, v: JsValue, binds: &mut Vec<JsValue>| {
            binds.push(v);
            sql.push_str(&cond.replace('?', &format!("?{}", binds.len())));
        };
        if let Some(from) = &f.from {
            add(" AND occurred_at >= ?", s(from), &mut binds);
        }
        if let Some(to) = &f.to {
            add(" AND occurred_at < ?", s(to), &mut binds);
        }
        if let Some(kind) = &f.kind {
            add(" AND kind = ?", s(kind), &mut binds);
        }
        if let Some(actor) = &f.actor {
            add(" AND actor = ?", s(actor), &mut binds);
        }
        if let Some((t, table, sid)) = &f.after {
            let op = if f.newest_first { "<" } else { ">" };
            binds.push(s(t));
            let a = binds.len();
            binds.push(s(table));
            binds.push(s(sid));
            sql.push_str(&format!(
                " AND (occurred_at, source_table, sys_id) {op} (?{a}, ?{}, ?{})",
                a + 1,
                a + 2
            ));
        }
        let dir = if f.newest_first { "DESC" } else { "ASC" };
        binds.push(JsValue::from_f64(f64::from(f.limit)));
        sql.push_str(&format!(
            " ORDER BY occurred_at {dir}, source_table {dir}, sys_id {dir} LIMIT ?{}",
            binds.len()
        ));
        self.db.prepare(sql).bind(&binds)?.all().await?.results()
    }
}
