//! Sinks in D1: their settings, their sealed credential, their state and
//! last answer, and each sink's progress per connection (reported by the
//! connection's object after each delivery step).

use super::{count, n, opt, s};
use serde::Deserialize;
use serde_json::{json, Value};
use snc_core::clock::rfc3339;
use snc_core::forward::{Format, SinkParams, SinkSettings, SinkState, SinkUrl, Stream};
use snc_core::seal::KeyRing;
use snc_core::secret::Secret;
use snc_core::servicenow::instance_url::Loopback;
use worker::{D1Database, Result};

/// The context a sink's credential is sealed to.
pub fn seal_context(id: &str) -> String {
    format!("sink:{id}")
}

const COLUMNS: &str = "s.id, s.name, s.kind, s.url, s.streams, s.connection_ids, s.format, s.params, s.secret, s.state, s.created_at, s.last_success_at, s.last_error_at, s.last_error_status, s.last_error_message, s.replay_from, s.replay_to, s.replay_at, \
    (SELECT coalesce(sum(delivered), 0) FROM sink_progress p WHERE p.sink_id = s.id) AS delivered, \
    (SELECT coalesce(sum(repeats), 0) FROM sink_progress p WHERE p.sink_id = s.id) AS repeats, \
    (SELECT coalesce(sum(pending), 0) FROM sink_progress p WHERE p.sink_id = s.id) AS pending, \
    (SELECT count(*) FROM sink_dead_letters d WHERE d.sink_id = s.id) AS dead_letters, \
    s.dead_letters_dropped, s.dead_letter_replay_at";

/// A sink, its settings and state decoded once from its row.
#[derive(Clone, Deserialize)]
#[serde(from = "StoredSink")]
pub struct SinkRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub url: String,
    pub streams: String,
    pub format: String,
    /// Sealed; opened only to deliver.
    pub secret: String,
    pub state: SinkState,
    /// `None` for a row that does not decode (never written by this code),
    /// which is then left alone.
    pub settings: Option<SinkSettings>,
    pub created_at: i64,
    pub last_success_at: Option<i64>,
    pub last_error_at: Option<i64>,
    pub last_error_status: Option<i64>,
    pub last_error_message: Option<String>,
    pub replay_from: Option<i64>,
    pub replay_to: Option<i64>,
    pub replay_at: Option<i64>,
    pub delivered: i64,
    pub repeats: i64,
    pub pending: i64,
    pub dead_letters: i64,
    pub dead_letters_dropped: i64,
    /// When an admin last asked for the dead letters again (ms).
    pub dead_letter_replay_at: Option<i64>,
}

/// A sink's row as D1 holds it, before its settings are decoded.
#[derive(Deserialize)]
struct StoredSink {
    id: String,
    name: String,
    kind: String,
    url: String,
    streams: String,
    connection_ids: Option<String>,
    format: String,
    params: String,
    /// Sealed; opened only to deliver.
    secret: String,
    state: String,
    created_at: i64,
    last_success_at: Option<i64>,
    last_error_at: Option<i64>,
    last_error_status: Option<i64>,
    last_error_message: Option<String>,
    replay_from: Option<i64>,
    replay_to: Option<i64>,
    replay_at: Option<i64>,
    delivered: i64,
    repeats: i64,
    pending: i64,
    dead_letters: i64,
    dead_letters_dropped: i64,
    /// When an admin last asked for the dead letters again (ms).
    dead_letter_replay_at: Option<i64>,
}

impl From<StoredSink> for SinkRow {
    fn from(r: StoredSink) -> SinkRow {
        let settings = decode_settings(&r);
        SinkRow {
            state: SinkState::parse(&r.state).unwrap_or(SinkState::Active),
            settings,
            id: r.id,
            name: r.name,
            kind: r.kind,
            url: r.url,
            streams: r.streams,
            format: r.format,
            secret: r.secret,
            created_at: r.created_at,
            last_success_at: r.last_success_at,
            last_error_at: r.last_error_at,
            last_error_status: r.last_error_status,
            last_error_message: r.last_error_message,
            replay_from: r.replay_from,
            replay_to: r.replay_to,
            replay_at: r.replay_at,
            delivered: r.delivered,
            repeats: r.repeats,
            pending: r.pending,
            dead_letters: r.dead_letters,
            dead_letters_dropped: r.dead_letters_dropped,
            dead_letter_replay_at: r.dead_letter_replay_at,
        }
    }
}

