//! `POST /tickets`: a portal's backend mints a short-lived connect ticket
//! for the wizard it embeds, so the browser never holds a standing key.

use serde::Deserialize;
use serde_json::json;
use snc_core::api::access::{
    normalize_origin, Caller, CredentialHash, CredentialKind, TICKET_DEFAULT_SECS, TICKET_MAX_SECS,
    TICKET_MIN_SECS,
};
use snc_core::clock::rfc3339;
use snc_core::problem::{FieldError, Problem};
use worker::{Env, Request};

use super::paging::field_error;
use crate::d1::credentials::{AccessStore, NewTicket};
use crate::respond::{self, Answer};

#[derive(Deserialize, Default)]
struct MintBody {
    #[serde(default)]
    origin: Option<serde_json::Value>,
    #[serde(default)]
    ttl_seconds: Option<serde_json::Value>,
}

pub async fn mint(mut req: Request, env: &Env, caller: &Caller) -> Answer {
    let now = crate::now();
    let text = req.text().await.unwrap_or_default();
    let body = if text.trim().is_empty() {
        MintBody::default()
    } else {
        match serde_json::from_str::<MintBody>(&text) {
            Ok(b) => b,
            Err(_) => {
                return Err(field_error(
                    "body",
                    "Send JSON: {\"origin\": \"https://portal.example\", \"ttl_seconds\": 600}, both optional.",
                ).into())
            }
        }
    };
    let mut errors = Vec::new();
    let origin = match &body.origin {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let o = v.as_str().and_then(normalize_origin);
            if o.is_none() {
                errors.push(FieldError {
                    field: "origin".into(),
                    code: "invalid".into(),
                    message: "Give the portal page's origin, such as https://portal.example (scheme, host and port only).".into(),
                });
            }
            o
        }
    };
    let ttl = match &body.ttl_seconds {
        None | Some(serde_json::Value::Null) => Some(TICKET_DEFAULT_SECS),
        Some(v) => v
            .as_i64()
            .filter(|t| (TICKET_MIN_SECS..=TICKET_MAX_SECS).contains(t)),
    };
    let Some(ttl) = ttl else {
        errors.push(FieldError {
            field: "ttl_seconds".into(),
            code: "invalid".into(),
            message: format!("Use {TICKET_MIN_SECS} to {TICKET_MAX_SECS} seconds."),
        });
        return Err(Problem::validation(errors).into());
    };
    if !errors.is_empty() {
        return Err(Problem::validation(errors).into());
    }
    let ticket = CredentialKind::Ticket.mint(&crate::random_bytes::<32>()?);
    let id = crate::hex(&crate::random_bytes::<16>()?);
    let actor = caller.actor();
    let minted_by = format!(
        "{}:{}",
        actor.kind.as_str(),
        actor.id.or(actor.name).unwrap_or_default()
    );
    let expires_at = now + ttl;
    AccessStore::new(env.d1("DB")?)
        .create_ticket(&NewTicket {
            id: &id,
            hash: &CredentialHash::of(ticket.expose()),
            origin: origin.as_deref(),
            minted_by: &minted_by,
            created_at: now,
            expires_at,
        })
        .await?;
    respond::json(
        201,
        &json!({
            "id": id,
            "ticket": ticket.expose(),
            "origin": origin,
            "expires_at": rfc3339(expires_at),
        }),
    )
}
