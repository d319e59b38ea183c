//! HTTP routing: ServiceNow's paths plus the `/__sim/` control API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine;
use rand::{Rng, SeedableRng};

use crate::clock::Clock;
use crate::conditions::{acl_hidden, Conditions};
use crate::config::SimConfig;
use crate::data::{self, Generator, Table, Value, EVENT_TABLES};
use crate::oauth::{self, Credentials, GrantOutcome, TokenKind, TokenStore};
use crate::table::{self, TableRequest, Viewer};
use crate::time_fmt;

pub struct State {
    pub config: SimConfig,
    pub base_url: String,
    pub clock: Clock,
    pub tokens: Mutex<TokenStore>,
    pub tables: RwLock<HashMap<&'static str, Table>>,
    pub conditions: RwLock<Conditions>,
    generator: Mutex<Generator>,
    dice: Mutex<rand::rngs::SmallRng>,
    pub requests: AtomicU64,
    pub table_requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub batch_requests: AtomicU64,
    /// Calls answered with an injected fault (a fractional 429 or a 5xx).
    pub faults_served: AtomicU64,
    /// Scenarios planted so far (each picks people of its own).
    scenarios: AtomicU64,
    /// The people kept for scenarios, fixed at start: a scenario that
    /// makes one of them an admin must not move the others into the noise.
    reserved: Vec<String>,
    /// Table API reads per table (batch items included), for round-trip tests.
    pub reads_by_table: Mutex<HashMap<String, u64>>,
    hour_window: Mutex<(i64, u32)>,
}

impl State {
    pub fn new(config: SimConfig, conditions: Conditions, base_url: String) -> Self {
        let clock = Clock::default();
        let tables = data::generate(&data::DataSpec {
            seed: config.seed,
            now: clock.now(),
            days: config.days,
            events_per_day: config.events_per_day,
            release: &config.release,
            username: &config.username,
            user_is_admin: true,
            app_user: &config.app_user,
            hardening: &|tables, g, created| {
                crate::posture::apply(tables, g, config.posture, created)
            },
            people: config.people,
            fleet_accounts: config.fleet_accounts,
        });
        let mut generator = Generator::new(config.seed.wrapping_add(0xD1CE));
        // The noise inserted later names the same people the generated
        // noise did: never the ones kept for scenarios.
        generator.users = data::noise_users(&tables);
        let reserved = data::reserved_users(&tables);
        let kept_for_scenarios = reserved.clone();
        generator.benign = data::benign_users(&tables)
            .into_iter()
            .filter(|u| !reserved.contains(u))
            .collect();
        let state = State {
            tokens: Mutex::new(TokenStore::new(config.seed)),
            dice: Mutex::new(rand::rngs::SmallRng::seed_from_u64(config.seed ^ 0xFA17)),
            generator: Mutex::new(generator),
            tables: RwLock::new(tables),
            conditions: RwLock::new(conditions),
            clock,
            base_url,
            config,
            requests: AtomicU64::new(0),
            table_requests: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            batch_requests: AtomicU64::new(0),
            faults_served: AtomicU64::new(0),
            scenarios: AtomicU64::new(0),
            reserved: kept_for_scenarios,
            reads_by_table: Mutex::new(HashMap::new()),
            hour_window: Mutex::new((0, 0)),
        };
        state.mirror_switches(None);
        state
    }

    /// The hardening switches of the conditions, as the instance's
    /// `sys_properties` show them: at start the ones switched on, later the
    /// ones a conditions patch names (so a profile's values stay otherwise).
    fn mirror_switches(&self, patch: Option<&serde_json::Value>) {
        let cond = self.conditions();
        let now = self.clock.now();
        let (Ok(mut tables), Ok(mut g)) = (self.tables.write(), self.generator.lock()) else {
            return;
        };
        // A switch that is off and has no record stays absent (its default).
        for (condition, name, on) in [
            (
                "password_grant_disabled",
                PASSWORD_GRANT_OFF,
                cond.password_grant_disabled,
            ),
            (
                "basic_auth_restricted",
                BASIC_AUTH_RESTRICTION,
                cond.basic_auth_restricted,
            ),
        ] {
            let named = patch.is_some_and(|p| p.get(condition).is_some());
            if (patch.is_none() && on) || named {
                data::set_property(&mut tables, &mut g, name, &on.to_string(), now);
            }
        }
    }