/// The settings as core types, or `None` for a row that does not decode.
fn decode_settings(r: &StoredSink) -> Option<SinkSettings> {
    Some(SinkSettings {
        name: r.name.clone(),
        // Stored URLs passed the policy when written.
        url: SinkUrl::parse(&r.url, Loopback::Allowed).ok()?,
        streams: r
            .streams
            .split(',')
            .map(Stream::parse)
            .collect::<Option<Vec<_>>>()?,
        connection_ids: match &r.connection_ids {
            None => None,
            Some(j) => Some(serde_json::from_str(j).ok()?),
        },
        format: Format::parse(&r.format)?,
        params: serde_json::from_str(&r.params).ok()?,
    })
}

/// Dead letters kept per sink; the oldest beyond go (and are counted).
pub const DEAD_LETTERS_PER_SINK: i64 = 1_000;

/// An item a receiver refused on its own, as stored.
#[derive(Clone, Debug, Deserialize)]
pub struct DeadLetterRow {
    pub id: String,
    pub connection_id: String,
    pub stream: String,
    pub item_id: String,
    pub page: i64,
    pub line: i64,
    pub status: i64,
    pub reason: String,
    pub at: i64,
}

impl DeadLetterRow {
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "connection_id": self.connection_id,
            "stream": self.stream,
            "item_id": self.item_id,
            "status": u16::try_from(self.status).unwrap_or(0),
            "reason": self.reason,
            "at": rfc3339(self.at),
        })
    }
}

/// A dead letter to keep: which item, where it lies, and why.
pub struct NewDeadLetter<'a> {
    pub stream: Stream,
    pub item_id: &'a str,
    pub page: i64,
    pub line: i64,
    pub status: u16,
    pub reason: &'a str,
}

impl SinkRow {
    pub fn secret(&self, ring: &KeyRing) -> Option<Secret> {
        ring.open(&self.secret, &seal_context(&self.id)).ok()
    }

    /// Whether the sink takes this connection's items: never for a row
    /// whose settings do not decode.
    pub fn serves(&self, connection_id: &str) -> bool {
        self.settings
            .as_ref()
            .is_some_and(|s| s.serves(connection_id))
    }

    /// As the API shows it: never the credential.
    pub fn to_api(&self) -> Value {
        let settings = self.settings.as_ref();
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "streams": self.streams.split(',').collect::<Vec<_>>(),
            "format": self.format,
            "connection_ids": settings.and_then(|s| s.connection_ids.clone()),
            "state": self.state.as_str(),
            "created_at": rfc3339(self.created_at),
            "delivered": count(self.delivered),
            "repeats": count(self.repeats),
            "pending": count(self.pending),
            "dead_letters": count(self.dead_letters),
            "dead_letters_dropped": count(self.dead_letters_dropped),
            "last_success_at": self.last_success_at.map(rfc3339),
            "last_error": self.last_error_at.map(|at| json!({
                "at": rfc3339(at),
                "status": self.last_error_status.and_then(|s| u16::try_from(s).ok()),
                "message": self.last_error_message,
            })),
        });
        match settings.map(|s| &s.params) {
            Some(SinkParams::Elastic { index }) => v["index"] = json!(index),
            Some(SinkParams::Sentinel {
                tenant_id,
                client_id,
                dcr_immutable_id,
                stream_name,
                token_url,
            }) => {
                v["tenant_id"] = json!(tenant_id);
                v["client_id"] = json!(client_id);
                v["dcr_immutable_id"] = json!(dcr_immutable_id);
                v["stream_name"] = json!(stream_name);
                v["token_url"] = json!(token_url);
            }
            _ => {}
        }
        v
    }
}

/// What one delivery step did for one sink and connection.
pub struct StepReport<'a> {
    pub sink_id: &'a str,
    pub connection_id: &'a str,
    pub delivered: u64,
    pub repeats: u64,
    pub pending: u64,
    pub succeeded_at: Option<i64>,
    /// (at, status, message) of the last failure in this step.
    pub failed: Option<(i64, u16, &'a str)>,
    pub state: Option<SinkState>,
}

pub struct SinkStore {
    db: D1Database,
}

impl SinkStore {
    pub fn new(db: D1Database) -> Self {
        SinkStore { db }
    }

    pub async fn list(&self) -> Result<Vec<SinkRow>> {
        self.db
            .prepare(format!(
                "SELECT {COLUMNS} FROM sinks s ORDER BY s.created_at, s.id"
            ))
            .all()
            .await?
            .results()
    }

