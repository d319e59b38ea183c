//! Routing of `/api/v1/*` (everything else is a static asset served before
//! the worker runs): who is calling, whether they may, 404/405, the audit
//! entry of every change, CORS, and a log line per request that never holds
//! a body or a header value.

mod accounts;
mod alerts;
mod assets;
mod audit_log;
mod connections;
mod events;
mod health;
mod keys;
mod me;
mod openapi;
mod paging;
mod posture;
mod settings;
mod sinks;
mod tickets;
mod validate;

use snc_core::api::access::{self, Actor, ActorKind, Caller, Decision};
use snc_core::api::routes::{self as api, ApiMethod, Change, Resolution, Resource, Route};
use snc_core::problem::{Problem, ProblemCode};
use worker::{console_log, Env, Method, Request, Response, Result};

use crate::auth::{self, Refusal};
use crate::config::Config;
use crate::d1::audit::{self, AuditLog, Entry};
use crate::d1::credentials::AccessStore;
use crate::respond::{self, Answer, AppError};

pub async fn handle(req: Request, env: Env) -> Result<Response> {
    let config = Config::from_env(&env);
    let method = req.method();
    // What the log shows of a path a stranger chose: bounded.
    let path = api::logged_path(&req.path()).into_owned();
    let origin = auth::allowed_origin(&req, &config);
    let resp = match route(req, &env, &config).await.or_else(AppError::answer) {
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

async fn route(req: Request, env: &Env, config: &Config) -> Answer {
    let path = req.path();
    if !path.starts_with("/api/") {
        return Ok(assets::serve(req, env).await?);
    }
    if req.method() == Method::Options {
        return Ok(Response::empty()?.with_status(204));
    }
    if req.method() == Method::Get && path == "/api/v1/health" {
        return health::get(config);
    }
    // Bodies are read whole by the handlers: a body must announce a
    // length within the cap before anything reads it (or checks its
    // credential: a stranger's megabytes are never read).
    let header = |n: &str| req.headers().get(n).ok().flatten();
    if !api::body_allowed(
        header("content-length").as_deref(),
        header("transfer-encoding").as_deref(),
    ) {
        return respond::fail(
            ProblemCode::PayloadTooLarge,
            "The request body is over 64 KB, or its length was not sent.",
        );
    }
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return respond::fail(ProblemCode::NotFound, "No such route.");
    };
    // workers-rs reads methods it does not know (QUERY, PROPFIND, …) as
    // GET, so the method is taken from the request as sent.
    let resolution = api::resolve(&req.inner().method(), rest);
    let now = crate::now();
    let access = AccessStore::new(env.d1("DB")?);
    let ip = auth::client_ip(&req);
    let audit = AuditLog::new(env.d1("DB")?);
    let caller = match auth::authenticate(&req, &access, config, now).await? {
        Ok(caller) => caller,
        Err(refusal) => {
            return refused(refusal, &audit, &api::logged_path(&path), ip.as_deref()).await
        }
    };
    if let Some(refused) = over_caller_limit(env, &caller).await {
        return refused;
    }
    // Access vouches through a cookie the browser sends by itself: a change
    // asked by a page of another origin is refused (bearer credentials are
    // sent only by the page that holds them, so they need no such check).
    if matches!(caller, Caller::Access { .. })
        && req.method() != Method::Get
        && !same_origin_or_allowed(&req, config)
    {
        forbidden(&audit, &caller, &path, ip.as_deref()).await;
        return respond::fail(
            ProblemCode::Forbidden,
            "A change through a Cloudflare Access sign-in must come from this connector's own page (or an origin in ALLOWED_ORIGINS).",
        );
    }
    let route = match resolution {
        Resolution::Found(route) => route,
        Resolution::NotFound => {
            return respond::fail(
                ProblemCode::NotFound,
                "No such route. See /api/v1/openapi.json.",
            )
        }
        Resolution::MethodNotAllowed(methods) => {
            let mut resp = respond::problem(&Problem::with_context(
                ProblemCode::MethodNotAllowed,
                format!(
                    "{} takes {}.",
                    api::logged_path(&path),
                    api::allow_header(methods)
                ),
            ))?;
            resp.headers_mut()
                .set("allow", &api::allow_header(methods))?;
            return Ok(resp);
        }
    };
    let origin = req
        .headers()
        .get("origin")
        .ok()
        .flatten()
        .and_then(|o| access::normalize_origin(&o));
    if let Decision::Forbidden(why) = access::permits(&caller, &route, origin.as_deref()) {
        forbidden(&audit, &caller, &path, ip.as_deref()).await;
        return respond::fail(ProblemCode::Forbidden, why);
    }
    let Some(change) = route.change() else {
        return dispatch(req, env, config, &route, &caller).await;
    };
    // A change: what it was, to what, and how it ended go into the audit log.
    let actions = change_actions(change, &req).await;
    if let (Caller::Ticket(t), Resource::Connections) = (&caller, &route.resource) {
        if !access.claim_ticket(&t.id, now).await? {
            forbidden(&audit, &caller, &path, ip.as_deref()).await;
            return respond::fail(
                ProblemCode::Forbidden,
                "This connect ticket has already connected an instance, is connecting one now, or has used its 5 connect attempts; mint a new one.",
            );
        }
    }
    // A problem is answered (and audited with its code) here; a failure
    // inside the worker stays an error for `handle` to log.
    let mut resp = dispatch(req, env, config, &route, &caller)
        .await
        .or_else(AppError::answer);
    let (outcome, created) = match &mut resp {
        Ok(r) => outcome_of(r).await,
        Err(_) => (ProblemCode::Internal.as_str().to_string(), None),
    };
    if let (Caller::Ticket(t), Resource::Connections) = (&caller, &route.resource) {
        access.settle_ticket(&t.id, created.as_deref()).await?;
    }
    let target = route.target().map(str::to_string).or(created);
    for action in actions {
        audit
            .write(&Entry {
                at_ms: crate::now_ms(),
                actor: &caller.actor(),
                action: &action,
                target: target.as_deref(),
                outcome: &outcome,
                ip: ip.as_deref(),
            })
            .await;
    }
    Ok(resp?)
}

/// A key's or ticket's calls past `CALLS_PER_CALLER_MINUTE`: 429 until the
/// minute ends. Counted by the `CALLER_LIMIT` binding (per Cloudflare
/// location, in fixed minutes); a deployment without the binding is not
/// limited here, and says so in its log.
async fn over_caller_limit(env: &Env, caller: &Caller) -> Option<Answer> {
    let key = access::rate_limit_key(caller)?;
    let limiter = match env.rate_limiter("CALLER_LIMIT") {
        Ok(l) => l,
        Err(_) => {
            console_log!("no CALLER_LIMIT binding: keys and tickets are not limited per minute");
            return None;
        }
    };
    match limiter.limit(key).await {
        Ok(outcome) if !outcome.success => {
            let p = Problem::rate_limited(
                &format!(
                    "This credential made more than {} API calls this minute.",
                    access::CALLS_PER_CALLER_MINUTE
                ),
                "Wait until the time given, then call more slowly (a script reading events follows next_cursor one page at a time).",
                60,
            );
            Some(Err(p.into()))
        }
        Ok(_) => None,
        Err(e) => {
            console_log!("CALLER_LIMIT failed ({e}); the call goes on");
            None
        }
    }
}

/// A 403's audit entry: who was refused what.
async fn forbidden(audit: &AuditLog, caller: &Caller, path: &str, ip: Option<&str>) {
    audit
        .write(&Entry {
            at_ms: crate::now_ms(),
            actor: &caller.actor(),
            action: "access.forbidden",
            target: Some(&api::logged_path(path)),
            outcome: ProblemCode::Forbidden.as_str(),
            ip,
        })
        .await;
}

/// No `Origin` (a script), this worker's own origin, or one of
/// `ALLOWED_ORIGINS`; and never a request the browser marks cross-site.
fn same_origin_or_allowed(req: &Request, config: &Config) -> bool {
    let header = |n: &str| req.headers().get(n).ok().flatten();
    if header("sec-fetch-site").is_some_and(|v| v == "cross-site" || v == "same-site") {
        return auth::allowed_origin(req, config).is_some();
    }
    let Some(origin) = header("origin") else {
        return true;
    };
    let own = req.url().ok().map(|u| u.origin().ascii_serialization());
    own.as_deref() == Some(origin.as_str()) || config.allowed_origins.contains(&origin)
}

/// 401 or 429, written to the audit log when a credential was refused.
async fn refused(refusal: Refusal, audit: &AuditLog, path: &str, ip: Option<&str>) -> Answer {
    match refusal {
        Refusal::NoCredential => {
            respond::fail(ProblemCode::Unauthorized, "No credential was sent.")
        }
        Refusal::Wrong {
            actor,
            why,
            audit: write,
        } => {
            if write {
                audit
                    .write(&Entry {
                        at_ms: crate::now_ms(),
                        actor: &actor,
                        action: "credential.refused",
                        target: Some(path),
                        outcome: ProblemCode::Unauthorized.as_str(),
                        ip,
                    })
                    .await;
            }
            respond::fail(ProblemCode::Unauthorized, why)
        }
        Refusal::Slowed {
            retry_after,
            audit: first,
        } => {
            if first {
                let actor = Actor {
                    kind: ActorKind::AdminToken,
                    id: None,
                    name: Some("unknown caller".into()),
                };
                audit
                    .write(&Entry {
                        at_ms: crate::now_ms(),
                        actor: &actor,
                        action: "credential.refused",
                        target: Some(path),
                        outcome: ProblemCode::RateLimited.as_str(),
                        ip,
                    })
                    .await;
            }
            Err(Problem::rate_limited(
                "Too many wrong credentials came from this address.",
                "Wait until the time given, then try again with a valid credential.",
                retry_after,
            )
            .into())
        }
    }
}

/// The audit actions a change stands for. A PATCH may rename and enable at
/// once: each is its own entry, told from the body's fields (never their
/// values, which could hold anything).
async fn change_actions(change: Change, req: &Request) -> Vec<String> {
    let fields = |body: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        body.as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let body = match change {
        Change::ConnectionUpdate | Change::AlertStatus => match req.clone() {
            Ok(mut copy) => copy.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        },
        _ => None,
    };
    let mut actions = Vec::new();
    for (k, v) in body.as_ref().map(fields).unwrap_or_default() {
        match (change, k.as_str(), &v) {
            (Change::ConnectionUpdate, "name", _) => actions.push("connection.rename".into()),
            (Change::ConnectionUpdate, "pull_interval_secs", _) => {
                actions.push("connection.schedule".into())
            }
            (Change::ConnectionUpdate, "enabled", serde_json::Value::Bool(true)) => {
                actions.push("connection.enable".into())
            }
            (Change::ConnectionUpdate, "enabled", serde_json::Value::Bool(false)) => {
                actions.push("connection.disable".into())
            }
            (Change::AlertStatus, "status", serde_json::Value::String(st))
                if crate::d1::alerts::AlertStatus::parse(st).is_some() =>
            {
                actions.push(format!("alert.{st}"))
            }
            _ => {}
        }
    }
    if actions.is_empty() {
        actions.push(change.as_str().to_string());
    }
    actions
}

/// `succeeded` or the problem's code, and a created thing's id.
async fn outcome_of(resp: &mut Response) -> (String, Option<String>) {
    let status = resp.status_code();
    let body = match resp.cloned() {
        Ok(mut copy) if status != 204 => copy.json::<serde_json::Value>().await.ok(),
        _ => None,
    };
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    if status < 400 {
        let created = (status == 201).then(|| field("id")).flatten();
        (audit::SUCCEEDED.to_string(), created)
    } else {
        (
            field("code").unwrap_or_else(|| ProblemCode::Internal.as_str().into()),
            None,
        )
    }
}

async fn dispatch(
    req: Request,
    env: &Env,
    config: &Config,
    route: &Route,
    caller: &Caller,
) -> Answer {
    use ApiMethod::*;
    use Resource as R;
    match (route.method, &route.resource) {
        (Get, R::OpenApi) => openapi::get(),
        (Get, R::Settings) => settings::get(config),
        (Get, R::Me) => me::get(caller),
        (Post, R::Validate) => validate::post(req, config).await,
        (Get, R::Keys) => keys::list(env).await,
        (Post, R::Keys) => keys::create(req, env).await,
        (Delete, R::Key(id)) => keys::revoke(env, id).await,
        (Post, R::Tickets) => tickets::mint(req, env, caller).await,
        (Get, R::Audit) => audit_log::list(req, env).await,
        (Get, R::Alerts) => alerts::list(req, env).await,
        (Get, R::AlertsNdjson) => alerts::ndjson(req, env).await,
        (Get, R::Alert(id)) => alerts::get(env, id).await,
        (Patch, R::Alert(id)) => alerts::patch(req, env, id).await,
        (Get, R::Sinks) => sinks::list(env, access::SinkDetail::for_caller(caller)).await,
        (Post, R::Sinks) => sinks::create(req, env, config).await,
        (Get, R::Sink(id)) => sinks::get(env, id, access::SinkDetail::for_caller(caller)).await,
        (Patch, R::Sink(id)) => sinks::patch(req, env, config, id).await,
        (Delete, R::Sink(id)) => sinks::delete(env, id).await,
        (Post, R::SinkTest(id)) => sinks::test(env, config, id).await,
        (Post, R::SinkReplay(id)) => sinks::replay(req, env, id).await,
        (Get, R::SinkDeadLetters(id)) => {
            sinks::dead_letters(env, id, access::SinkDetail::for_caller(caller)).await
        }
        (Post, R::SinkDeadLetterReplay(id)) => sinks::replay_dead_letters(env, id).await,
        (Get, R::Connections) => connections::list(env).await,
        (Post, R::Connections) => {
            let minter = match caller {
                Caller::Ticket(t) => match t.minted_by.strip_prefix("key:") {
                    Some(id) if AccessStore::new(env.d1("DB")?).key_is_admin(id).await? => {
                        access::MinterScope::Admin
                    }
                    _ => access::MinterScope::NotAdmin,
                },
                _ => access::MinterScope::NotAdmin,
            };
            let owner = access::connection_owner(caller, minter);
            connections::create(req, env, config, owner.as_deref()).await
        }
        (Get, R::Connection(id)) => connections::get(env, id).await,
        (Patch, R::Connection(id)) => connections::patch(req, env, id).await,
        (Delete, R::Connection(id)) => connections::delete(env, id).await,
        (Post, R::Reconnect(id)) => connections::reconnect(req, env, config, id).await,
        (_, r) if r.connection_id().is_some_and(|id| !valid_id(id)) => respond::fail(
            ProblemCode::NotFound,
            "No connection has this id (ids are 32 hex characters).",
        ),
        (Post, R::Pull(id)) => events::pull(env, id).await,
        (Get, R::Runs(id)) => events::runs(env, id).await,
        (Get, R::Events(id)) => events::list(req, env, id).await,
        (Get, R::EventsNdjson(id)) => events::ndjson(req, env, id).await,
        (Get, R::Accounts(id)) => accounts::list(req, env, id).await,
        (Get, R::Posture(id)) => posture::get(env, id).await,
        (Post, R::PostureCheck(id)) => posture::check(env, id).await,
        (Get, R::PostureNdjson(id)) => posture::ndjson(env, id).await,
        // `resolve` only finds a route with one of its resource's methods.
        _ => respond::fail(
            ProblemCode::MethodNotAllowed,
            "This route does not take that method.",
        ),
    }
}