    fn property_on(&self, name: &str) -> bool {
        self.tables
            .read()
            .ok()
            .and_then(|t| data::property(&t, name))
            .is_some_and(|v| v.trim() == "true")
    }

    /// The sys_id of a user, by user name.
    fn user_sys_id(&self, user_name: &str) -> Option<String> {
        let tables = self.tables.read().ok()?;
        tables.get("sys_user")?.records.iter().find_map(|r| {
            matches!(r.get("user_name"), Some(Value::Str(u)) if u == user_name)
                .then(|| r.sys_id.clone())
        })
    }

    /// Records a basic-auth call of an interactive account, once per user.
    fn record_basic_auth_exception(&self, user_name: &str) {
        let Some(user_sys_id) = self.user_sys_id(user_name) else {
            return;
        };
        let now = self.clock.now();
        let (Ok(mut tables), Ok(mut g)) = (self.tables.write(), self.generator.lock()) else {
            return;
        };
        let Some(table) = tables.get_mut("sys_user_basic_auth_exception") else {
            return;
        };
        let seen = table.records.iter().any(
            |r| matches!(r.get("user"), Some(Value::Ref { sys_id, .. }) if *sys_id == user_sys_id),
        );
        if seen {
            return;
        }
        let id = g.sys_id();
        table.insert_sorted(vec![data::Record {
            sys_id: id.clone(),
            created: now,
            fields: vec![
                ("sys_id", Value::Str(id)),
                (
                    "user",
                    Value::Ref {
                        table: "sys_user",
                        sys_id: user_sys_id,
                        display: user_name.to_string(),
                    },
                ),
                ("sys_created_on", Value::DateTime(now)),
                ("sys_updated_on", Value::DateTime(now)),
            ],
        }]);
    }

    /// Whether the account is web-service-only (the basic-auth restriction spares it).
    fn web_service_only(&self, user_name: &str) -> bool {
        let Ok(tables) = self.tables.read() else {
            return false;
        };
        tables.get("sys_user").is_some_and(|t| {
            t.records.iter().any(|r| {
                matches!(r.get("user_name"), Some(Value::Str(u)) if u == user_name)
                    && matches!(r.get("web_service_access_only"), Some(Value::Bool(true)))
            })
        })
    }

    fn conditions(&self) -> Conditions {
        self.conditions
            .read()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0
            && self
                .dice
                .lock()
                .map(|mut r| r.random::<f64>() < p)
                .unwrap_or(false)
    }
}

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/oauth_token.do", post(token))
        .route("/api/now/table/{table}", get(table_v1))
        .route("/api/now/v1/table/{table}", get(table_v1))
        .route("/api/now/v2/table/{table}", get(table_v2))
        .route("/api/now/batch", post(batch))
        .route("/api/now/v1/batch", post(batch))
        .route("/__sim/tokens", get(tokens))
        .route("/__sim/revoke", post(revoke))
        .route("/__sim/clock", post(clock))
        .route(
            "/__sim/conditions",
            get(get_conditions).post(set_conditions),
        )
        .route("/__sim/insert", post(insert))
        .route("/__sim/properties", post(set_properties))
        .route("/__sim/users", post(change_user))
        .route("/__sim/scenario", post(plant_scenario))
        .route("/__sim/truth", get(truth))
        .route("/__sim/stats", get(stats))
        .fallback(any(fallback))
        .with_state(state)
}

const PASSWORD_GRANT_OFF: &str = "glide.oauth.inbound.ropc.grant_type.disabled";
const BASIC_AUTH_RESTRICTION: &str = "glide.authenticate.basic_auth.restriction.active";

const JSON_TYPE: &str = "application/json;charset=UTF-8";

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, JSON_TYPE)], body.into()).into_response()
}

const HIBERNATING_PAGE: &str = "<!DOCTYPE html><html><head><title>Instance Hibernating page</title></head><body><h1>Your instance is hibernating</h1><p>Sign in to the developer site to wake it.</p></body></html>";

