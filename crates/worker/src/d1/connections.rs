//! Connections in D1: their rows, sealed secrets, quotas, tombstones and
//! the watchdog's schedule.

use super::{count, count32, flag, n, opt, opt_n, s};
use serde::{Deserialize, Deserializer};
use snc_core::api::connection::{Backfill, Connection, Status, StatusDetail};
use snc_core::clock::rfc3339;
use snc_core::connect::input::AuthMethod;
use snc_core::connect::warning::{Warning, WarningCode};
use snc_core::problem::ProblemCode;
use snc_core::pull::run::BackfillState;
use snc_core::secret::SecretKind;
use snc_core::stored;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Result};

#[derive(Deserialize)]
pub struct ConnectionRow {
    pub id: String,
    pub name: String,
    pub instance_url: String,
    pub username: String,
    /// The method it was connected with; rows written before a method
    /// existed hold `oauth` or `basic`.
    #[serde(deserialize_with = "auth_method")]
    pub method: AuthMethod,
    pub client_id: Option<String>,
    #[serde(deserialize_with = "stored::flag")]
    pub enabled: bool,
    #[serde(deserialize_with = "status")]
    pub status: Status,
    #[serde(deserialize_with = "problem_code", default)]
    pub status_code: Option<ProblemCode>,
    pub status_message: Option<String>,
    pub status_since: Option<String>,
    #[serde(deserialize_with = "stored::json_text")]
    pub warnings: Vec<Warning>,
    pub release: Option<String>,
    pub build: Option<String>,
    pub created_at: String,
    pub last_pull_at: Option<String>,
    pub next_pull_at: Option<String>,
    pub backfill_from: String,
    pub backfill_to: String,
    #[serde(deserialize_with = "stored::flag")]
    pub backfill_done: bool,
    pub event_count: i64,
    pub backfill_total: i64,
    /// Bumped by every change an admin makes (reconnect, enable, disable):
    /// a pull's writes carry the generation it started with, so a run in
    /// flight cannot overwrite the admin's change.
    pub generation: i64,
    pub posture_score: Option<i64>,
    pub open_alerts: i64,
    /// Set through PATCH; NULL: the deployment's `PULL_INTERVAL_SECS`.
    #[serde(default)]
    pub pull_interval_secs: Option<i64>,
    /// The watchdog's copy of the object's due time (a lease: see
    /// `pull::schedule::watchdog_lease`).
    #[serde(default)]
    pub alarm_at: Option<String>,
}

fn auth_method<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<AuthMethod, D::Error> {
    Ok(AuthMethod::parse(&String::deserialize(d)?).unwrap_or(AuthMethod::Oauth))
}

/// A status this version does not know shows as an error, never as
/// connected.
fn status<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Status, D::Error> {
    Ok(Status::parse(&String::deserialize(d)?).unwrap_or(Status::Error))
}

fn problem_code<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<ProblemCode>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|code| {
        serde_json::from_value(serde_json::Value::String(code)).unwrap_or(ProblemCode::Internal)
    }))
}

impl ConnectionRow {
    /// How reads reach the instance: by its Batch API unless the connect
    /// check found none.
    pub fn read_route(&self) -> snc_core::servicenow::batch::ReadRoute {
        snc_core::connect::warning::read_route(&self.warnings)
    }

    /// What a pull's end compares before it writes this row.
    pub fn row_facts(&self) -> snc_core::pull::schedule::RowFacts {
        snc_core::pull::schedule::RowFacts {
            event_count: u64::try_from(self.event_count).unwrap_or(0),
            backfill_total: u64::try_from(self.backfill_total).unwrap_or(0),
            backfill_done: self.backfill_done,
            hibernating: self.status == Status::Error
                && self.status_code == Some(ProblemCode::InstanceHibernating),
            alarm_at: self
                .alarm_at
                .as_deref()
                .and_then(snc_core::clock::parse_rfc3339),
        }
    }

    /// Seconds between this connection's pulls: its own, or `default`.
    /// A stored value outside the range (written by hand) keeps the default.
    pub fn pull_interval(
        &self,
        default: snc_core::pull::schedule::PullInterval,
    ) -> snc_core::pull::schedule::PullInterval {
        self.pull_interval_secs
            .and_then(|s| u32::try_from(s).ok())
            .and_then(|s| snc_core::pull::schedule::PullInterval::new(s).ok())
            .unwrap_or(default)
    }

