//! The run history the health view shows.

use serde::{Deserialize, Serialize};
use snc_core::pull::run::RunOutcome;
use worker::Result;

use super::{int, opt_text, text, Plane};

/// Runs kept in the health history.
const RUNS_KEPT: i64 = 500;

#[derive(Deserialize, Serialize)]
pub struct RunRow {
    pub started_at: String,
    pub finished_at: String,
    pub outcome: RunOutcome,
    pub detail: Option<String>,
    pub events: i64,
    pub calls: i64,
    pub statements: i64,
}

impl Plane {
    pub fn record_run(&self, run: &RunRow) -> Result<()> {
        self.sql.exec(
            "INSERT INTO runs (started_at, finished_at, outcome, detail, events, calls, statements) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![text(&run.started_at), text(&run.finished_at), text(run.outcome.as_str()), opt_text(run.detail.as_deref()), int(run.events), int(run.calls), int(run.statements)],
        )?;
        self.sql.exec(
            "DELETE FROM runs WHERE id <= (SELECT max(id) FROM runs) - ?",
            vec![int(RUNS_KEPT)],
        )?;
        Ok(())
    }

    /// The latest runs, newest first; a run whose outcome this version
    /// does not know (written by a newer one) is left out, not the list.
    pub fn runs(&self, limit: u32) -> Result<Vec<RunRow>> {
        #[derive(Deserialize)]
        struct Stored {
            started_at: String,
            finished_at: String,
            outcome: String,
            detail: Option<String>,
            events: i64,
            calls: i64,
            statements: i64,
        }
        let rows: Vec<Stored> = self
            .sql
            .exec(
                "SELECT started_at, finished_at, outcome, detail, events, calls, statements FROM runs ORDER BY id DESC LIMIT ?",
                vec![int(i64::from(limit))],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(RunRow {
                    outcome: RunOutcome::parse(&r.outcome)?,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    detail: r.detail,
                    events: r.events,
                    calls: r.calls,
                    statements: r.statements,
                })
            })
            .collect())
    }
}