fn hibernating_response() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        HIBERNATING_PAGE,
    )
        .into_response()
}

async fn fallback(AxState(state): AxState<Arc<State>>) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    if state.conditions().hibernating {
        return hibernating_response();
    }
    json_response(
        StatusCode::BAD_REQUEST,
        table::error_body("Requested URI does not represent any resource", None),
    )
}

/// Client credentials from `Authorization: Basic` (RFC 6749 client_secret_basic).
fn basic_pair(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

async fn token(AxState(state): AxState<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.token_requests.fetch_add(1, Ordering::Relaxed);
    let cond = state.conditions();
    if cond.hibernating {
        return hibernating_response();
    }
    let denied = || json_response(StatusCode::UNAUTHORIZED, oauth::ACCESS_DENIED_BODY);
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
        fleet_accounts: c.fleet_accounts,
        password: &c.password,
        client_id: &c.client_id,
        client_secret: &c.client_secret,
        app_user: &c.app_user,
        user_active: !cond.user_inactive,
        user_locked_out: cond.user_locked_out,
        // The switch is the property, whether a condition or an admin set it.
        password_grant_allowed: !cond.password_grant_disabled
            && !state.property_on(PASSWORD_GRANT_OFF),
        access_lifespan: c.access_lifespan,
        refresh_lifespan: c.refresh_lifespan,
    };
    let now = state.clock.now();
    let outcome = match state.tokens.lock() {
        Ok(mut store) => store.grant(&creds, &form, basic_pair(&headers), now),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match outcome {
        GrantOutcome::Issued(v) => json_response(StatusCode::OK, v.to_string()),
        GrantOutcome::Denied => denied(),
    }
}

async fn table_v1(
    state: AxState<Arc<State>>,
    headers: HeaderMap,
    Path(t): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    table_api(state, headers, t, q, false).await
}

async fn table_v2(
    state: AxState<Arc<State>>,
    headers: HeaderMap,
    Path(t): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    table_api(state, headers, t, q, true).await
}

/// The session's user name, when the call is authenticated.
fn authenticated(state: &State, headers: &HeaderMap, cond: &Conditions) -> Option<String> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        let now = state.clock.now();
        return state
            .tokens
            .lock()
            .ok()
            .and_then(|s| s.access_user(token.trim(), now).map(str::to_string));
    }
    let (u, p) = basic_pair(headers)?;
    let ok = crate::config::is_account(&state.config.username, state.config.fleet_accounts, &u)
        && p == state.config.password
        && !cond.user_locked_out
        && !cond.user_inactive;
    if !ok {
        return None;
    }
    // The restriction concerns accounts that also sign in interactively:
    // recorded while it is active, denied once it enforces.
    let restricted = cond.basic_auth_restricted || state.property_on(BASIC_AUTH_RESTRICTION);
    if restricted && !state.web_service_only(&u) {
        if cond.basic_auth_denying {
            return None;
        }
        state.record_basic_auth_exception(&u);
    }
    Some(u)
}

