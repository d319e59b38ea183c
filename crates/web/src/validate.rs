//! Field validation in the browser: the same core functions the worker runs,
//! so the wizard shows exactly the codes and messages the API would return.
//! (Whole requests are validated by the worker's `/validate`; the page checks
//! field by field as the admin types.)

use snc_core::connect::input;
use snc_core::servicenow::instance_url::HostPolicy;
use wasm_bindgen::prelude::*;

/// Checks one field as the admin types. Returns `null` when it is fine, or
/// `{field, code, message}`. Built by hand: serde's JS bridge would cost
/// the page more bytes than this whole module. `allow_loopback` is the
/// deployment's `ALLOW_LOOPBACK_INSTANCES` as `/settings` answers it.
/// Not exported: the wizard calls core's checks itself, so an export would
/// be page bytes no script uses; the browser tests call it from Rust.
pub fn validate_field(
    field: &str,
    value: &str,
    instance_hosts: Option<String>,
    allow_loopback: bool,
) -> JsValue {
    let loopback = Some(if allow_loopback { "true" } else { "false" });
    let policy = HostPolicy::from_config(instance_hosts.as_deref(), loopback);
    match input::check_field(field, value, &policy) {
        Ok(()) => JsValue::NULL,
        Err(e) => {
            let o = js_sys::Object::new();
            for (k, v) in [("field", e.field), ("code", e.code), ("message", e.message)] {
                let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(&v));
            }
            o.into()
        }
    }
}