    pub async fn get(&self, id: &str) -> Result<Option<SinkRow>> {
        self.db
            .prepare(format!("SELECT {COLUMNS} FROM sinks s WHERE s.id = ?1"))
            .bind(&[s(id)])?
            .first(None)
            .await
    }

    pub async fn insert(
        &self,
        id: &str,
        settings: &SinkSettings,
        sealed: &str,
        now: i64,
    ) -> Result<()> {
        self.db
            .prepare("INSERT INTO sinks (id, name, kind, url, streams, connection_ids, format, params, secret, state, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'active', ?10, ?10)")
            .bind(&[
                s(id),
                s(&settings.name),
                s(settings.params.kind().as_str()),
                s(settings.url.as_str()),
                s(&stream_list(&settings.streams)),
                opt(settings.connection_ids.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default()).as_deref()),
                s(settings.format.as_str()),
                s(&serde_json::to_string(&settings.params)?),
                s(sealed),
                n(now),
            ])?
            .run()
            .await?;
        Ok(())
    }

    /// A PATCH: new settings, a new credential if one was sent, a state if
    /// one was asked for (an enabled sink starts as active again).
    pub async fn update(
        &self,
        id: &str,
        settings: &SinkSettings,
        sealed: Option<&str>,
        state: Option<SinkState>,
        now: i64,
    ) -> Result<()> {
        self.db
            .prepare("UPDATE sinks SET name = ?2, url = ?3, streams = ?4, connection_ids = ?5, format = ?6, params = ?7, secret = coalesce(?8, secret), state = coalesce(?9, state), updated_at = ?10 WHERE id = ?1")
            .bind(&[
                s(id),
                s(&settings.name),
                s(settings.url.as_str()),
                s(&stream_list(&settings.streams)),
                opt(settings.connection_ids.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default()).as_deref()),
                s(settings.format.as_str()),
                s(&serde_json::to_string(&settings.params)?),
                opt(sealed),
                opt(state.map(SinkState::as_str)),
                n(now),
            ])?
            .run()
            .await?;
        Ok(())
    }

    pub async fn delete(&self, id: &str) -> Result<bool> {
        let r = self
            .db
            .prepare("DELETE FROM sinks WHERE id = ?1")
            .bind(&[s(id)])?
            .run()
            .await?;
        Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0) > 0)
    }

    pub async fn set_replay(&self, id: &str, from: i64, to: i64, asked_ms: i64) -> Result<()> {
        self.db
            .prepare(
                "UPDATE sinks SET replay_from = ?2, replay_to = ?3, replay_at = ?4 WHERE id = ?1",
            )
            .bind(&[s(id), n(from), n(to), n(asked_ms)])?
            .run()
            .await?;
        Ok(())
    }

    /// Keeps dead letters of one sink and connection, then drops the sink's
    /// oldest beyond `DEAD_LETTERS_PER_SINK`, counting them: a receiver
    /// refusing many items cannot grow the table without bound.
    pub async fn add_dead_letters(
        &self,
        sink_id: &str,
        connection_id: &str,
        letters: &[NewDeadLetter<'_>],
        now: i64,
    ) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        // One statement for the whole lot, however many a call refused.
        let mut rows = Vec::with_capacity(letters.len());
        for l in letters {
            rows.push(json!({
                "id": crate::hex(&crate::random_bytes::<16>()?),
                "stream": l.stream.as_str(),
                "item_id": l.item_id,
                "page": l.page,
                "line": l.line,
                "status": l.status,
                "reason": l.reason,
            }));
        }
        let mut stmts = vec![self
            .db
            .prepare("INSERT INTO sink_dead_letters (id, sink_id, connection_id, stream, item_id, page, line, status, reason, at) \
                      SELECT json_extract(value, '$.id'), ?1, ?2, json_extract(value, '$.stream'), json_extract(value, '$.item_id'), json_extract(value, '$.page'), json_extract(value, '$.line'), json_extract(value, '$.status'), json_extract(value, '$.reason'), ?3 FROM json_each(?4)")
            .bind(&[
                s(sink_id),
                s(connection_id),
                n(now),
                s(&serde_json::to_string(&rows)?),
            ])?];
        stmts.push(
            self.db
                .prepare("DELETE FROM sink_dead_letters WHERE id IN (SELECT id FROM sink_dead_letters WHERE sink_id = ?1 ORDER BY at DESC, id DESC LIMIT -1 OFFSET ?2)")
                .bind(&[s(sink_id), n(DEAD_LETTERS_PER_SINK)])?,
        );
        stmts.push(
            self.db
                .prepare("UPDATE sinks SET dead_letters_dropped = dead_letters_dropped + changes() WHERE id = ?1")
                .bind(&[s(sink_id)])?,
        );
        self.db.batch(stmts).await?;
        Ok(())
    }

    /// A sink's dead letters, newest first (all connections, or one).
    pub async fn dead_letters(
        &self,
        sink_id: &str,
        connection_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetterRow>> {
        self.db
            .prepare("SELECT id, connection_id, stream, item_id, page, line, status, reason, at FROM sink_dead_letters WHERE sink_id = ?1 AND (?2 IS NULL OR connection_id = ?2) ORDER BY at DESC, id DESC LIMIT ?3")
            .bind(&[s(sink_id), opt(connection_id), n(i64::from(limit))])?
            .all()
            .await?
            .results()
    }

    /// One connection's dead letters of a sink, oldest first (a replay).
    pub async fn oldest_dead_letters(
        &self,
        sink_id: &str,
        connection_id: &str,
        limit: u32,
    ) -> Result<Vec<DeadLetterRow>> {
        self.db
            .prepare("SELECT id, connection_id, stream, item_id, page, line, status, reason, at FROM sink_dead_letters WHERE sink_id = ?1 AND connection_id = ?2 ORDER BY at, id LIMIT ?3")
            .bind(&[s(sink_id), s(connection_id), n(i64::from(limit))])?
            .all()
            .await?
            .results()
    }

    /// Dead letters the receiver has now taken.
    pub async fn forget_dead_letters(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.db
            .prepare("DELETE FROM sink_dead_letters WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(&[s(&serde_json::to_string(ids)?)])?
            .run()
            .await?;
        Ok(())
    }

    /// Asks every object serving the sink to send its dead letters again.
    pub async fn ask_dead_letter_replay(&self, id: &str, asked_ms: i64) -> Result<()> {
        self.db
            .prepare("UPDATE sinks SET dead_letter_replay_at = ?2 WHERE id = ?1")
            .bind(&[s(id), n(asked_ms)])?
            .run()
            .await?;
        Ok(())
    }

    /// A value sealed under a rotated-out key, sealed again under the current.
    pub async fn reseal(&self, id: &str, old: &str, fresh: &str) -> Result<()> {
        self.db
            .prepare("UPDATE sinks SET secret = ?3 WHERE id = ?1 AND secret = ?2")
            .bind(&[s(id), s(old), s(fresh)])?
            .run()
            .await?;
        Ok(())
    }

    /// A delivery step's outcome: progress per connection, and the sink's
    /// last success, last error and state. A sink or connection deleted
    /// meanwhile makes the progress row fail its foreign key: nothing to keep.
    pub async fn report(&self, r: &StepReport<'_>) -> Result<()> {
        let now = crate::now();
        let progress = self
            .db
            .prepare("INSERT INTO sink_progress (sink_id, connection_id, delivered, repeats, pending, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                      ON CONFLICT (sink_id, connection_id) DO UPDATE SET delivered = delivered + excluded.delivered, repeats = repeats + excluded.repeats, pending = excluded.pending, updated_at = excluded.updated_at")
            .bind(&[s(r.sink_id), s(r.connection_id), n(r.delivered as i64), n(r.repeats as i64), n(r.pending as i64), n(now)])?;
        let _ = progress.run().await;
        if let Some(at) = r.succeeded_at {
            self.db
                .prepare("UPDATE sinks SET last_success_at = ?2, state = CASE WHEN state = 'failing' THEN 'active' ELSE state END WHERE id = ?1")
                .bind(&[s(r.sink_id), n(at)])?
                .run()
                .await?;
        }
        if let Some((at, status, message)) = r.failed {
            self.db
                .prepare("UPDATE sinks SET last_error_at = ?2, last_error_status = ?3, last_error_message = ?4 WHERE id = ?1")
                .bind(&[s(r.sink_id), n(at), n(i64::from(status)), s(message)])?
                .run()
                .await?;
        }
        if let Some(state) = r.state {
            // Disabling wins over everything; failing does not undo a disable.
            self.db
                .prepare("UPDATE sinks SET state = ?2 WHERE id = ?1 AND state != 'disabled'")
                .bind(&[s(r.sink_id), s(state.as_str())])?
                .run()
                .await?;
        }
        Ok(())
    }
}

fn stream_list(streams: &[Stream]) -> String {
    streams
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
