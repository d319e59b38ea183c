//! Field validation in the browser: the same core functions the worker runs,
//! so the wizard shows exactly the codes and messages the API would return.

use serde::Serialize;
use snc_core::input::{self, ConnectRequest};
use snc_core::instance_url::HostPolicy;
use wasm_bindgen::prelude::*;

fn policy(instance_hosts: Option<String>, allow_loopback: bool) -> HostPolicy {
    HostPolicy::from_config(
        instance_hosts.as_deref(),
        Some(if allow_loopback { "true" } else { "false" }),
    )
}

/// Checks one field as the admin types. Returns `null` when it is fine, or
/// `{field, code, message}`.
#[wasm_bindgen(js_name = validateField)]
pub fn validate_field(
    field: &str,
    value: &str,
    instance_hosts: Option<String>,
    allow_loopback: bool,
) -> JsValue {
    match input::check_field(field, value, &policy(instance_hosts, allow_loopback)) {
        Ok(()) => JsValue::NULL,
        Err(e) => serde_wasm_bindgen::to_value(&e).unwrap_or(JsValue::NULL),
    }
}

/// Checks a whole connect request (a plain object). Returns
/// `{valid: true, normalized}` or `{valid: false, errors: [...]}`.
#[wasm_bindgen(js_name = validateConnect)]
pub fn validate_connect(
    request: JsValue,
    instance_hosts: Option<String>,
    allow_loopback: bool,
) -> JsValue {
    let parsed: ConnectRequest = serde_wasm_bindgen::from_value(request).unwrap_or_default();
    let answer = match input::validate(&parsed, &policy(instance_hosts, allow_loopback)) {
        Ok(valid) => serde_json::json!({ "valid": true, "normalized": valid.normalized() }),
        Err(errors) => serde_json::json!({ "valid": false, "errors": errors }),
    };
    answer
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap_or(JsValue::NULL)
}
