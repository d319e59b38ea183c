//! HTTP routing: ServiceNow's paths plus the `/__sim/` control API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;

use crate::clock::Clock;
use crate::config::SimConfig;
use crate::oauth::{self, Credentials, GrantOutcome, TokenKind, TokenStore};

pub struct State {
    pub config: SimConfig,
    pub clock: Clock,
    pub tokens: Mutex<TokenStore>,
}

impl State {
    pub fn new(config: SimConfig) -> Self {
        State {
            tokens: Mutex::new(TokenStore::new(config.seed)),
            clock: Clock::default(),
            config,
        }
    }
}

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/oauth_token.do", post(token))
        .route("/__sim/revoke", post(revoke))
        .route("/__sim/clock", post(clock))
        .with_state(state)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

/// Client credentials from `Authorization: Basic` (RFC 6749 client_secret_basic).
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

async fn token(AxState(state): AxState<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let denied = || json_response(StatusCode::UNAUTHORIZED, oauth::ACCESS_DENIED_BODY.into());
    // The endpoint reads form bodies only; JSON gets the same opaque denial.
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return denied();
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let c = &state.config;
    let creds = Credentials {
        username: &c.username,
        password: &c.password,
        client_id: &c.client_id,
        client_secret: &c.client_secret,
        user_active: true,
        user_locked_out: false,
        password_grant_allowed: true,
        access_lifespan: c.access_lifespan,
        refresh_lifespan: c.refresh_lifespan,
    };
    let now = state.clock.now();
    let outcome = match state.tokens.lock() {
        Ok(mut store) => store.grant(&creds, &form, basic_client(&headers), now),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match outcome {
        GrantOutcome::Issued(v) => json_response(StatusCode::OK, v.to_string()),
        GrantOutcome::Denied => denied(),
    }
}

#[derive(serde::Deserialize)]
struct RevokeRequest {
    /// `access`, `refresh`, or absent for both.
    kind: Option<String>,
}

async fn revoke(AxState(state): AxState<Arc<State>>, Json(req): Json<RevokeRequest>) -> Response {
    let kind = match req.kind.as_deref() {
        Some("access") => Some(TokenKind::Access),
        Some("refresh") => Some(TokenKind::Refresh),
        _ => None,
    };
    let n = state.tokens.lock().map(|mut s| s.revoke(kind)).unwrap_or(0);
    Json(serde_json::json!({ "revoked": n })).into_response()
}

#[derive(serde::Deserialize)]
struct ClockRequest {
    advance_secs: i64,
}

async fn clock(AxState(state): AxState<Arc<State>>, Json(req): Json<ClockRequest>) -> Response {
    state.clock.advance(req.advance_secs);
    Json(serde_json::json!({ "now": state.clock.now() })).into_response()
}