/// Who is calling and the rate-limit headers their call carries.
struct Session {
    user_sys_id: String,
    user_name: String,
    rate_headers: Vec<(&'static str, String)>,
}

fn with_headers(mut resp: Response, extra: &[(&'static str, String)]) -> Response {
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    resp
}

/// What every API call meets before it is served: hibernation, auth, the
/// REST API switch, rate limits, injected errors and slowness.
async fn gate(state: &State, headers: &HeaderMap, cond: &Conditions) -> Result<Session, Response> {
    if cond.hibernating {
        return Err(hibernating_response());
    }
    let Some(user) = authenticated(state, headers, cond) else {
        return Err(json_response(
            StatusCode::UNAUTHORIZED,
            table::error_body(
                "User Not Authenticated",
                Some("Required to provide Auth information"),
            ),
        ));
    };
    let user_sys_id = state.user_sys_id(&user).unwrap_or_default();
    if cond.rest_api_off {
        return Err(json_response(
            StatusCode::FORBIDDEN,
            table::error_body("User Not Authorized", Some("REST API access is not enabled for this instance (com.glide.rest plugin inactive)")),
        ));
    }
    let now = state.clock.now();
    let reset = (now / 3600 + 1) * 3600;
    let mut rate_headers = Vec::new();
    if let Some(limit) = cond.rate_limit_per_hour {
        let used = match state.hour_window.lock() {
            Ok(mut w) => {
                if w.0 != now / 3600 {
                    *w = (now / 3600, 0);
                }
                w.1 += 1;
                w.1
            }
            Err(_) => 0,
        };
        rate_headers = vec![
            ("X-RateLimit-Limit", limit.to_string()),
            ("X-RateLimit-Reset", reset.to_string()),
            (
                "X-RateLimit-Rule",
                "4f1b6c3e1b2a30104b6a2f0dcd4bcb11".to_string(),
            ),
        ];
        if used > limit {
            let mut h = rate_headers.clone();
            h.push(("Retry-After", (reset - now).to_string()));
            return Err(with_headers(too_many(), &h));
        }
    }
    if state.roll(cond.rate_limit_fraction) {
        state.faults_served.fetch_add(1, Ordering::Relaxed);
        let retry = cond.retry_after_secs;
        return Err(with_headers(
            too_many(),
            &[
                ("Retry-After", retry.to_string()),
                ("X-RateLimit-Limit", "1000".into()),
                ("X-RateLimit-Reset", (now + retry as i64).to_string()),
                (
                    "X-RateLimit-Rule",
                    "4f1b6c3e1b2a30104b6a2f0dcd4bcb11".into(),
                ),
            ],
        ));
    }
    if state.roll(cond.error_fraction) {
        state.faults_served.fetch_add(1, Ordering::Relaxed);
        let (status, msg) = if state.roll(0.5) {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        };
        return Err(json_response(status, table::error_body(msg, None)));
    }
    if cond.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cond.slow_ms)).await;
    }
    Ok(Session {
        user_sys_id,
        user_name: user,
        rate_headers,
    })
}

async fn table_api(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    table_name: String,
    raw_query: Option<String>,
    v2: bool,
) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.table_requests.fetch_add(1, Ordering::Relaxed);
    let cond = state.conditions();
    let session = match gate(&state, &headers, &cond).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let query = raw_query.as_deref().unwrap_or("");
    let resp = serve_table(&state, &cond, &session, &table_name, query, v2).await;
    if cond.log_api_calls {
        let version = if v2 { "v2/" } else { "" };
        let url = format!("/api/now/{version}table/{table_name}?{query}");
        log_call(&state, &session, &url, resp.status());
    }
    with_headers(resp, &session.rate_headers)
}

/// The call's `syslog_transaction` row, written once it is served (so its
/// own answer does not hold it), as `log_api_calls` asks.
fn log_call(state: &State, session: &Session, url: &str, status: StatusCode) {
    let Ok(mut g) = state.generator.lock() else {
        return;
    };
    let mut record = g.event("syslog_transaction", state.clock.now());
    drop(g);
    for (name, value) in record.fields.iter_mut() {
        let v = match *name {
            "url" => url.to_string(),
            "sys_created_by" => session.user_name.clone(),
            "type" => "rest".to_string(),
            "response_status" => status.as_u16().to_string(),
            "remote_ip" => "127.0.0.1".to_string(),
            _ => continue,
        };
        *value = Value::Str(v);
    }
    if let Ok(mut tables) = state.tables.write() {
        tables
            .entry("syslog_transaction")
            .or_default()
            .insert_sorted(vec![record]);
    }
}

