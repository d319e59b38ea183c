use crate::respond::Answer;
use snc_core::health::HealthReport;
use worker::Response;

pub fn get() -> Answer {
    Ok(Response::from_json(&HealthReport::ok())?)
}
