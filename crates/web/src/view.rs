//! The version line. Text only: nothing from the network is parsed as HTML.

use snc_core::api::health::HealthReport;
use snc_core::problem::Problem;

pub fn render_health(target: &web_sys::Element, outcome: &Result<HealthReport, Problem>) {
    match outcome {
        Ok(report) => {
            target.set_text_content(Some(&format!("v{}", report.version)));
            let _ = target.set_attribute("data-state", "ok");
        }
        Err(p) => {
            target.set_text_content(Some(&format!("{}: {}", p.title, p.detail)));
            let _ = target.set_attribute("data-state", "error");
        }
    }
}