    pub fn to_api(&self) -> Connection {
        let status_detail = match (self.status, self.status_code) {
            (Status::Connected, _) | (_, None) => None,
            (_, Some(code)) => Some(StatusDetail {
                code: code.as_str().to_string(),
                message: self.status_message.clone().unwrap_or_default(),
                since: self.status_since.clone().unwrap_or_default(),
            }),
        };
        Connection {
            id: self.id.clone(),
            name: self.name.clone(),
            instance_url: self.instance_url.clone(),
            method: self.method.as_str().to_string(),
            enabled: self.enabled,
            status: self.status,
            status_detail,
            warnings: self.warnings.clone(),
            release: self.release.clone(),
            build: self.build.clone(),
            created_at: self.created_at.clone(),
            last_pull_at: self.last_pull_at.clone(),
            next_pull_at: self.next_pull_at.clone(),
            backfill: Backfill {
                from: self.backfill_from.clone(),
                to: self.backfill_to.clone(),
                done: self.backfill_done,
                events: count(self.event_count),
                total: count(self.backfill_total),
            },
            event_count: count(self.event_count),
            posture_score: self.posture_score.map(|s| s.clamp(0, 100) as u8),
            open_alerts: count(self.open_alerts),
            pull_interval_secs: self.pull_interval_secs.map(count32),
        }
    }
}

/// A new connection's row.
pub struct NewConnection<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub instance_url: &'a str,
    pub username: &'a str,
    pub method: AuthMethod,
    pub client_id: Option<&'a str>,
    pub warnings: &'a [Warning],
    pub release: &'a str,
    pub build: &'a str,
    pub now: i64,
    pub backfill_days: i64,
    /// The posture read with the connect, when there was one.
    pub posture_score: Option<u8>,
    /// Whose quota it counts against (`access::connection_owner`).
    pub owner: Option<&'a str>,
}

/// What a reconnect changes besides the secrets.
pub struct Renewal<'a> {
    pub username: &'a str,
    pub client_id: Option<&'a str>,
    pub warnings: &'a [Warning],
    pub release: &'a str,
    pub build: &'a str,
}

/// One sealed secret to store.
pub struct SealedSecret {
    pub kind: SecretKind,
    pub key_id: String,
    pub sealed: String,
    pub expires_at: Option<i64>,
}

pub struct Store {
    db: D1Database,
}

/// The start of a query over a connection's stored warnings, each as `w`,
/// ending in a condition on its code (an unreadable column reads as none).
const KEPT_WARNINGS: &str = "SELECT value AS w FROM json_each(CASE WHEN json_valid(connections.warnings) THEN connections.warnings ELSE '[]' END) WHERE json_extract(value, '$.code')";

const COLUMNS: &str = "id, name, instance_url, username, method, client_id, enabled, status, status_code, status_message, status_since, warnings, release, build, created_at, last_pull_at, next_pull_at, backfill_from, backfill_to, backfill_done, event_count, backfill_total, generation, posture_score, pull_interval_secs, alarm_at, \
    (SELECT count(*) FROM alerts a WHERE a.connection_id = connections.id AND a.status = 'open') AS open_alerts";

impl Store {
    pub fn new(db: D1Database) -> Self {
        Store { db }
    }

    pub async fn list(&self) -> Result<Vec<ConnectionRow>> {
        let q = format!("SELECT {COLUMNS} FROM connections ORDER BY created_at, id");
        self.db.prepare(q).all().await?.results()
    }

