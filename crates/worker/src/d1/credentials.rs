//! API keys, connect tickets and failed-credential counts in D1. Keys and
//! tickets are found by the SHA-256 of what the caller presents; the
//! credential itself is never stored.

use super::{count, count32, n, opt_n, s};
use serde::Deserialize;
use snc_core::api::access::{
    CredentialHash, FailureCount, FailurePolicy, KeyInfo, Scopes, TicketGrant,
};
use snc_core::clock::rfc3339;
use wasm_bindgen::JsValue;
use worker::{D1Database, Result};

/// A failure row's reset when its window has ended (`?2` now, `?3` the
/// newest start that has ended): what the old window refused without an
/// audit row of its own is carried to the cron's summary, never lost.
const NEW_WINDOW: &str =
    "carried = carried + CASE WHEN window_start <= ?3 THEN max(failures - audited, 0) ELSE 0 END, \
    refusal_audited = CASE WHEN window_start <= ?3 THEN 0 ELSE refusal_audited END, \
    audited = CASE WHEN window_start <= ?3 THEN 0 ELSE audited END, \
    window_start = CASE WHEN window_start <= ?3 THEN ?2 ELSE window_start END";

/// Refusals not told one by one: carried from earlier windows, and an
/// ended window's own (`?1`: the newest start that has ended).
const UNTOLD: &str =
    "(carried + CASE WHEN window_start <= ?1 THEN max(failures - audited, 0) ELSE 0 END)";

/// `last_used_at` is written at most this often per key, so a burst of
/// requests costs reads, not a write each.
const LAST_USED_GRANULARITY_SECS: i64 = 60;

#[derive(Deserialize)]
struct KeyRow {
    id: String,
    name: String,
    scopes: String,
    created_at: String,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl KeyRow {
    fn info(&self) -> Option<KeyInfo> {
        Some(KeyInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            scopes: Scopes::from_stored(&self.scopes)?,
            created_at: self.created_at.clone(),
            expires_at: self.expires_at.map(rfc3339),
            last_used_at: self.last_used_at.map(rfc3339),
        })
    }
}

pub struct NewKey<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub scopes: &'a Scopes,
    pub hash: &'a CredentialHash,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

pub struct NewTicket<'a> {
    pub id: &'a str,
    pub hash: &'a CredentialHash,
    pub origin: Option<&'a str>,
    pub minted_by: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Deserialize)]
struct TicketRow {
    id: String,
    origin: Option<String>,
    minted_by: String,
    expires_at: i64,
    claimed_at: Option<i64>,
    connection_id: Option<String>,
}

#[derive(Deserialize)]
struct FailureRow {
    window_start: i64,
    failures: i64,
    #[serde(deserialize_with = "snc_core::stored::flag")]
    refusal_audited: bool,
}

pub struct AccessStore {
    db: D1Database,
}

impl AccessStore {
    pub fn new(db: D1Database) -> Self {
        AccessStore { db }
    }