async fn serve_table(
    state: &State,
    cond: &Conditions,
    session: &Session,
    table_name: &str,
    raw_query: &str,
    v2: bool,
) -> Response {
    if let Ok(mut reads) = state.reads_by_table.lock() {
        *reads.entry(table_name.to_string()).or_insert(0) += 1;
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    if cond.invalid_tables.iter().any(|t| t == table_name) {
        return json_response(
            StatusCode::BAD_REQUEST,
            table::error_body(&format!("Invalid table {table_name}"), None),
        );
    }
    if cond.erroring_tables.iter().any(|t| t == table_name) {
        state.faults_served.fetch_add(1, Ordering::Relaxed);
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            table::error_body("Service Unavailable", None),
        );
    }
    let req = TableRequest::from_params(table_name, v2, params);
    if cond
        .cancel_above_limit
        .is_some_and(|max| req.limit > max as usize)
    {
        if cond.cancel_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(cond.cancel_delay_ms)).await;
        }
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            table::error_body(
                "Transaction cancelled: maximum execution time exceeded",
                Some("Transaction cancelled: maximum execution time exceeded Check logs for error trace or enable glide.rest.debug property to verify REST request processing"),
            ),
        );
    }
    let viewer = Viewer {
        user_sys_id: &session.user_sys_id,
        user_name: &session.user_name,
        now: state.clock.now(),
        not_admin: cond.not_admin,
        acl_hidden_fraction: cond.acl_hidden_fraction,
    };
    let page = match state.tables.read() {
        Ok(tables) => table::serve(&tables, &req, &viewer, &state.base_url),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_headers(json_response(status, page.body), &page.headers)
}

#[derive(serde::Deserialize)]
struct BatchRequest {
    batch_request_id: Option<String>,
    rest_requests: Vec<BatchItem>,
}

#[derive(serde::Deserialize)]
struct BatchItem {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    exclude_response_headers: bool,
}

/// `POST /api/now/v1/batch`: several calls in one round trip. Each item is
/// served as its own call would be (GET on the Table API here), its body
/// base64-encoded; auth, rate limits and faults apply to the batch as a whole.
async fn batch(AxState(state): AxState<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.batch_requests.fetch_add(1, Ordering::Relaxed);
    state.table_requests.fetch_add(1, Ordering::Relaxed);
    let cond = state.conditions();
    if cond.batch_api_off && !cond.hibernating {
        return json_response(
            StatusCode::BAD_REQUEST,
            table::error_body("Requested URI does not represent any resource", None),
        );
    }
    let session = match gate(&state, &headers, &cond).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let Ok(req) = serde_json::from_slice::<BatchRequest>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            table::error_body(
                "Invalid batch request",
                Some("Expected {\"batch_request_id\", \"rest_requests\": [...]}"),
            ),
        );
    };
    let mut serviced = Vec::new();
    for item in req.rest_requests {
        let started = std::time::Instant::now();
        let (path, query) = item.url.split_once('?').unwrap_or((item.url.as_str(), ""));
        let table_route = path
            .strip_prefix("/api/now/v2/table/")
            .map(|t| (t, true))
            .or_else(|| path.strip_prefix("/api/now/v1/table/").map(|t| (t, false)))
            .or_else(|| path.strip_prefix("/api/now/table/").map(|t| (t, false)));
        let resp = match (item.method.eq_ignore_ascii_case("GET"), table_route) {
            (true, Some((table_name, v2))) => {
                serve_table(&state, &cond, &session, table_name, query, v2).await
            }
            (false, _) => json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                table::error_body("Method not Supported", None),
            ),
            (true, None) => json_response(
                StatusCode::BAD_REQUEST,
                table::error_body("Requested URI does not represent any resource", None),
            ),
        };
        let status = resp.status();
        let item_headers: Vec<serde_json::Value> = if item.exclude_response_headers {
            Vec::new()
        } else {
            resp.headers()
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| serde_json::json!({"name": k.as_str(), "value": v}))
                })
                .collect()
        };
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        serviced.push(serde_json::json!({
            "id": item.id,
            "body": base64::engine::general_purpose::STANDARD.encode(&bytes),
            "status_code": status.as_u16(),
            "status_text": status.canonical_reason().unwrap_or(""),
            "headers": item_headers,
            "execution_time": started.elapsed().as_millis() as u64,
        }));
    }
    if cond.log_api_calls {
        log_call(&state, &session, "/api/now/v1/batch", StatusCode::OK);
    }
    let answer = serde_json::json!({
        "batch_request_id": req.batch_request_id.unwrap_or_default(),
        "serviced_requests": serviced,
        "unserviced_requests": [],
    });
    with_headers(
        json_response(StatusCode::OK, answer.to_string()),
        &session.rate_headers,
    )
}

