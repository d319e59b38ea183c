//! Each sink's cursor over this object's stored pages and alerts, and the
//! reads forwarding makes of them.

use serde::{Deserialize, Deserializer};
use snc_core::forward::replay::ReplayPosition;
use snc_core::forward::step::SinkClock;
use snc_core::forward::Stream;
use snc_core::watch::detect::Alert;
use worker::{Result, SqlStorageValue as V};

use super::{int, text, Plane};

/// A cursor's line when its page is delivered whole.
const WHOLE_PAGE: i64 = 1_000_000_000;
/// Pages read ahead per batch.
const PAGES_PER_BATCH: i64 = 4;

/// Where a sink stands for this connection.
#[derive(Clone, Debug, Deserialize)]
pub struct SinkCursor {
    pub sink_id: String,
    /// The last page line delivered (`line` -1: none of `page` yet).
    pub page: i64,
    pub line: i64,
    pub alert_seq: i64,
    pub failures: i64,
    pub failing_since: Option<i64>,
    pub next_at: i64,
    /// The latest replay ask done, by its time in milliseconds (earlier
    /// releases kept seconds: all smaller, so any ask since is newer).
    pub replay_at: i64,
    /// How far the running replay has come (stored as JSON).
    #[serde(deserialize_with = "stored_position")]
    pub replay_after: Option<ReplayPosition>,
}

impl SinkCursor {
    /// Past a delivered item of `stream`: its (page, line) for an event,
    /// its (sequence, _) for an alert.
    pub fn passed(&mut self, stream: Stream, position: (i64, i64)) {
        match stream {
            Stream::Events => (self.page, self.line) = position,
            Stream::Alerts => self.alert_seq = position.0,
        }
    }

    pub fn clock(&self) -> SinkClock {
        SinkClock {
            next_at: self.next_at,
            failures: u32::try_from(self.failures.max(0)).unwrap_or(u32::MAX),
            failing_since: self.failing_since,
        }
    }

    pub fn set_clock(&mut self, clock: SinkClock) {
        self.next_at = clock.next_at;
        self.failures = i64::from(clock.failures);
        self.failing_since = clock.failing_since;
    }
}

/// A position that does not decode (written by a later release) restarts
/// its replay (see `ReplayPosition::decode`).
fn stored_position<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<ReplayPosition>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.and_then(|t| ReplayPosition::decode(&t)))
}

#[derive(Deserialize)]
pub struct PageRow {
    pub id: i64,
    pub key: String,
    pub members: String,
    pub events: i64,
}

