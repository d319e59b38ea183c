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

const COLUMNS: &str = "id, name, instance_url, username, method, client_id, enabled, status, status_code, status_message, status_since, warnings, release, build, created_at, last_pull_at, next_pull_at, backfill_from, backfill_to, backfill_done, event_count";

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
