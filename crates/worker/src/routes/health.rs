use snc_core::health::HealthReport;
use worker::{Response, Result};

pub fn get() -> Result<Response> {
    Response::from_json(&HealthReport::ok())
}
