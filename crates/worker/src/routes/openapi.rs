use crate::respond::Answer;
use worker::Response;

/// The OpenAPI 3.1 description, kept beside the code it describes.
const OPENAPI: &str = include_str!("../../openapi.json");

pub fn get() -> Answer {
    let mut resp = Response::ok(OPENAPI)?;
    resp.headers_mut().set("content-type", "application/json")?;
    Ok(resp)
}
