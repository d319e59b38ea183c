//! JSON and RFC 9457 problem responses.

use serde::Serialize;
use snc_core::problem::{Problem, ProblemCode};
use worker::{Response, Result};

pub fn json<T: Serialize>(status: u16, value: &T) -> Result<Response> {
    Ok(Response::from_json(value)?.with_status(status))
}

pub fn problem(p: &Problem) -> Result<Response> {
    let mut resp = Response::from_json(p)?.with_status(p.status);
    resp.headers_mut()
        .set("content-type", "application/problem+json")?;
    if let Some(secs) = p.retry_after {
        resp.headers_mut().set("retry-after", &secs.to_string())?;
    }
    Ok(resp)
}

pub fn code(code: ProblemCode, what_happened: &str) -> Result<Response> {
    problem(&Problem::with_context(code, what_happened))
}
