//! Who is calling: the admin token (constant-time compare), an API key or a
//! connect ticket (found by hash), or a Cloudflare Access identity (RS256
//! verified by the runtime's WebCrypto); failed credentials counted per
//! client address; and CORS for embedding portals.

use std::cell::RefCell;

use snc_core::api::access::{self, Actor, ActorKind, Caller, CredentialKind, Presented};
use snc_core::api::access_jwt::{self, AccessIdentity, JwtRefusal, KeysWanted, RsaJwk};
use subtle::ConstantTimeEq;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{console_log, Headers, Request};

use crate::config::{AccessSettings, Config};
use crate::d1::credentials::AccessStore;

/// Why a request has no caller.
pub enum Refusal {
    /// Nothing presented: 401, not counted (a page loading before sign-in).
    NoCredential,
    /// Presented and wrong: 401, counted against the address; audited one
    /// by one while the address and the deployment are under their
    /// window's limits (`audit`), summarised by the cron after that.
    Wrong {
        actor: Actor,
        why: &'static str,
        audit: bool,
    },
    /// Too many failures from this address: 429 until the window ends.
    /// `audit` is set on the window's first such answer only.
    Slowed { retry_after: u64, audit: bool },
}

/// The client address, as Cloudflare gives it.
pub fn client_ip(req: &Request) -> Option<String> {
    req.headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

fn bearer(req: &Request) -> Option<String> {
    let h = req.headers().get("authorization").ok().flatten()?;
    let (scheme, value) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub async fn authenticate(
    req: &Request,
    store: &AccessStore,
    config: &Config,
    now: i64,
) -> worker::Result<Result<Caller, Refusal>> {
    let bearer = bearer(req);
    // Behind Access every request carries its assertion; an explicit
    // bearer (a script's API key) still speaks for itself.
    let assertion = match (&bearer, &config.access) {
        (None, Some(_)) => req.headers().get("cf-access-jwt-assertion").ok().flatten(),
        _ => None,
    };
    if bearer.is_none() && assertion.is_none() {
        return Ok(Err(Refusal::NoCredential));
    }
    let ip = access::failure_key(&client_ip(req).unwrap_or_else(|| "unknown".into()));
    if let Some((count, audited)) = store.failures(&ip).await? {
        if let Some(retry_after) = config.failures.blocked_for(Some(count), now) {
            let audit = !audited && store.mark_refusal_audited(&ip).await?;
            return Ok(Err(Refusal::Slowed { retry_after, audit }));
        }
    }
    // An admin-token guess is counted before it is checked (as an attempt
    // in flight): the token is the one credential a person chose, and a
    // burst of guesses sent at once must not all be checked before the
    // first is counted. Keys and
    // tickets are 256 random bits, found by hash; they are counted after.
    let reserved = bearer
        .as_deref()
        .is_some_and(|b| matches!(access::presented(b), Presented::Other(_)));
    if reserved {
        let (failures, in_flight) = store.reserve_attempt(&ip, now, &config.failures).await?;
        // Confirmed failures block at the limit; attempts in flight only
        // past a slack, so a page's burst of right-token calls passes.
        let counted = snc_core::api::access::FailureCount {
            window_start: now,
            failures: failures
                .max((failures + in_flight).saturating_sub(snc_core::api::access::RESERVED_SLACK)),
        };
        if let Some(retry_after) = config.failures.blocked_for(Some(counted), now) {
            store.release_attempt(&ip).await?;
            let audit = store.mark_refusal_audited(&ip).await?;
            return Ok(Err(Refusal::Slowed { retry_after, audit }));
        }
    }
    let mut checked = match (bearer, assertion, &config.access) {
        (Some(b), _, _) => check_bearer(&b, store, config, now).await?,
        (None, Some(jwt), Some(access)) => match verify_access(&jwt, access, now).await {
            Ok(id) => Ok(Caller::Access {
                id: id.subject,
                name: id.name,
            }),
            Err(why) => {
                console_log!("refused: {}", why.as_str());
                Err(Refusal::Wrong {
                    actor: Actor {
                        kind: ActorKind::Access,
                        id: None,
                        name: None,
                    },
                    why: why.as_str(),
                    audit: false,
                })
            }
        },
        _ => Err(Refusal::NoCredential),
    };
    // Counted in one D1 batch that also decides whether this refusal is
    // audited on its own: however many arrive at once, the address and the
    // deployment get at most their window's share of audit rows.
    match &mut checked {
        Err(Refusal::Wrong { audit, .. }) => {
            if reserved {
                store.confirm_failure(&ip, now, &config.failures).await?;
            } else {
                store.count_failure(&ip, now, &config.failures).await?;
            }
            *audit = store.audit_failure(&ip, &config.failures).await?;
        }
        Ok(_) if reserved => store.release_attempt(&ip).await?,
        _ => {}
    }
    Ok(checked)
}

async fn check_bearer(
    bearer: &str,
    store: &AccessStore,
    config: &Config,
    now: i64,
) -> worker::Result<Result<Caller, Refusal>> {
    let unknown = |kind, why| {
        Err(Refusal::Wrong {
            actor: Actor {
                kind,
                id: None,
                name: None,
            },
            why,
            audit: false,
        })
    };
    Ok(match access::presented(bearer) {
        Presented::Minted(CredentialKind::ApiKey, hash) => {
            match store.key_by_hash(&hash, now).await? {
                Some((id, name, scopes)) => Ok(Caller::Key { id, name, scopes }),
                None => unknown(
                    ActorKind::Key,
                    "The API key is unknown, revoked or expired.",
                ),
            }
        }
        Presented::Minted(CredentialKind::Ticket, hash) => {
            match store.ticket_by_hash(&hash, now).await? {
                Some(grant) => Ok(Caller::Ticket(grant)),
                None => unknown(
                    ActorKind::Ticket,
                    "The connect ticket is unknown or has expired; the portal should fetch a new one.",
                ),
            }
        }
        Presented::Other(token) => {
            let configured = config.admin_token.as_deref();
            match (configured, access::admin_token_problem(configured)) {
                (_, Some(why)) => {
                    console_log!("refused: {why}");
                    unknown(ActorKind::AdminToken, why)
                }
                (Some(expected), None)
                    if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) =>
                {
                    Ok(Caller::AdminToken)
                }
                _ => unknown(ActorKind::AdminToken, "The admin token is wrong."),
            }
        }
    })
}

struct CertsCache {
    url: String,
    fetched_ms: u64,
    keys: Vec<RsaJwk>,
}

thread_local! {
    // One isolate serves many requests: the team's keys are fetched once per
    // TTL, not per request.
    static CERTS: RefCell<Option<CertsCache>> = const { RefCell::new(None) };
}

async fn keys(url: &str, wanted: KeysWanted) -> Vec<RsaJwk> {
    let now = crate::now_ms();
    let cached = CERTS.with(|c| {
        c.borrow().as_ref().and_then(|c| {
            let age = now.saturating_sub(c.fetched_ms);
            access_jwt::cached_keys_serve(&c.url, url, age, wanted).then(|| c.keys.clone())
        })
    });
    if let Some(keys) = cached {
        return keys;
    }
    let req = snc_core::http::HttpRequest {
        method: snc_core::http::Method::Get,
        url: url.to_string(),
        headers: vec![("accept".into(), "application/json".into())],
        body: Vec::new(),
    };
    let fetched = match crate::transport::send_capped(
        &req,
        std::time::Duration::from_secs(10),
        snc_core::http::SMALL_ANSWER_CAP,
    )
    .await
    {
        Ok(resp) if resp.status == 200 => {
            let keys = access_jwt::parse_certs(&resp.body);
            if keys.is_none() {
                console_log!("access: the team's certs did not parse");
            }
            keys
        }
        Ok(resp) => {
            console_log!("access: the team's certs answered {}", resp.status);
            None
        }
        Err(e) => {
            console_log!("access: the team's certs could not be read: {e}");
            None
        }
    };
    // A failure is remembered too (as no keys): the next fetch waits
    // `CERTS_REFETCH_MIN_MS`, so a flood of assertions cannot drive one
    // fetch each while the team's endpoint is down.
    // Keys fetched before for this URL stay in use through a failure.
    CERTS.with(|c| {
        let mut c = c.borrow_mut();
        let kept = c
            .as_ref()
            .filter(|old| old.url == url)
            .map(|old| old.keys.clone());
        let keys = fetched.or(kept).unwrap_or_default();
        *c = Some(CertsCache {
            url: url.to_string(),
            fetched_ms: now,
            keys: keys.clone(),
        });
        keys
    })
}

async fn verify_access(
    jwt: &str,
    access: &AccessSettings,
    now: i64,
) -> Result<AccessIdentity, JwtRefusal> {
    let token = access_jwt::parse(jwt)?;
    let mut jwk = keys(&access.certs_url, KeysWanted::Cached)
        .await
        .into_iter()
        .find(|k| k.kid == token.kid);
    if jwk.is_none() {
        // Keys rotate: an unknown kid may be a new key.
        jwk = keys(&access.certs_url, KeysWanted::Rotated)
            .await
            .into_iter()
            .find(|k| k.kid == token.kid);
    }
    let jwk = jwk.ok_or(JwtRefusal::UnknownKey)?;
    if !rs256_verifies(&jwk, &token.signing_input, &token.signature).await {
        return Err(JwtRefusal::BadSignature);
    }
    token.check(&access.config, now)
}

/// RSASSA-PKCS1-v1_5 with SHA-256 through WebCrypto; any error is "no".
async fn rs256_verifies(jwk: &RsaJwk, data: &[u8], signature: &[u8]) -> bool {
    let attempt = async {
        let subtle = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?
            .unchecked_into::<web_sys::Crypto>()
            .subtle();
        let key_data = jwk_object(jwk)?;
        let algorithm = js_sys::Object::new();
        js_sys::Reflect::set(&algorithm, &"name".into(), &"RSASSA-PKCS1-v1_5".into())?;
        js_sys::Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into())?;
        let usages = js_sys::Array::of1(&"verify".into());
        let key = JsFuture::from(
            subtle.import_key_with_object("jwk", &key_data, &algorithm, false, &usages)?,
        )
        .await?
        .unchecked_into::<web_sys::CryptoKey>();
        let ok = JsFuture::from(subtle.verify_with_str_and_js_u8_array_and_js_u8_array(
            "RSASSA-PKCS1-v1_5",
            &key,
            &js_sys::Uint8Array::from(signature),
            &js_sys::Uint8Array::from(data),
        )?)
        .await?;
        Ok::<bool, JsValue>(ok.as_bool().unwrap_or(false))
    };
    match attempt.await {
        Ok(ok) => ok,
        Err(e) => {
            console_log!("access: WebCrypto refused the key or signature: {e:?}");
            false
        }
    }
}

fn jwk_object(jwk: &RsaJwk) -> Result<js_sys::Object, JsValue> {
    let o = js_sys::Object::new();
    for (k, v) in [
        ("kty", jwk.kty.as_str()),
        ("n", jwk.n.as_str()),
        ("e", jwk.e.as_str()),
        ("alg", "RS256"),
    ] {
        js_sys::Reflect::set(&o, &k.into(), &v.into())?;
    }
    Ok(o)
}

/// The request's Origin when ALLOWED_ORIGINS lists it.
pub fn allowed_origin(req: &Request, config: &Config) -> Option<String> {
    let origin = req.headers().get("origin").ok().flatten()?;
    config.allowed_origins.contains(&origin).then_some(origin)
}

pub fn add_cors(headers: &Headers, origin: &str) {
    let _ = headers.set("Access-Control-Allow-Origin", origin);
    let _ = headers.set(
        "Access-Control-Allow-Headers",
        "authorization, content-type",
    );
    let _ = headers.set(
        "Access-Control-Allow-Methods",
        "GET, POST, PATCH, DELETE, OPTIONS",
    );
    let _ = headers.set("Access-Control-Max-Age", "600");
    let _ = headers.append("Vary", "Origin");
}
