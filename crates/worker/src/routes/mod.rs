//! Routing of `/api/v1/*`; everything else is a static asset served by
//! Cloudflare before the worker runs.

mod health;

use worker::{Env, Method, Request, Response, Result};

pub async fn dispatch(req: Request, _env: Env) -> Result<Response> {
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Get, "/api/v1/health") => health::get(),
        _ => not_found(),
    }
}

fn not_found() -> Result<Response> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Not found",
        "status": 404,
        "detail": "No such route. The API lives under /api/v1; see /api/v1/openapi.json.",
        "code": "not_found",
    });
    let mut resp = Response::from_json(&body)?.with_status(404);
    resp.headers_mut()
        .set("content-type", "application/problem+json")?;
    Ok(resp)
}
