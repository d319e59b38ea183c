//! `/keys`: API keys with scopes. The key is shown once, in the answer to
//! its creation; the store keeps only its SHA-256.

use serde::Deserialize;
use serde_json::json;
use snc_core::api::access::{CredentialHash, CredentialKind, Scope, Scopes};
use snc_core::clock::{parse_rfc3339, rfc3339};
use snc_core::problem::{FieldError, Problem, ProblemCode};
use worker::{Env, Request, Response, Result};

use super::paging::field_error;
use crate::d1::credentials::{AccessStore, NewKey};
use crate::respond::{self, Answer};

fn store(env: &Env) -> Result<AccessStore> {
    Ok(AccessStore::new(env.d1("DB")?))
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    name: Option<serde_json::Value>,
    #[serde(default)]
    scopes: Option<serde_json::Value>,
    #[serde(default)]
    expires_at: Option<serde_json::Value>,
}

/// A valid key request, or every field's problem at once.
fn validate(
    body: &CreateBody,
    now: i64,
) -> std::result::Result<(String, Scopes, Option<i64>), Problem> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.into(),
            code: "invalid".into(),
            message: message.into(),
        })
    };
    let name = body
        .name
        .as_ref()
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 64 && !n.chars().any(char::is_control));
    if name.is_none() {
        err(
            "name",
            "Name the key (1 to 64 characters), e.g. after the script or portal that uses it.",
        );
    }
    let scopes = body
        .scopes
        .as_ref()
        .and_then(|v| v.as_array())
        .and_then(|list| {
            list.iter()
                .map(|s| s.as_str().and_then(Scope::parse))
                .collect::<Option<Vec<_>>>()
        })
        .and_then(Scopes::new);
    if scopes.is_none() {
        err(
            "scopes",
            "Give one or more of \"admin\", \"read\", \"connect\".",
        );
    }
    let expires_at = match &body.expires_at {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => match v.as_str().and_then(parse_rfc3339) {
            Some(t) if t > now => Ok(Some(t)),
            Some(_) => Err("Give a time in the future, or leave expires_at out for a key that does not expire."),
            None => Err("Give an RFC 3339 time such as 2027-01-31T00:00:00Z."),
        },
    };
    if let Err(m) = &expires_at {
        err("expires_at", m);
    }
    match (name, scopes, expires_at) {
        (Some(n), Some(s), Ok(e)) => Ok((n.to_string(), s, e)),
        _ => Err(Problem::validation(errors)),
    }
}

pub async fn create(mut req: Request, env: &Env) -> Answer {
    let now = crate::now();
    let text = req.text().await.unwrap_or_default();
    let Ok(body) = serde_json::from_str::<CreateBody>(&text) else {
        return Err(field_error(
            "body",
            "Send JSON: {\"name\": \"…\", \"scopes\": [\"read\"], \"expires_at\": \"2027-01-31T00:00:00Z\"}.",
        ).into());
    };
    let (name, scopes, expires_at) = validate(&body, now)?;
    let key = CredentialKind::ApiKey.mint(&crate::random_bytes::<32>()?);
    let id = crate::hex(&crate::random_bytes::<16>()?);
    store(env)?
        .create_key(&NewKey {
            id: &id,
            name: &name,
            scopes: &scopes,
            hash: &CredentialHash::of(key.expose()),
            created_at: now,
            expires_at,
        })
        .await?;
    respond::json(
        201,
        &json!({
            "id": id,
            "name": name,
            "scopes": scopes,
            "created_at": rfc3339(now),
            "expires_at": expires_at.map(rfc3339),
            "last_used_at": null,
            // The only time the key is ever shown.
            "key": key.expose(),
        }),
    )
}

pub async fn list(env: &Env) -> Answer {
    respond::json(
        200,
        &snc_core::api::access::KeyList {
            keys: store(env)?.keys().await?,
        },
    )
}

pub async fn revoke(env: &Env, id: &str) -> Answer {
    if super::valid_id(id) && store(env)?.revoke_key(id).await? {
        return Ok(Response::empty()?.with_status(204));
    }
    respond::fail(
        ProblemCode::NotFound,
        &format!("There is no API key {id:?}; list them with GET /api/v1/keys."),
    )
}
