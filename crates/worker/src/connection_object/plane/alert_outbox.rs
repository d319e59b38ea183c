//! Alerts raised here that D1 has not taken yet.

use serde::Deserialize;
use snc_core::watch::detect::Alert;
use worker::Result;

use super::{text, Plane};

impl Plane {
    /// Queues alerts for D1 (an alert queued twice keeps its latest form).
    pub fn queue_alerts(&self, alerts: &[Alert]) -> Result<()> {
        for a in alerts {
            self.sql.exec(
                "INSERT OR REPLACE INTO alert_outbox (id, alert) VALUES (?, ?)",
                vec![text(&a.id), text(&serde_json::to_string(a)?)],
            )?;
        }
        Ok(())
    }

    pub fn queued_alerts(&self) -> Result<Vec<Alert>> {
        #[derive(Deserialize)]
        struct Row {
            alert: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT alert FROM alert_outbox ORDER BY id LIMIT 200", None)?
            .to_array()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.alert).ok())
            .collect())
    }

    pub fn forget_alerts(&self, alerts: &[Alert]) -> Result<()> {
        for a in alerts {
            self.sql
                .exec("DELETE FROM alert_outbox WHERE id = ?", vec![text(&a.id)])?;
        }
        Ok(())
    }
}
