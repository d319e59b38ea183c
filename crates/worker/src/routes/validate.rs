use serde_json::json;
use snc_core::connect::input::{self, ConnectRequest};
use snc_core::problem::{FieldError, Problem, ProblemCode};
use worker::Request;

use crate::config::Config;
use crate::respond::{self, Answer};

/// The problem for a connect request that failed validation: a refused
/// instance URL is `instance_url_forbidden`, anything else `validation_failed`.
pub fn validation_problem(errors: Vec<FieldError>) -> Problem {
    let forbidden = errors.iter().any(|e| e.code == "instance_url_forbidden");
    let mut p = Problem::validation(errors);
    if forbidden {
        let base = Problem::new(ProblemCode::InstanceUrlForbidden);
        p.code = base.code;
        p.title = base.title;
        p.type_uri = base.type_uri;
        p.detail = base.detail;
    }
    p
}

pub async fn read_connect_request(
    req: &mut Request,
) -> std::result::Result<ConnectRequest, Problem> {
    let text = req.text().await.unwrap_or_default();
    serde_json::from_str::<ConnectRequest>(&text).map_err(|_| {
        Problem::validation(vec![FieldError {
            field: "body".into(),
            code: "invalid_json".into(),
            message: "Send a JSON object with name, instance_url, method, username, password, and for OAuth client_id and client_secret.".into(),
        }])
    })
}

pub async fn post(mut req: Request, config: &Config) -> Answer {
    let body = read_connect_request(&mut req).await?;
    let valid = input::validate(&body, &config.policy).map_err(validation_problem)?;
    respond::json(
        200,
        &json!({ "valid": true, "normalized": valid.normalized() }),
    )
}