    /// Sets or clears (`None`) the connection's warning of one code; the
    /// other warnings stay. One statement, so a posture check writing the
    /// warnings at the same moment loses nothing. Returns whether the
    /// connection is still there.
    pub async fn set_warning(
        &self,
        id: &str,
        code: WarningCode,
        warning: Option<Warning>,
    ) -> Result<bool> {
        let warning = warning.map(|w| serde_json::to_string(&w)).transpose()?;
        let r = self
            .db
            .prepare(format!(
                "UPDATE connections SET warnings = (SELECT json_group_array(json(w)) FROM ({KEPT_WARNINGS} IS NOT ?2 \
                 UNION ALL SELECT ?3 WHERE ?3 IS NOT NULL)) WHERE id = ?1"
            ))
            .bind(&[s(id), s(code.as_str()), opt(warning.as_deref())])?
            .run()
            .await?;
        applied(&r)
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
                    .bind(&[s(connection_id), s(sec.kind.as_str()), s(&sec.key_id), s(&sec.sealed), opt(expires.as_deref())])?,
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
                "INSERT INTO connections (id, name, instance_url, username, method, client_id, enabled, status, warnings, release, build, created_at, backfill_from, backfill_to, next_pull_at, posture_score, owner) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 'connected', ?7, ?8, ?9, ?10, ?11, ?10, ?10, ?12, ?13)",
            )
            .bind(&[s(c.id), s(c.name), s(c.instance_url), s(c.username), s(c.method.as_str()), opt(c.client_id), s(&serde_json::to_string(c.warnings)?), s(c.release), s(c.build), s(&now), s(&from), opt_n(c.posture_score.map(i64::from)), opt(c.owner)])?];
        stmts.extend(self.secret_statements(c.id, secrets)?);
        self.db.batch(stmts).await?;
        Ok(())
    }

    /// How many connections count against `owner`'s quota.
    pub async fn owned(&self, owner: &str) -> Result<u32> {
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let row: Option<Count> = self
            .db
            .prepare("SELECT COUNT(*) AS n FROM connections WHERE owner = ?1")
            .bind(&[s(owner)])?
            .first(None)
            .await?;
        Ok(row.map_or(0, |r| u32::try_from(r.n).unwrap_or(u32::MAX)))
    }

    /// Whether `id` is among the first `quota` connections `owner` made
    /// (by creation, then id): every connect racing past the quota comes to
    /// the same answer, so exactly the quota's worth are kept.
    pub async fn within_quota(&self, owner: &str, id: &str, quota: u32) -> Result<bool> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
        }
        let rows: Vec<Row> = self
            .db
            .prepare("SELECT id FROM connections WHERE owner = ?1 ORDER BY created_at, id LIMIT ?2")
            .bind(&[s(owner), n(i64::from(quota))])?
            .all()
            .await?
            .results()?;
        Ok(rows.iter().any(|r| r.id == id))
    }

    /// Takes back a connection just inserted (its secrets with it), before
    /// anything else knew of it: a quota passed by a concurrent connect.
    pub async fn take_back(&self, id: &str) -> Result<()> {
        self.db.batch(self.row_and_secrets_deleted(id)?).await?;
        Ok(())
    }

    /// The statements that delete a connection's row and its secrets.
    fn row_and_secrets_deleted(&self, id: &str) -> Result<Vec<D1PreparedStatement>> {
        Ok(vec![
            self.db
                .prepare("DELETE FROM connection_secrets WHERE connection_id = ?1")
                .bind(&[s(id)])?,
            self.db
                .prepare("DELETE FROM connections WHERE id = ?1")
                .bind(&[s(id)])?,
        ])
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
                "UPDATE connections SET username = ?2, client_id = ?3, warnings = ?4, release = ?5, build = ?6, generation = generation + 1, \
                 status = CASE WHEN enabled = 1 THEN 'connected' ELSE 'disabled' END, status_code = NULL, status_message = NULL, status_since = NULL WHERE id = ?1",
            )
            .bind(&[s(id), s(r.username), opt(r.client_id), s(&serde_json::to_string(r.warnings)?), s(r.release), s(r.build)])?];
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
            "UPDATE connections SET enabled = 1, generation = generation + 1, status = CASE WHEN status_code IS NULL THEN 'connected' ELSE 'error' END WHERE id = ?1"
        } else {
            "UPDATE connections SET enabled = 0, generation = generation + 1, status = 'disabled' WHERE id = ?1"
        };
        self.db.prepare(q).bind(&[s(id)])?.run().await?;
        Ok(())
    }

    /// Deletes the connection's row and secrets at once (its alerts, sink
    /// progress and dead letters go with it) and leaves its tombstone, which
    /// drives the purge of its object, archive and legacy rows to the end.
    pub async fn bury(&self, id: &str, now: i64) -> Result<()> {
        let mut stmts = vec![self
            .db
            .prepare("INSERT INTO connection_tombstones (id, deleted_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING")
            .bind(&[s(id), n(now)])?];
        stmts.extend(self.row_and_secrets_deleted(id)?);
        self.db.batch(stmts).await?;
        Ok(())
    }

    /// This connection's own pull interval (`None`: the deployment's).
    pub async fn set_pull_interval(
        &self,
        id: &str,
        interval: Option<snc_core::pull::schedule::PullInterval>,
    ) -> Result<()> {
        self.db
            .prepare("UPDATE connections SET pull_interval_secs = ?2 WHERE id = ?1")
            .bind(&[s(id), opt_n(interval.map(|i| i.secs()))])?
            .run()
            .await?;
        Ok(())
    }

    /// Whether a connection was deleted: `Some(true)` once purged.
    pub async fn tombstone(&self, id: &str) -> Result<Option<bool>> {
        #[derive(Deserialize)]
        struct Row {
            purged_at: Option<i64>,
        }
        let row: Option<Row> = self
            .db
            .prepare("SELECT purged_at FROM connection_tombstones WHERE id = ?1")
            .bind(&[s(id)])?
            .first(None)
            .await?;
        Ok(row.map(|r| r.purged_at.is_some()))
    }

    pub async fn mark_purged(&self, id: &str, now: i64) -> Result<()> {
        self.db
            .prepare("UPDATE connection_tombstones SET purged_at = ?2 WHERE id = ?1 AND purged_at IS NULL")
            .bind(&[s(id), n(now)])?
            .run()
            .await?;
        Ok(())
    }

    /// Deleted connections whose purge has not ended (for the cron).
    pub async fn unpurged(&self, limit: u32) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let rows: Vec<Id> = self
            .db
            .prepare("SELECT id FROM connection_tombstones WHERE purged_at IS NULL ORDER BY deleted_at LIMIT ?1")
            .bind(&[n(i64::from(limit))])?
            .all()
            .await?
            .results()?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Tombstones purged before `before` go (a DELETE then answers 404).
    pub async fn forget_tombstones(&self, before: i64) -> Result<()> {
        self.db
            .prepare("DELETE FROM connection_tombstones WHERE purged_at < ?1")
            .bind(&[n(before)])?
            .run()
            .await?;
        Ok(())
    }

    /// Rows an older deployment kept in D1 for a connection deleted before
    /// its object had moved them (cursors, events, pull runs), at most
    /// `budget` events a call; true once none is left.
    pub async fn purge_legacy(&self, id: &str, budget: u32) -> Result<bool> {
        let r = self
            .db
            // The legacy table is WITHOUT ROWID: chunks by its key.
            .prepare("DELETE FROM events WHERE (connection_id, occurred_at, source_table, sys_id) IN (SELECT connection_id, occurred_at, source_table, sys_id FROM events WHERE connection_id = ?1 LIMIT ?2)")
            .bind(&[s(id), n(i64::from(budget))])?
            .run()
            .await?;
        let deleted = r.meta()?.and_then(|m| m.changes).unwrap_or(0);
        if deleted >= budget as usize {
            return Ok(false);
        }
        self.db
            .batch(vec![
                self.db
                    .prepare("DELETE FROM cursors WHERE connection_id = ?1")
                    .bind(&[s(id)])?,
                self.db
                    .prepare("DELETE FROM pull_runs WHERE connection_id = ?1")
                    .bind(&[s(id)])?,
            ])
            .await?;
        Ok(true)
    }

    /// Connections whose object has not reported an alarm for a while: the
    /// cron re-arms them (a lost alarm, or a deployment just upgraded).
    pub async fn overdue(&self, now: i64, limit: u32) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let rows: Vec<Id> = self
            .db
            .prepare("SELECT id FROM connections WHERE alarm_at IS NULL OR alarm_at < ?1 ORDER BY alarm_at LIMIT ?2")
            .bind(&[s(&rfc3339(now)), n(i64::from(limit))])?
            .all()
            .await?
            .results()?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// The object's next alarm, for the cron's watchdog.
    pub async fn set_alarm_at(&self, id: &str, at: Option<i64>) -> Result<()> {
        self.db
            .prepare("UPDATE connections SET alarm_at = ?2 WHERE id = ?1")
            .bind(&[s(id), opt(at.map(rfc3339).as_deref())])?
            .run()
            .await?;
        Ok(())
    }

    /// Values sealed under another key than `current_kid`.
    pub async fn stale_secrets(
        &self,
        current_kid: &str,
        limit: u32,
    ) -> Result<Vec<(String, SecretRow)>> {
        #[derive(Deserialize)]
        struct Row {
            connection_id: String,
            kind: String,
            sealed: String,
            expires_at: Option<String>,
        }
        // From a random connection id on, wrapping round: values that open
        // under no key (left for an admin to mend) are not the same `limit`
        // rows every run, holding back the rest.
        let start = crate::random_bytes::<16>().map_or_else(|_| String::new(), |b| crate::hex(&b));
        let mut rows: Vec<Row> = self
            .db
            .prepare("SELECT connection_id, kind, sealed, expires_at FROM connection_secrets WHERE key_id != ?1 AND connection_id >= ?3 ORDER BY connection_id, kind LIMIT ?2")
            .bind(&[s(current_kid), n(i64::from(limit)), s(&start)])?
            .all()
            .await?
            .results()?;
        let left = limit.saturating_sub(rows.len() as u32);
        if left > 0 && !start.is_empty() {
            let wrapped: Vec<Row> = self
                .db
                .prepare("SELECT connection_id, kind, sealed, expires_at FROM connection_secrets WHERE key_id != ?1 AND connection_id < ?3 ORDER BY connection_id, kind LIMIT ?2")
                .bind(&[s(current_kid), n(i64::from(left)), s(&start)])?
                .all()
                .await?
                .results()?;
            rows.extend(wrapped);
        }
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.connection_id,
                    SecretRow {
                        kind: SecretKind::parse(&r.kind)?,
                        sealed: r.sealed,
                        expires_at: r.expires_at,
                    },
                ))
            })
            .collect())
    }

    /// Replaces a sealed value by the same secret sealed again, only if the
    /// stored value is still `old`.
    pub async fn reseal(
        &self,
        connection_id: &str,
        old: &str,
        fresh: &SealedSecret,
    ) -> Result<bool> {
        let r = self
            .db
            .prepare("UPDATE connection_secrets SET key_id = ?4, sealed = ?5 WHERE connection_id = ?1 AND kind = ?2 AND sealed = ?3")
            .bind(&[s(connection_id), s(fresh.kind.as_str()), s(old), s(&fresh.key_id), s(&fresh.sealed)])?
            .run()
            .await?;
        applied(&r)
    }

    /// The connection's sealed secrets; a kind this version does not know
    /// is left out.
    pub async fn secrets(&self, id: &str) -> Result<Vec<SecretRow>> {
        #[derive(Deserialize)]
        struct Row {
            kind: String,
            sealed: String,
            expires_at: Option<String>,
        }
        let rows: Vec<Row> = self
            .db
            .prepare(
                "SELECT kind, sealed, expires_at FROM connection_secrets WHERE connection_id = ?1",
            )
            .bind(&[s(id)])?
            .all()
            .await?
            .results()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(SecretRow {
                    kind: SecretKind::parse(&r.kind)?,
                    sealed: r.sealed,
                    expires_at: r.expires_at,
                })
            })
            .collect())
    }
}