impl Plane {
    pub fn sink_cursor(&self, sink_id: &str) -> Result<Option<SinkCursor>> {
        let rows: Vec<SinkCursor> = self
            .sql
            .exec(
                "SELECT sink_id, page, line, alert_seq, failures, failing_since, next_at, replay_at, replay_after FROM sink_cursors WHERE sink_id = ?",
                vec![text(sink_id)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    /// A new sink starts at its creation: what was stored before is not
    /// sent (unless replayed). Pages stored before stored times were kept
    /// count as before.
    pub fn start_sink_cursor(&self, sink_id: &str, created_at: i64) -> Result<SinkCursor> {
        #[derive(Deserialize)]
        struct Max {
            m: Option<i64>,
        }
        let page: Vec<Max> = self
            .sql
            .exec(
                "SELECT max(p.id) AS m FROM pages p LEFT JOIN page_stored s ON s.page = p.id WHERE s.at IS NULL OR s.at < ?",
                vec![int(created_at)],
            )?
            .to_array()?;
        let seq: Vec<Max> = self
            .sql
            .exec(
                "SELECT max(seq) AS m FROM alert_feed WHERE at < ?",
                vec![int(created_at)],
            )?
            .to_array()?;
        let c = SinkCursor {
            sink_id: sink_id.to_string(),
            page: page.first().and_then(|m| m.m).unwrap_or(0),
            // Past any page's last line (SQLite hands numbers over as
            // doubles: this stays exact).
            line: WHOLE_PAGE,
            alert_seq: seq.first().and_then(|m| m.m).unwrap_or(0),
            failures: 0,
            failing_since: None,
            next_at: 0,
            // In milliseconds, as asks are: a replay asked in the second the
            // sink was made (a script making it, then replaying) comes after.
            replay_at: created_at.saturating_mul(1000).saturating_sub(1),
            replay_after: None,
        };
        self.save_sink_cursor(&c)?;
        Ok(c)
    }

    pub fn save_sink_cursor(&self, c: &SinkCursor) -> Result<()> {
        self.sql.exec(
            "INSERT INTO sink_cursors (sink_id, page, line, alert_seq, failures, failing_since, next_at, replay_at, replay_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (sink_id) DO UPDATE SET page = excluded.page, line = excluded.line, alert_seq = excluded.alert_seq, failures = excluded.failures, failing_since = excluded.failing_since, next_at = excluded.next_at, replay_at = excluded.replay_at, replay_after = excluded.replay_after",
            vec![
                text(&c.sink_id),
                int(c.page),
                int(c.line),
                int(c.alert_seq),
                int(c.failures),
                c.failing_since.map_or(V::Null, int),
                int(c.next_at),
                int(c.replay_at),
                c.replay_after
                    .as_ref()
                    .and_then(|p| serde_json::to_string(p).ok())
                    .map_or(V::Null, V::String),
            ],
        )?;
        Ok(())
    }

    /// Cursors of sinks that no longer exist go.
    pub fn keep_sink_cursors(&self, sink_ids: &[String]) -> Result<()> {
        self.sql.exec(
            "DELETE FROM sink_cursors WHERE sink_id NOT IN (SELECT value FROM json_each(?))",
            vec![text(&serde_json::to_string(sink_ids)?)],
        )?;
        Ok(())
    }

    pub fn pages_after(&self, page: i64, line: i64) -> Result<Vec<PageRow>> {
        self.sql
            .exec(
                "SELECT id, key, members, events FROM pages WHERE id > ? OR (id = ? AND events > ? + 1) ORDER BY id LIMIT ?",
                vec![int(page), int(page), int(line), int(PAGES_PER_BATCH)],
            )?
            .to_array()
    }

    pub fn page_by_id(&self, id: i64) -> Result<Option<PageRow>> {
        let rows: Vec<PageRow> = self
            .sql
            .exec(
                "SELECT id, key, members, events FROM pages WHERE id = ?",
                vec![int(id)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    pub fn pending_events(&self, page: i64, line: i64) -> Result<i64> {
        #[derive(Deserialize)]
        struct Sum {
            n: Option<i64>,
        }
        let rows: Vec<Sum> = self
            .sql
            .exec(
                "SELECT sum(CASE WHEN id = ? THEN max(events - ? - 1, 0) ELSE events END) AS n FROM pages WHERE id >= ?",
                vec![int(page), int(line), int(page)],
            )?
            .to_array()?;
        Ok(rows.first().and_then(|r| r.n).unwrap_or(0))
    }

    /// Alerts raised (or grown) here, for the sinks; written once D1 has them.
    pub fn feed_alerts(&self, alerts: &[Alert], at: i64) -> Result<()> {
        for a in alerts {
            self.sql.exec(
                "INSERT INTO alert_feed (at, alert) VALUES (?, ?)",
                vec![int(at), text(&serde_json::to_string(a)?)],
            )?;
        }
        Ok(())
    }

    pub fn alerts_after(&self, seq: i64, limit: i64) -> Result<Vec<(i64, Alert)>> {
        #[derive(Deserialize)]
        struct Row {
            seq: i64,
            alert: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT seq, alert FROM alert_feed WHERE seq > ? ORDER BY seq LIMIT ?",
                vec![int(seq), int(limit)],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.alert).ok().map(|a| (r.seq, a)))
            .collect())
    }

    pub fn pending_alerts(&self, seq: i64) -> Result<i64> {
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let rows: Vec<Count> = self
            .sql
            .exec(
                "SELECT count(*) AS n FROM alert_feed WHERE seq > ?",
                vec![int(seq)],
            )?
            .to_array()?;
        Ok(rows.first().map_or(0, |r| r.n))
    }
}
