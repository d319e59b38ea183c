use crate::config::Config;
use crate::respond::Answer;
use snc_core::api::health::{HealthReport, SignIn};
use worker::Response;

pub fn get(config: &Config) -> Answer {
    let sign_in = match config.access {
        Some(_) => SignIn::CloudflareAccess,
        None => SignIn::Credential,
    };
    Ok(Response::from_json(&HealthReport::ok(sign_in))?)
}
