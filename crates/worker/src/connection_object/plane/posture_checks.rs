//! Posture checks: each report, its score history, and when the next is due.

use serde::{Deserialize, Serialize};
use worker::Result;

use super::{int, text, Plane};

/// Posture is checked daily (and at connect, and when asked).
pub const POSTURE_EVERY_SECS: i64 = 86_400;

/// One point of the posture history.
#[derive(Deserialize, Serialize)]
pub struct PosturePoint {
    pub checked_at: i64,
    pub score: i64,
}

impl Plane {
    pub fn store_posture(&self, checked_at: i64, score: u8, report: &str) -> Result<()> {
        self.sql.exec(
            "INSERT OR REPLACE INTO posture (checked_at, score, report) VALUES (?, ?, ?)",
            vec![int(checked_at), int(i64::from(score)), text(report)],
        )?;
        self.sql
            .exec("DELETE FROM meta WHERE k = 'posture_requested'", None)?;
        Ok(())
    }

    /// The latest report, as stored (JSON).
    pub fn latest_posture(&self) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            report: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT report FROM posture ORDER BY checked_at DESC LIMIT 1",
                None,
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.report))
    }

    /// Scores over time, oldest first.
    pub fn posture_history(&self, limit: u32) -> Result<Vec<PosturePoint>> {
        let mut rows: Vec<PosturePoint> = self
            .sql
            .exec(
                "SELECT checked_at, score FROM posture ORDER BY checked_at DESC LIMIT ?",
                vec![int(i64::from(limit))],
            )?
            .to_array()?;
        rows.reverse();
        Ok(rows)
    }

    pub fn request_posture(&self) -> Result<()> {
        self.set_meta("posture_requested", "1")
    }

    /// Asked for, never checked, or last checked a day ago.
    pub fn posture_due(&self, now: i64) -> Result<bool> {
        if self.meta("posture_requested")?.is_some() {
            return Ok(true);
        }
        let last = self.posture_history(1)?;
        Ok(last
            .first()
            .is_none_or(|p| p.checked_at <= now - POSTURE_EVERY_SECS))
    }
}
