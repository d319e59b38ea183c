use crate::respond::Answer;
use snc_core::api::health::HealthReport;
use worker::Response;

pub fn get() -> Answer {
    Ok(Response::from_json(&HealthReport::ok())?)
}
