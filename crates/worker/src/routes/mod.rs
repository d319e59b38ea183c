//! Routing of `/api/v1/*` (everything else is a static asset served before
//! the worker runs), with the admin token check, CORS and a log line per
//! request that never holds a body or a header value.

mod accounts;
mod alerts;
mod assets;
mod connections;
mod events;
mod health;
mod openapi;
mod paging;
mod posture;
mod settings;
mod validate;

use snc_core::problem::{Problem, ProblemCode};
use worker::{console_log, Env, Method, Request, Response, Result};

use crate::auth::{self, Admission};
use crate::config::Config;
use crate::respond;

pub async fn handle(req: Request, env: Env) -> Result<Response> {
    let config = Config::from_env(&env);
    let method = req.method();
    let path = req.path();
    let origin = auth::allowed_origin(&req, &config);
    let resp = match route(req, &env, &config).await {
        Ok(r) => r,
        Err(e) => {
            console_log!(
                "{} {} failed inside the worker: {}",
                method.as_ref(),
                path,
                e
            );
            respond::problem(&Problem::new(ProblemCode::Internal))?
        }
    };
    if let Some(origin) = origin {
        auth::add_cors(resp.headers(), &origin);
    }
    console_log!("{} {} -> {}", method.as_ref(), path, resp.status_code());
    Ok(resp)
}

/// Ids are 32 lower-case hex characters; anything else cannot exist.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn route(req: Request, env: &Env, config: &Config) -> Result<Response> {
    let path = req.path();
    let method = req.method();
    if !path.starts_with("/api/") {
        return assets::serve(req, env).await;
    }
    // workers-rs reads methods it does not know (QUERY, PROPFIND, …) as GET:
    // such a request must not be answered as if it were one.
    if !req.inner().method().eq_ignore_ascii_case(method.as_ref()) {
        return respond::code(
            ProblemCode::NotFound,
            "No such route or method. See /api/v1/openapi.json.",
        );
    }
    if method == Method::Options {
        return Ok(Response::empty()?.with_status(204));
    }
    if method == Method::Get && path == "/api/v1/health" {
        return health::get();
    }
    if !path.starts_with("/api/v1/") {
        return respond::code(ProblemCode::NotFound, "No such route.");
    }
    match auth::admit(&req, config) {
        Admission::Allowed => {}
        Admission::NotConfigured => {
            return respond::code(
                ProblemCode::Unauthorized,
                "The worker has no ADMIN_TOKEN configured (wrangler secret put ADMIN_TOKEN).",
            )
        }
        Admission::NoToken => {
            return respond::code(ProblemCode::Unauthorized, "No admin token was sent.")
        }
        Admission::WrongToken => {
            return respond::code(ProblemCode::Unauthorized, "The admin token is wrong.")
        }
    }
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    match (method, segments.as_slice()) {
        (Method::Get, ["openapi.json"]) => openapi::get(),
        (Method::Get, ["settings"]) => settings::get(env, config),
        (Method::Post, ["validate"]) => validate::post(req, config).await,
        (Method::Get, ["alerts"]) => alerts::list(req, env).await,
        (Method::Get, ["alerts.ndjson"]) => alerts::ndjson(req, env).await,
        (Method::Patch, ["alerts", id]) => alerts::patch(req, env, id).await,
        (Method::Get, ["connections"]) => connections::list(env).await,
        (Method::Post, ["connections"]) => connections::create(req, env, config).await,
        (Method::Get, ["connections", id]) => connections::get(env, id).await,
        (Method::Patch, ["connections", id]) => connections::patch(req, env, id).await,
        (Method::Delete, ["connections", id]) => connections::delete(env, id).await,
        (Method::Post, ["connections", id, "reconnect"]) => {
            connections::reconnect(req, env, config, id).await
        }
        (Method::Post, ["connections", id, "pull"]) if valid_id(id) => events::pull(env, id).await,
        (Method::Get, ["connections", id, "runs"]) if valid_id(id) => events::runs(env, id).await,
        (Method::Get, ["connections", id, "events"]) if valid_id(id) => {
            events::list(req, env, id).await
        }
        (Method::Get, ["connections", id, "events.ndjson"]) if valid_id(id) => {
            events::ndjson(req, env, id).await
        }
        (Method::Get, ["connections", id, "accounts"]) if valid_id(id) => {
            accounts::list(req, env, id).await
        }
        (Method::Get, ["connections", id, "posture"]) if valid_id(id) => {
            posture::get(env, id).await
        }
        (Method::Post, ["connections", id, "posture", "check"]) if valid_id(id) => {
            posture::check(env, id).await
        }
        (Method::Get, ["connections", id, "posture.ndjson"]) if valid_id(id) => {
            posture::ndjson(env, id).await
        }
        _ => respond::code(
            ProblemCode::NotFound,
            "No such route or method. See /api/v1/openapi.json.",
        ),
    }
}
