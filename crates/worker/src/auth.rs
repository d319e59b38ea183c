//! The admin token (constant-time compare) and CORS for embedding portals.

use subtle::ConstantTimeEq;
use worker::{Headers, Request};

use crate::config::Config;

pub enum Admission {
    Allowed,
    NoToken,
    WrongToken,
    NotConfigured,
}

pub fn admit(req: &Request, config: &Config) -> Admission {
    let Some(expected) = config.admin_token.as_deref() else {
        return Admission::NotConfigured;
    };
    let presented = req.headers().get("authorization").ok().flatten();
    let Some(token) = presented.as_deref().and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    }) else {
        return Admission::NoToken;
    };
    if bool::from(token.trim().as_bytes().ct_eq(expected.as_bytes())) {
        Admission::Allowed
    } else {
        Admission::WrongToken
    }
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