fn too_many() -> Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        table::error_body(
            "Rate limit exceeded",
            Some("The maximum number of requests per hour has been reached for this user"),
        ),
    )
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

async fn get_conditions(AxState(state): AxState<Arc<State>>) -> Response {
    Json(state.conditions()).into_response()
}

async fn set_conditions(
    AxState(state): AxState<Arc<State>>,
    Json(patch): Json<serde_json::Value>,
) -> Response {
    let Ok(mut current) = state.conditions.write() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match current.merged(&patch) {
        Ok(next) => {
            *current = next.clone();
            drop(current);
            state.mirror_switches(Some(&patch));
            Json(next).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
    }
}

/// `POST /__sim/properties {"name": "value" | null, …}`: sets system
/// properties as an admin would; null deletes the record (its default applies).
async fn set_properties(
    AxState(state): AxState<Arc<State>>,
    Json(patch): Json<HashMap<String, Option<String>>>,
) -> Response {
    let now = state.clock.now();
    let (Ok(mut tables), Ok(mut g)) = (state.tables.write(), state.generator.lock()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    for (name, value) in &patch {
        match value {
            Some(v) => data::set_property(&mut tables, &mut g, name, v, now),
            None => data::remove_property(&mut tables, name),
        }
    }
    Json(serde_json::json!({ "changed": patch.len() })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioRequest {
    name: crate::scenario::Scenario,
    #[serde(default)]
    variant: crate::scenario::Variant,
    /// `YYYY-MM-DD hh:mm:ss` (UTC) or unix seconds; default now.
    at: Option<serde_json::Value>,
}

/// `POST /__sim/scenario`: plants an attack's records (see `scenario.rs`).
async fn plant_scenario(
    AxState(state): AxState<Arc<State>>,
    Json(req): Json<ScenarioRequest>,
) -> Response {
    let at = match req.at.as_ref() {
        None => state.clock.now(),
        Some(v) => match parse_time(v) {
            Some(t) => t,
            None => return (
                StatusCode::BAD_REQUEST,
                Json(
                    serde_json::json!({ "error": "at: use 'YYYY-MM-DD hh:mm:ss' or unix seconds" }),
                ),
            )
                .into_response(),
        },
    };
    let (Ok(mut tables), Ok(mut g)) = (state.tables.write(), state.generator.lock()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let planting = crate::scenario::Planting {
        scenario: req.name,
        variant: req.variant,
        at,
        now: state.clock.now(),
        seq: state.scenarios.fetch_add(1, Ordering::Relaxed) as usize,
    };
    match crate::scenario::plant(&mut tables, &mut g, &state.reserved, &planting) {
        Ok(planted) => Json(planted).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    user_name: String,
    active: Option<bool>,
    locked_out: Option<bool>,
    /// A role to grant (a new sys_user_has_role record).
    grant: Option<String>,
    /// A role to take away: its sys_user_has_role record is deleted and
    /// the deletion recorded in sys_audit_delete.
    revoke: Option<String>,
}

/// `POST /__sim/users`: an admin's change to an account, as ServiceNow
/// records it (sys_updated_on moves, sys_audit and sys_audit_delete rows).
async fn change_user(AxState(state): AxState<Arc<State>>, Json(ch): Json<UserChange>) -> Response {
    let now = state.clock.now();
    let (Ok(mut tables), Ok(mut g)) = (state.tables.write(), state.generator.lock()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let bad = |msg: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": msg })),
        )
            .into_response()
    };
    let Some(user) = tables.get("sys_user").and_then(|t| {
        t.records
            .iter()
            .find(|r| matches!(r.get("user_name"), Some(Value::Str(u)) if *u == ch.user_name))
            .cloned()
    }) else {
        return bad(format!("no user {}", ch.user_name));
    };
    let display = match (user.get("first_name"), user.get("last_name")) {
        (Some(f), Some(l)) => format!("{} {}", f.raw(), l.raw()),
        _ => ch.user_name.clone(),
    };
    let user_ref = Value::Ref {
        table: "sys_user",
        sys_id: user.sys_id.clone(),
        display,
    };
    let mut audits = Vec::new();
    for (field, value) in [("active", ch.active), ("locked_out", ch.locked_out)] {
        let Some(value) = value else { continue };
        if let Some(t) = tables.get_mut("sys_user") {
            for r in t.records.iter_mut().filter(|r| r.sys_id == user.sys_id) {
                let old = r.get(field).map(Value::raw).unwrap_or_default();
                for (name, v) in r.fields.iter_mut() {
                    match *name {
                        n if n == field => *v = Value::Bool(value),
                        "sys_updated_on" => *v = Value::DateTime(now),
                        _ => {}
                    }
                }
                audits.push(data::audit_record(
                    &mut g,
                    "sys_user",
                    &user.sys_id,
                    field,
                    &old,
                    &value.to_string(),
                    now,
                ));
            }
        }
    }
    if let Some(role) = &ch.grant {
        let role_id = tables.get("sys_user_role").and_then(|t| {
            t.records
                .iter()
                .find(|r| matches!(r.get("name"), Some(Value::Str(n)) if n == role))
                .map(|r| r.sys_id.clone())
        });
        let Some(role_id) = role_id else {
            return bad(format!("no role {role}"));
        };
        let grant = data::role_grant(&mut g, &user_ref, role, role_id, now);
        tables
            .entry("sys_user_has_role")
            .or_default()
            .insert_sorted(vec![grant]);
    }
    if let Some(role) = &ch.revoke {
        let held = |r: &data::Record| {
            matches!(r.get("user"), Some(Value::Ref { sys_id, .. }) if *sys_id == user.sys_id)
                && matches!(r.get("role"), Some(Value::Ref { display, .. }) if display == role)
        };
        let gone: Vec<String> = tables
            .get("sys_user_has_role")
            .map(|t| {
                t.records
                    .iter()
                    .filter(|r| held(r))
                    .map(|r| r.sys_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        if gone.is_empty() {
            return bad(format!("{} does not hold {role}", ch.user_name));
        }
        if let Some(t) = tables.get_mut("sys_user_has_role") {
            t.records.retain(|r| !held(r));
        }
        let deletions: Vec<data::Record> = gone
            .iter()
            .map(|id| data::deletion_record(&mut g, "sys_user_has_role", id, role, now))
            .collect();
        tables
            .entry("sys_audit_delete")
            .or_default()
            .insert_sorted(deletions);
    }
    tables.entry("sys_audit").or_default().insert_sorted(audits);
    Json(serde_json::json!({ "user": user.sys_id })).into_response()
}

#[derive(serde::Deserialize)]
struct InsertRequest {
    table: String,
    count: usize,
    /// `YYYY-MM-DD hh:mm:ss` (UTC) or unix seconds; default now. An older
    /// time inserted now is a late commit.
    created_on: Option<serde_json::Value>,
    /// Spread the records over this many seconds from `created_on`; 0 puts
    /// them all in one second (a burst).
    #[serde(default)]
    spread_secs: i64,
    /// Field values every inserted record takes instead of generated ones
    /// (a field the table has): a record as large as a test needs.
    #[serde(default)]
    fields: std::collections::BTreeMap<String, String>,
    /// Fields padded with `x` to this many bytes (after any value from
    /// `fields`), for records larger than a request body could carry; at
    /// most 64 MB each.
    #[serde(default)]
    field_bytes: std::collections::BTreeMap<String, usize>,
}

fn parse_time(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => time_fmt::parse_raw(s),
        _ => None,
    }
}

async fn insert(AxState(state): AxState<Arc<State>>, Json(req): Json<InsertRequest>) -> Response {
    if !EVENT_TABLES.contains(&req.table.as_str()) {
        let msg = format!("insert takes one of {EVENT_TABLES:?}");
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": msg })),
        )
            .into_response();
    }
    let known = data::TABLES
        .iter()
        .find(|(t, _)| *t == req.table)
        .map_or(&[][..], |(_, f)| *f);
    if let Some(unknown) = req
        .fields
        .keys()
        .chain(req.field_bytes.keys())
        .find(|f| !known.contains(&f.as_str()))
    {
        let msg = format!("fields: {unknown} is not a field of {}", req.table);
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": msg })),
        )
            .into_response();
    }
    let at = match req.created_on.as_ref() {
        None => state.clock.now(),
        Some(v) => match parse_time(v) {
            Some(t) => t,
            None => {
                return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": "created_on: use 'YYYY-MM-DD hh:mm:ss' or unix seconds" }))).into_response()
            }
        },
    };
    let rows: Vec<data::Record> = match state.generator.lock() {
        Ok(mut g) => (0..req.count)
            .map(|i| {
                let offset = if req.spread_secs > 0 {
                    (i as i64) % req.spread_secs
                } else {
                    0
                };
                let mut record = g.event(&req.table, at + offset);
                for (name, value) in record.fields.iter_mut() {
                    if let Some(v) = req.fields.get(*name) {
                        *value = data::Value::Str(v.clone());
                    }
                    if let Some(n) = req.field_bytes.get(*name) {
                        let mut text = match value {
                            data::Value::Str(s) => std::mem::take(s),
                            _ => String::new(),
                        };
                        let n = (*n).min(64 << 20);
                        if text.len() < n {
                            text.push_str(&"x".repeat(n - text.len()));
                        }
                        *value = data::Value::Str(text);
                    }
                }
                record
            })
            .collect(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let ids: Vec<String> = rows.iter().map(|r| r.sys_id.clone()).collect();
    let Some(name) = EVENT_TABLES.iter().find(|t| **t == req.table) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match state.tables.write() {
        Ok(mut tables) => tables.entry(name).or_default().insert_sorted(rows),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    Json(serde_json::json!({ "table": req.table, "inserted": ids.len(), "sys_ids": ids }))
        .into_response()
}

#[derive(serde::Deserialize)]
struct TruthQuery {
    table: String,
    from: Option<String>,
    to: Option<String>,
}

/// The sys_ids the connector's user can see in `[from, to)`, oldest first.
async fn truth(
    AxState(state): AxState<Arc<State>>,
    axum::extract::Query(q): axum::extract::Query<TruthQuery>,
) -> Response {
    let bound = |s: &Option<String>| {
        s.as_ref()
            .map(|v| v.parse::<i64>().ok().or_else(|| time_fmt::parse_raw(v)))
    };
    let (from, to) = (bound(&q.from), bound(&q.to));
    if matches!(from, Some(None)) || matches!(to, Some(None)) {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": "from/to: use 'YYYY-MM-DD hh:mm:ss' or unix seconds" }))).into_response();
    }
    let (from, to) = (
        from.flatten().unwrap_or(i64::MIN),
        to.flatten().unwrap_or(i64::MAX),
    );
    let fraction = state.conditions().acl_hidden_fraction;
    let Ok(tables) = state.tables.read() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(t) = tables.get(q.table.as_str()) else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such table" })),
        )
            .into_response();
    };
    let hide = EVENT_TABLES.contains(&q.table.as_str());
    let ids: Vec<&str> = t
        .records
        .iter()
        .filter(|r| {
            r.created >= from && r.created < to && !(hide && acl_hidden(&r.sys_id, fraction))
        })
        .map(|r| r.sys_id.as_str())
        .collect();
    Json(serde_json::json!({ "table": q.table, "count": ids.len(), "sys_ids": ids }))
        .into_response()
}

/// Every token the instance has issued, so tests can prove none is stored or
/// shown in plaintext by the connector.
async fn tokens(AxState(state): AxState<Arc<State>>) -> Response {
    let all = state.tokens.lock().map(|s| s.issued()).unwrap_or_default();
    Json(serde_json::json!({ "tokens": all })).into_response()
}

async fn stats(AxState(state): AxState<Arc<State>>) -> Response {
    Json(serde_json::json!({
        "requests": state.requests.load(Ordering::Relaxed),
        "table_requests": state.table_requests.load(Ordering::Relaxed),
        "token_requests": state.token_requests.load(Ordering::Relaxed),
        "batch_requests": state.batch_requests.load(Ordering::Relaxed),
        "faults_served": state.faults_served.load(Ordering::Relaxed),
        "reads_by_table": state.reads_by_table.lock().map(|r| r.clone()).unwrap_or_default(),
        "now": state.clock.now(),
    }))
    .into_response()
}
