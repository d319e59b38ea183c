//! Alerts in D1: upserted by the connection's object as its detector raises
//! or grows them (an acknowledged or closed alert keeps its status), listed
//! across connections newest first, and their status changed by the admin.

use super::{n, opt, s};
use serde::Deserialize;
use snc_core::clock::rfc3339;
use snc_core::watch::detect::Alert;
use worker::{D1Database, Result};

pub use snc_core::watch::detect::{AlertStatus, StoredAlert};

/// One page of `AlertStore::list`.
pub struct AlertPage {
    pub alerts: Vec<StoredAlert>,
    /// (first_seen, id) of the last row read, when the page was full.
    pub next: Option<(String, String)>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    connection_id: String,
    rule: String,
    severity: String,
    title: String,
    summary: String,
    actor: Option<String>,
    source_ip: Option<String>,
    first_seen: String,
    last_seen: String,
    count: i64,
    event_ids: String,
    attack: String,
    status: String,
}

impl Row {
    /// Decoded once from storage; a row that does not decode is skipped.
    fn decode(self) -> Option<StoredAlert> {
        Some(StoredAlert {
            alert: Alert {
                id: self.id,
                connection_id: self.connection_id,
                rule: snc_core::watch::detect::Rule::parse(&self.rule)?,
                severity: serde_json::from_value(serde_json::Value::String(self.severity)).ok()?,
                title: self.title,
                summary: self.summary,
                actor: self.actor,
                source_ip: self.source_ip,
                first_seen: self.first_seen,
                last_seen: self.last_seen,
                count: u32::try_from(self.count).unwrap_or(0),
                event_ids: serde_json::from_str(&self.event_ids).unwrap_or_default(),
                attack: serde_json::from_str(&self.attack).unwrap_or_default(),
            },
            status: AlertStatus::parse(&self.status)?,
        })
    }
}

/// What the alerts API filters by.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    pub connection_id: Option<String>,
    pub status: Option<AlertStatus>,
    pub rule: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// (first_seen, id) to continue after, newest first.
    pub after: Option<(String, String)>,
    pub limit: u32,
    pub oldest_first: bool,
}

const COLUMNS: &str = "id, connection_id, rule, severity, title, summary, actor, source_ip, first_seen, last_seen, count, event_ids, attack, status";

pub struct AlertStore {
    db: D1Database,
}

impl AlertStore {
    pub fn new(db: D1Database) -> Self {
        AlertStore { db }
    }

    /// Raises or grows alerts, in one batch. An alert of a connection that
    /// is gone is not written.
    /// The status of each of these alerts that exists.
    pub async fn statuses(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, String>> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
            status: String,
        }
        let rows: Vec<Row> = self
            .db
            .prepare("SELECT id, status FROM alerts WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(&[s(&serde_json::to_string(ids)?)])?
            .all()
            .await?
            .results()?;
        Ok(rows.into_iter().map(|r| (r.id, r.status)).collect())
    }

    pub async fn upsert(&self, alerts: &[Alert], now: i64) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut stmts = Vec::new();
        for a in alerts {
            let severity = a.severity.as_str();
            let events = serde_json::to_string(&a.event_ids)?;
            let attack = serde_json::to_string(&a.attack)?;
            stmts.push(
                self.db
                    .prepare(
                        "INSERT INTO alerts (id, connection_id, rule, severity, title, summary, actor, source_ip, first_seen, last_seen, count, event_ids, attack, created_at) \
                         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14 WHERE EXISTS (SELECT 1 FROM connections WHERE id = ?2) \
                         ON CONFLICT(id) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen), \
                         count = max(count, excluded.count), title = excluded.title, summary = excluded.summary, \
                         event_ids = CASE WHEN json_array_length(excluded.event_ids) >= json_array_length(event_ids) THEN excluded.event_ids ELSE event_ids END",
                    )
                    .bind(&[
                        s(&a.id),
                        s(&a.connection_id),
                        s(a.rule.as_str()),
                        s(severity),
                        s(&a.title),
                        s(&a.summary),
                        opt(a.actor.as_deref()),
                        opt(a.source_ip.as_deref()),
                        s(&a.first_seen),
                        s(&a.last_seen),
                        n(i64::from(a.count)),
                        s(&events),
                        s(&attack),
                        s(&rfc3339(now)),
                    ])?,
            );
        }
        self.db.batch(stmts).await?;
        Ok(())
    }

    /// A page of alerts in the query's order. `next` is where the following
    /// page starts when this one was full, counted in rows read, decodable
    /// or not: a row this release cannot read never ends a listing early.
    pub async fn list(&self, q: &AlertQuery) -> Result<AlertPage> {
        let (order, cmp) = if q.oldest_first {
            ("first_seen ASC, id ASC", ">")
        } else {
            ("first_seen DESC, id DESC", "<")
        };
        let (after_at, after_id) = q.after.clone().unwrap_or_default();
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts WHERE (?1 IS NULL OR connection_id = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR rule = ?3) \
             AND (?4 IS NULL OR last_seen >= ?4) AND (?5 IS NULL OR first_seen <= ?5) \
             AND (?6 = '' OR (first_seen, id) {cmp} (?6, ?7)) ORDER BY {order} LIMIT ?8"
        );
        let rows: Vec<Row> = self
            .db
            .prepare(&sql)
            .bind(&[
                opt(q.connection_id.as_deref()),
                opt(q.status.map(AlertStatus::as_str)),
                opt(q.rule.as_deref()),
                opt(q.from.map(rfc3339).as_deref()),
                opt(q.to.map(rfc3339).as_deref()),
                s(&after_at),
                s(&after_id),
                n(i64::from(q.limit)),
            ])?
            .all()
            .await?
            .results()?;
        let next = (rows.len() as u32 == q.limit && q.limit > 0)
            .then(|| rows.last().map(|r| (r.first_seen.clone(), r.id.clone())))
            .flatten();
        let alerts = rows.into_iter().filter_map(Row::decode).collect();
        Ok(AlertPage { alerts, next })
    }

    pub async fn get(&self, id: &str) -> Result<Option<StoredAlert>> {
        let row: Option<Row> = self
            .db
            .prepare(format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"))
            .bind(&[s(id)])?
            .first(None)
            .await?;
        Ok(row.and_then(Row::decode))
    }

    pub async fn set_status(&self, id: &str, status: AlertStatus, now: i64) -> Result<()> {
        self.db
            .prepare("UPDATE alerts SET status = ?2, status_changed_at = ?3 WHERE id = ?1")
            .bind(&[s(id), s(status.as_str()), s(&rfc3339(now))])?
            .run()
            .await?;
        Ok(())
    }
}
