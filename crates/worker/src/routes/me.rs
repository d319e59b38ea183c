//! `GET /me`: who the credential speaks for, so a page can sign in (and
//! show only what the caller may use) without guessing from a 403.

use serde_json::json;
use snc_core::api::access::Caller;

use crate::respond::{self, Answer};

pub fn get(caller: &Caller) -> Answer {
    let actor = caller.actor();
    let connection_id = match caller {
        Caller::Ticket(t) => t.connection_id.clone(),
        _ => None,
    };
    respond::json(
        200,
        &json!({
            "kind": actor.kind,
            "id": actor.id,
            "name": actor.name,
            "scopes": caller.scopes(),
            "connection_id": connection_id,
        }),
    )
}
