use serde_json::json;
use snc_core::connect::input::{self, ConnectRequest};
use snc_core::problem::{FieldError, Problem};
use worker::Request;

use crate::config::Config;
use crate::respond::{self, Answer};

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
    let valid = input::validate(&body, &config.policy).map_err(Problem::validation)?;
    respond::json(
        200,
        &json!({ "valid": true, "normalized": valid.normalized() }),
    )
}
