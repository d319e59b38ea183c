//! The run history the health view shows.

use serde::{Deserialize, Serialize};
use snc_core::pull::run::RunOutcome;
use snc_core::pull::schedule::IdleRuns;
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
    /// Pulls this row stands for: 1, or an hour's pulls that found nothing.
    #[serde(default = "one")]
    pub pulls: i64,
}

fn one() -> i64 {
    1
}

impl RunRow {
    /// Pulls that found nothing, as one row.
    pub fn idle(runs: &IdleRuns) -> RunRow {
        let pulls = i64::from(runs.pulls);
        RunRow {
            started_at: snc_core::clock::rfc3339(runs.since),
            finished_at: snc_core::clock::rfc3339(runs.until),
            outcome: RunOutcome::Done,
            detail: Some(runs.detail()),
            events: 0,
            calls: i64::from(runs.calls),
            statements: 0,
            pulls,
        }
    }
}

impl Plane {
    /// Runs rows from before idle pulls were folded stand for one pull.
    pub(super) fn upgrade_runs(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct Column {
            name: String,
        }
        let columns: Vec<Column> = self
            .sql
            .exec("SELECT name FROM pragma_table_info('runs')", None)?
            .to_array()?;
        if !columns.iter().any(|c| c.name == "pulls") {
            self.sql.exec(
                "ALTER TABLE runs ADD COLUMN pulls INTEGER NOT NULL DEFAULT 1",
                None,
            )?;
        }
        Ok(())
    }

    pub fn record_run(&self, run: &RunRow) -> Result<()> {
        self.sql.exec(
            "INSERT INTO runs (started_at, finished_at, outcome, detail, events, calls, statements, pulls) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            vec![text(&run.started_at), text(&run.finished_at), text(run.outcome.as_str()), opt_text(run.detail.as_deref()), int(run.events), int(run.calls), int(run.statements), int(run.pulls)],
        )?;
        self.sql.exec(
            "DELETE FROM runs WHERE id <= (SELECT max(id) FROM runs) - ?",
            vec![int(RUNS_KEPT)],
        )?;
        Ok(())
    }

    /// The latest runs, newest first (this hour's idle pulls, not yet a
    /// row, first); a run whose outcome this version does not know
    /// (written by a newer one) is left out, not the list.
    pub fn runs(&self, limit: u32) -> Result<Vec<RunRow>> {
        let pending = self.schedule()?.idle.map(|i| RunRow::idle(&i));
        let mut rows: Vec<RunRow> = pending.into_iter().collect();
        rows.extend(self.stored_runs(limit)?);
        rows.truncate(limit as usize);
        Ok(rows)
    }

    fn stored_runs(&self, limit: u32) -> Result<Vec<RunRow>> {
        #[derive(Deserialize)]
        struct Stored {
            started_at: String,
            finished_at: String,
            outcome: String,
            detail: Option<String>,
            events: i64,
            calls: i64,
            statements: i64,
            pulls: i64,
        }
        let rows: Vec<Stored> = self
            .sql
            .exec(
                "SELECT started_at, finished_at, outcome, detail, events, calls, statements, pulls FROM runs ORDER BY id DESC LIMIT ?",
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
                    pulls: r.pulls,
                })
            })
            .collect())
    }
}
