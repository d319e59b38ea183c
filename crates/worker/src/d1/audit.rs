//! The audit log in D1: one entry per change and per refused credential,
//! listed newest first. Entries hold ids, names, paths and problem codes,
//! never a request body or a header value, so no secret can reach them.

use super::{n, opt, s};
use serde::Deserialize;
use snc_core::api::access::{Actor, ActorKind, AuditEntry};
use snc_core::clock::rfc3339;
use worker::{console_log, D1Database, Result};

/// The outcome of a change that went through.
pub const SUCCEEDED: &str = "succeeded";

pub struct Entry<'a> {
    /// Unix milliseconds: entries of one second keep their order.
    pub at_ms: u64,
    pub actor: &'a Actor,
    pub action: &'a str,
    pub target: Option<&'a str>,
    /// `succeeded`, or the problem code the request was answered with.
    pub outcome: &'a str,
    pub ip: Option<&'a str>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    at: i64,
    actor_kind: String,
    actor_id: Option<String>,
    actor_name: Option<String>,
    action: String,
    target: Option<String>,
    outcome: String,
    ip: Option<String>,
}

/// An entry as listed, with its time in milliseconds: the paging cursor's key.
pub struct Listed {
    pub entry: AuditEntry,
    pub at_ms: i64,
}

pub struct AuditLog {
    db: D1Database,
}

impl AuditLog {
    pub fn new(db: D1Database) -> Self {
        AuditLog { db }
    }

    /// Writes one entry. A failure is logged and does not fail the request
    /// it records: the change has happened either way.
    pub async fn write(&self, e: &Entry<'_>) {
        let id = match crate::random_bytes::<16>() {
            Ok(b) => crate::hex(&b),
            Err(err) => {
                console_log!("audit: no id for an entry: {err}");
                return;
            }
        };
        let stmt = self
            .db
            .prepare("INSERT INTO audit_log (id, at, actor_kind, actor_id, actor_name, action, target, outcome, ip) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .bind(&[
                s(&id),
                n(i64::try_from(e.at_ms).unwrap_or(i64::MAX)),
                s(e.actor.kind.as_str()),
                opt(e.actor.id.as_deref()),
                opt(e.actor.name.as_deref()),
                s(e.action),
                opt(e.target),
                s(e.outcome),
                opt(e.ip),
            ]);
        let outcome = match stmt {
            Ok(stmt) => stmt.run().await.map(|_| ()),
            Err(err) => Err(err),
        };
        if let Err(err) = outcome {
            console_log!("audit: an entry for {} was not written: {err}", e.action);
        }
    }

    /// Newest first, `limit + 1` rows so the caller knows whether more follow.
    /// `from`/`to` are Unix seconds; `before` is the last entry of the
    /// previous page (its `at` in milliseconds, and its `id`).
    pub async fn list(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Listed>> {
        let (before_at, before_id) = before.map_or((i64::MAX, ""), |(a, i)| (a, i));
        let rows: Vec<Row> = self
            .db
            .prepare(
                "SELECT id, at, actor_kind, actor_id, actor_name, action, target, outcome, ip FROM audit_log \
                 WHERE at >= ?1 AND at < ?2 AND (at < ?3 OR (at = ?3 AND id < ?4)) \
                 ORDER BY at DESC, id DESC LIMIT ?5",
            )
            .bind(&[
                n(from.map_or(0, |f| f.saturating_mul(1000))),
                n(to.map_or(i64::MAX, |t| t.saturating_mul(1000))),
                n(before_at),
                s(if before.is_some() { before_id } else { "\u{10ffff}" }),
                n(i64::from(limit) + 1),
            ])?
            .all()
            .await?
            .results()?;
        Ok(rows
            .into_iter()
            .map(|r| Listed {
                at_ms: r.at,
                entry: AuditEntry {
                    at: rfc3339(r.at.div_euclid(1000)),
                    actor: Actor {
                        kind: ActorKind::parse(&r.actor_kind).unwrap_or(ActorKind::AdminToken),
                        id: r.actor_id,
                        name: r.actor_name,
                    },
                    id: r.id,
                    action: r.action,
                    target: r.target,
                    outcome: r.outcome,
                    ip: r.ip,
                },
            })
            .collect())
    }

    /// Retention: entries older than `cutoff` (Unix seconds) go.
    pub async fn trim(&self, cutoff: i64) -> Result<()> {
        self.db
            .prepare("DELETE FROM audit_log WHERE at < ?1")
            .bind(&[n(cutoff.saturating_mul(1000))])?
            .run()
            .await?;
        Ok(())
    }
}
