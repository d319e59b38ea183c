//! What every listing route reads the same way: field errors, `limit`, and
//! opaque cursors (base64 of the JSON position to continue after).

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use snc_core::problem::{FieldError, Problem};

pub const MAX_LIMIT: u32 = 1_000;

pub fn field_error(field: &str, message: &str) -> Problem {
    Problem::validation(vec![FieldError {
        field: field.into(),
        code: "invalid".into(),
        message: message.into(),
    }])
}

/// A `limit` from 1 to 1,000.
pub fn limit(v: &str) -> Result<u32, Problem> {
    v.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| field_error("limit", "Use a limit from 1 to 1000."))
}

pub fn encode_cursor(position: &impl Serialize) -> String {
    let json = serde_json::to_string(position).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub fn bad_cursor() -> Problem {
    field_error(
        "cursor",
        "Use the next_cursor of a previous answer, unchanged.",
    )
}

/// A cursor given back unchanged; anything else is a field error.
pub fn decode_cursor<T: DeserializeOwned>(c: &str) -> Result<T, Problem> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(bad_cursor)
}
