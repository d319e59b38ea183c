//! DOM output. Text only: nothing from the network is ever parsed as HTML.

use snc_core::health::HealthReport;

use crate::api::ApiError;

pub fn render_health(target: &web_sys::Element, outcome: &Result<HealthReport, ApiError>) {
    match outcome {
        Ok(report) => {
            target.set_text_content(Some(&format!("v{}", report.version)));
            let _ = target.set_attribute("data-state", "ok");
        }
        Err(e) => {
            target.set_text_content(Some(&e.to_string()));
            let _ = target.set_attribute("data-state", "error");
        }
    }
}