    pub async fn create_key(&self, k: &NewKey<'_>) -> Result<()> {
        self.db
            .prepare("INSERT INTO api_keys (id, name, scopes, hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(&[
                s(k.id),
                s(k.name),
                s(&k.scopes.stored()),
                s(k.hash.as_str()),
                s(&rfc3339(k.created_at)),
                opt_n(k.expires_at),
            ])?
            .run()
            .await?;
        Ok(())
    }

    pub async fn keys(&self) -> Result<Vec<KeyInfo>> {
        let rows: Vec<KeyRow> = self
            .db
            .prepare("SELECT id, name, scopes, created_at, expires_at, last_used_at FROM api_keys ORDER BY created_at, id")
            .all()
            .await?
            .results()?;
        Ok(rows.iter().filter_map(KeyRow::info).collect())
    }

    /// True when there was such a key.
    pub async fn revoke_key(&self, id: &str) -> Result<bool> {
        let r = self
            .db
            .prepare("DELETE FROM api_keys WHERE id = ?1")
            .bind(&[s(id)])?
            .run()
            .await?;
        Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
    }

    /// Whether the key `id` holds the admin scope (a revoked or unknown key
    /// does not).
    pub async fn key_is_admin(&self, id: &str) -> Result<bool> {
        #[derive(serde::Deserialize)]
        struct Row {
            scopes: String,
        }
        let row: Option<Row> = self
            .db
            .prepare("SELECT scopes FROM api_keys WHERE id = ?1")
            .bind(&[s(id)])?
            .first(None)
            .await?;
        Ok(row
            .and_then(|r| Scopes::from_stored(&r.scopes))
            .is_some_and(|scopes| scopes.has(snc_core::api::access::Scope::Admin)))
    }

    /// The key presented, if it exists and has not expired; notes its use.
    pub async fn key_by_hash(
        &self,
        hash: &CredentialHash,
        now: i64,
    ) -> Result<Option<(String, String, Scopes)>> {
        let row: Option<KeyRow> = self
            .db
            .prepare("SELECT id, name, scopes, created_at, expires_at, last_used_at FROM api_keys WHERE hash = ?1")
            .bind(&[s(hash.as_str())])?
            .first(None)
            .await?;
        let Some(row) = row else { return Ok(None) };
        if row.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        let Some(scopes) = Scopes::from_stored(&row.scopes) else {
            return Ok(None);
        };
        let stale = row
            .last_used_at
            .is_none_or(|t| t + LAST_USED_GRANULARITY_SECS <= now);
        if stale {
            self.db
                .prepare("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")
                .bind(&[s(&row.id), n(now)])?
                .run()
                .await?;
        }
        Ok(Some((row.id, row.name, scopes)))
    }

    pub async fn create_ticket(&self, t: &NewTicket<'_>) -> Result<()> {
        self.db
            .prepare("INSERT INTO tickets (id, hash, origin, minted_by, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(&[
                s(t.id),
                s(t.hash.as_str()),
                t.origin.map_or(JsValue::NULL, s),
                s(t.minted_by),
                n(t.created_at),
                n(t.expires_at),
            ])?
            .run()
            .await?;
        Ok(())
    }

    /// The ticket presented, if it exists and has not expired.
    pub async fn ticket_by_hash(
        &self,
        hash: &CredentialHash,
        now: i64,
    ) -> Result<Option<TicketGrant>> {
        let row: Option<TicketRow> = self
            .db
            .prepare("SELECT id, origin, minted_by, expires_at, claimed_at, connection_id FROM tickets WHERE hash = ?1")
            .bind(&[s(hash.as_str())])?
            .first(None)
            .await?;
        Ok(row.filter(|r| r.expires_at > now).map(|r| TicketGrant {
            id: r.id,
            origin: r.origin,
            minted_by: r.minted_by,
            claimed: r.claimed_at.is_some() || r.connection_id.is_some(),
            connection_id: r.connection_id,
        }))
    }

    /// Takes the ticket's one connect; false when another request has it
    /// or the ticket has used its `TICKET_CONNECT_ATTEMPTS` (a refused
    /// connect frees the claim but keeps the attempt: one ticket cannot
    /// probe names or relay password guesses without end).
    pub async fn claim_ticket(&self, id: &str, now: i64) -> Result<bool> {
        let r = self
            .db
            .prepare("UPDATE tickets SET claimed_at = ?2, attempts = attempts + 1 WHERE id = ?1 AND claimed_at IS NULL AND connection_id IS NULL AND attempts < ?3")
            .bind(&[
                s(id),
                n(now),
                n(i64::from(snc_core::api::access::TICKET_CONNECT_ATTEMPTS)),
            ])?
            .run()
            .await?;
        Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
    }

    /// After the connect: binds the connection to the ticket, or frees the
    /// claim when the connect failed, so the admin can correct and retry.
    pub async fn settle_ticket(&self, id: &str, connection_id: Option<&str>) -> Result<()> {
        let stmt = match connection_id {
            Some(c) => self
                .db
                .prepare("UPDATE tickets SET connection_id = ?2 WHERE id = ?1")
                .bind(&[s(id), s(c)])?,
            None => self
                .db
                .prepare("UPDATE tickets SET claimed_at = NULL WHERE id = ?1")
                .bind(&[s(id)])?,
        };
        stmt.run().await?;
        Ok(())
    }

    pub async fn failures(&self, ip: &str) -> Result<Option<(FailureCount, bool)>> {
        let row: Option<FailureRow> = self
            .db
            .prepare(
                "SELECT window_start, failures, refusal_audited FROM auth_failures WHERE ip = ?1",
            )
            .bind(&[s(ip)])?
            .first(None)
            .await?;
        Ok(row.map(|r| {
            (
                FailureCount {
                    window_start: r.window_start,
                    failures: count32(r.failures),
                },
                r.refusal_audited,
            )
        }))
    }

    /// One more failure for the address and for the deployment, in one
    /// batch (D1 runs it as a transaction, so concurrent failures all
    /// count); answers the address's count in its window, this one included.
    pub async fn count_failure(&self, ip: &str, now: i64, policy: &FailurePolicy) -> Result<u32> {
        let window_open_since = now - policy.window_secs;
        let count = format!(
            "INSERT INTO auth_failures (ip, window_start, failures) VALUES (?1, ?2, 1) \
             ON CONFLICT (ip) DO UPDATE SET failures = CASE WHEN window_start <= ?3 THEN 1 ELSE failures + 1 END, {NEW_WINDOW} \
             RETURNING failures"
        );
        let count = count.as_str();
        let deployment = snc_core::api::access::DEPLOYMENT_FAILURE_KEY;
        let results = self
            .db
            .batch(vec![
                self.db
                    .prepare(count)
                    .bind(&[s(ip), n(now), n(window_open_since)])?,
                self.db
                    .prepare(count)
                    .bind(&[s(deployment), n(now), n(window_open_since)])?,
            ])
            .await?;
        #[derive(Deserialize)]
        struct Count {
            failures: i64,
        }
        let counted = match results.first() {
            Some(r) => r.results::<Count>()?,
            None => Vec::new(),
        };
        Ok(counted.first().map_or(u32::MAX, |c| count32(c.failures)))
    }

    /// Reserves an attempt before its credential is checked (an admin-token
    /// guess): answers the address's confirmed failures and the attempts in
    /// flight, this one included.
    pub async fn reserve_attempt(
        &self,
        ip: &str,
        now: i64,
        policy: &FailurePolicy,
    ) -> Result<(u32, u32)> {
        #[derive(Deserialize)]
        struct Counts {
            failures: i64,
            reserved: i64,
        }
        let row: Option<Counts> = self
            .db
            .prepare(format!(
                "INSERT INTO auth_failures (ip, window_start, failures, reserved) VALUES (?1, ?2, 0, 1) \
                 ON CONFLICT (ip) DO UPDATE SET failures = CASE WHEN window_start <= ?3 THEN 0 ELSE failures END, \
                   reserved = CASE WHEN window_start <= ?3 THEN 1 ELSE reserved + 1 END, {NEW_WINDOW} \
                 RETURNING failures, reserved"
            ))
            .bind(&[s(ip), n(now), n(now - policy.window_secs)])?
            .first(None)
            .await?;
        Ok(row.map_or((u32::MAX, u32::MAX), |c| {
            (count32(c.failures), count32(c.reserved))
        }))
    }

    /// A reserved attempt turned out wrong: in one statement it leaves the
    /// attempts in flight and joins the failures, so no other attempt sees
    /// it in neither; the deployment's count too.
    pub async fn confirm_failure(&self, ip: &str, now: i64, policy: &FailurePolicy) -> Result<()> {
        let count = format!(
            "INSERT INTO auth_failures (ip, window_start, failures) VALUES (?1, ?2, 1) \
             ON CONFLICT (ip) DO UPDATE SET failures = CASE WHEN window_start <= ?3 THEN 1 ELSE failures + 1 END, {NEW_WINDOW}"
        );
        self.db
            .batch(vec![
                self.db
                    .prepare("UPDATE auth_failures SET reserved = max(reserved - 1, 0), failures = failures + 1 WHERE ip = ?1")
                    .bind(&[s(ip)])?,
                self.db.prepare(&count).bind(&[
                    s(snc_core::api::access::DEPLOYMENT_FAILURE_KEY),
                    n(now),
                    n(now - policy.window_secs),
                ])?,
            ])
            .await?;
        Ok(())
    }

    /// A reserved attempt has been checked: it is no longer in flight.
    pub async fn release_attempt(&self, ip: &str) -> Result<()> {
        self.db
            .prepare("UPDATE auth_failures SET reserved = max(reserved - 1, 0) WHERE ip = ?1")
            .bind(&[s(ip)])?
            .run()
            .await?;
        Ok(())
    }

    /// Whether a counted failure is audited on its own: the address within
    /// its limit and the deployment within `AUDITED_FAILURES_PER_WINDOW`,
    /// decided in one transaction, so however many arrive at once no more
    /// than those get a row. What is not audited stays counted
    /// (`failures - audited`) for the cron's summary.
    pub async fn audit_failure(&self, ip: &str, policy: &FailurePolicy) -> Result<bool> {
        let deployment = snc_core::api::access::DEPLOYMENT_FAILURE_KEY;
        let audit = "UPDATE auth_failures SET audited = audited + 1 \
                 WHERE ip = ?1 AND audited < ?2 \
                   AND coalesce((SELECT audited FROM auth_failures WHERE ip = ?3), 0) < ?4 \
                 RETURNING audited";
        let results = self
            .db
            .batch(vec![
                self.db.prepare(audit).bind(&[
                    s(ip),
                    n(i64::from(policy.limit)),
                    s(deployment),
                    n(i64::from(
                        snc_core::api::access::AUDITED_FAILURES_PER_WINDOW,
                    )),
                ])?,
                // The deployment's row counts what was audited (the
                // statement before changed one row or none).
                self.db
                    .prepare("UPDATE auth_failures SET audited = audited + changes() WHERE ip = ?1")
                    .bind(&[s(deployment)])?,
            ])
            .await?;
        let audited = match results.first() {
            Some(r) => !r.results::<serde_json::Value>()?.is_empty(),
            None => false,
        };
        Ok(audited)
    }

    /// The summaries are written: what earlier windows carried is told.
    pub async fn clear_carried(&self) -> Result<()> {
        self.db
            .prepare("UPDATE auth_failures SET carried = 0 WHERE carried > 0")
            .run()
            .await?;
        Ok(())
    }

    /// Ended windows whose refusals were not all audited, one summary each
    /// (for the cron, before the sweep drops them): at most
    /// `FAILURE_SUMMARIES_PER_SWEEP` addresses by name, then the rest as one.
    /// Returns (address, how many more) pairs and the rest's (count, addresses).
    pub async fn unsummarised(
        &self,
        now: i64,
        policy: &FailurePolicy,
    ) -> Result<(Vec<(String, u64)>, (u64, u64))> {
        #[derive(Deserialize)]
        struct More {
            ip: String,
            more: i64,
        }
        let ended = n(now - policy.window_secs);
        let named: Vec<More> = self
            .db
            .prepare(format!("SELECT ip, {UNTOLD} AS more FROM auth_failures WHERE ip != ?2 AND {UNTOLD} > 0 ORDER BY {UNTOLD} DESC LIMIT ?3"))
            .bind(&[
                ended.clone(),
                s(snc_core::api::access::DEPLOYMENT_FAILURE_KEY),
                n(i64::from(snc_core::api::access::FAILURE_SUMMARIES_PER_SWEEP)),
            ])?
            .all()
            .await?
            .results()?;
        #[derive(Deserialize)]
        struct Rest {
            more: Option<i64>,
            addresses: i64,
        }
        let rest: Option<Rest> = self
            .db
            .prepare(format!("SELECT sum({UNTOLD}) AS more, count(*) AS addresses FROM auth_failures WHERE ip != ?2 AND {UNTOLD} > 0"))
            .bind(&[ended, s(snc_core::api::access::DEPLOYMENT_FAILURE_KEY)])?
            .first(None)
            .await?;
        let named: Vec<(String, u64)> = named.into_iter().map(|m| (m.ip, count(m.more))).collect();
        let (more, addresses) =
            rest.map_or((0, 0), |r| (count(r.more.unwrap_or(0)), count(r.addresses)));
        let named_more: u64 = named.iter().map(|(_, m)| m).sum();
        let rest = (
            more.saturating_sub(named_more),
            addresses.saturating_sub(named.len() as u64),
        );
        Ok((named, rest))
    }

    /// Marks the window's 429 as audited; true for the first caller only,
    /// and only while the deployment is within its window's audit rows.
    pub async fn mark_refusal_audited(&self, ip: &str) -> Result<bool> {
        let r = self
            .db
            .prepare("UPDATE auth_failures SET refusal_audited = 1 WHERE ip = ?1 AND refusal_audited = 0 \
                      AND coalesce((SELECT audited FROM auth_failures WHERE ip = ?2), 0) < ?3")
            .bind(&[
                s(ip),
                s(snc_core::api::access::DEPLOYMENT_FAILURE_KEY),
                n(i64::from(snc_core::api::access::AUDITED_FAILURES_PER_WINDOW)),
            ])?
            .run()
            .await?;
        Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
    }

    /// The cron's tidy-up: expired tickets (the audit log keeps what they
    /// did) and ended windows.
    pub async fn sweep(&self, now: i64, policy: &FailurePolicy) -> Result<()> {
        self.db
            .batch(vec![
                self.db
                    .prepare("DELETE FROM tickets WHERE expires_at <= ?1")
                    .bind(&[n(now)])?,
                self.db
                    .prepare("DELETE FROM auth_failures WHERE window_start <= ?1")
                    .bind(&[n(now - policy.window_secs)])?,
            ])
            .await?;
        Ok(())
    }
}