pub struct SecretRow {
    pub kind: SecretKind,
    pub sealed: String,
    pub expires_at: Option<String>,
}

/// A pull's progress, copied to the connection's row for the API.
pub struct Progress {
    pub at: i64,
    pub event_count: u64,
    pub backfill_total: u64,
}

/// The writes a pull makes to its connection's row, each conditional on the
/// generation the pull started with. Each returns whether it was applied:
/// `false` means an admin changed or deleted the connection meanwhile, and
/// the pull stops without touching it.
pub struct Fence {
    store: Store,
    id: String,
    generation: i64,
}

fn applied(result: &worker::D1Result) -> Result<bool> {
    Ok(result
        .meta()?
        .and_then(|m| m.changes)
        .is_some_and(|n| n > 0))
}

impl Fence {
    pub fn new(store: Store, row: &ConnectionRow) -> Fence {
        Fence {
            store,
            id: row.id.clone(),
            generation: row.generation,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn gen(&self) -> JsValue {
        n(self.generation)
    }

    pub async fn progress(&self, p: &Progress) -> Result<bool> {
        let r = self
            .store
            .db
            .prepare("UPDATE connections SET event_count = ?3, backfill_total = ?4, last_pull_at = ?5 WHERE id = ?1 AND generation = ?2")
            .bind(&[s(&self.id), self.gen(), n(p.event_count.try_into().unwrap_or(i64::MAX)), n(p.backfill_total.try_into().unwrap_or(i64::MAX)), s(&rfc3339(p.at))])?
            .run()
            .await?;
        applied(&r)
    }

    /// A run that finished heard from the instance: a hibernation error it
    /// started in is over. Written only when something the list shows
    /// changed or the watchdog's lease runs short (`row_after_pull`).
    pub async fn finish_run(
        &self,
        p: &Progress,
        next_pull_at: i64,
        alarm_at: i64,
        backfill: BackfillState,
    ) -> Result<bool> {
        let q = "UPDATE connections SET last_pull_at = ?3, next_pull_at = ?4, alarm_at = ?8, backfill_done = max(backfill_done, ?5), event_count = ?6, backfill_total = ?7, \
                 status = CASE WHEN status = 'error' AND status_code = 'instance_hibernating' THEN 'connected' ELSE status END, \
                 status_code = CASE WHEN status_code = 'instance_hibernating' THEN NULL ELSE status_code END WHERE id = ?1 AND generation = ?2";
        let r = self
            .store
            .db
            .prepare(q)
            .bind(&[
                s(&self.id),
                self.gen(),
                s(&rfc3339(p.at)),
                s(&rfc3339(next_pull_at)),
                flag(backfill == BackfillState::Done),
                n(p.event_count.try_into().unwrap_or(i64::MAX)),
                n(p.backfill_total.try_into().unwrap_or(i64::MAX)),
                s(&rfc3339(alarm_at)),
            ])?
            .run()
            .await?;
        applied(&r)
    }

    pub async fn set_error(
        &self,
        code: ProblemCode,
        message: &str,
        now: i64,
        retry_at: Option<i64>,
    ) -> Result<bool> {
        let r = self
            .store
            .db
            .prepare("UPDATE connections SET status = CASE WHEN enabled = 1 THEN 'error' ELSE status END, status_code = ?3, status_message = ?4, status_since = coalesce(CASE WHEN status_code = ?3 THEN status_since END, ?5), next_pull_at = ?6, alarm_at = ?6 WHERE id = ?1 AND generation = ?2")
            .bind(&[s(&self.id), self.gen(), s(code.as_str()), s(message), s(&rfc3339(now)), opt(retry_at.map(rfc3339).as_deref())])?
            .run()
            .await?;
        applied(&r)
    }

    /// A posture check's score and the hardening warnings it recomputed;
    /// the connect's own warnings (a short token lifespan, no Batch API) and
    /// `pulls_failing` stay as they are, in the same statement.
    pub async fn posture(&self, score: u8, hardening: &[Warning]) -> Result<bool> {
        let codes = serde_json::to_string(&snc_core::connect::warning::HARDENING_CODES)?;
        let json = serde_json::to_string(hardening)?;
        let r = self
            .store
            .db
            .prepare(format!(
                "UPDATE connections SET posture_score = ?3, warnings = (SELECT json_group_array(json(w)) FROM ({KEPT_WARNINGS} NOT IN (SELECT value FROM json_each(?4)) \
                 UNION ALL SELECT value FROM json_each(?5))) WHERE id = ?1 AND generation = ?2"
            ))
            .bind(&[s(&self.id), self.gen(), n(i64::from(score)), s(&codes), s(&json)])?
            .run()
            .await?;
        applied(&r)
    }

    /// A refreshed token, stored only while the connection is as the pull
    /// found it: a reconnect's new tokens are never replaced by older ones.
    pub async fn replace_secret(&self, sec: &SealedSecret) -> Result<bool> {
        let expires = sec.expires_at.map(rfc3339);
        let r = self
            .store
            .db
            .prepare("INSERT INTO connection_secrets (connection_id, kind, key_id, sealed, expires_at) SELECT ?1, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM connections WHERE id = ?1 AND generation = ?2) \
                      ON CONFLICT (connection_id, kind) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, expires_at = excluded.expires_at")
            .bind(&[s(&self.id), self.gen(), s(sec.kind.as_str()), s(&sec.key_id), s(&sec.sealed), opt(expires.as_deref())])?
            .run()
            .await?;
        applied(&r)
    }
}
