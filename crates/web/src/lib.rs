//! The browser module. `www/` loads it; the connect wizard runs here, every
//! call to the connector goes through its API client, and the same core code
//! the worker runs does every check.

#[cfg(feature = "admin")]
pub mod admin;
mod api;
pub mod dom;
pub mod js;
#[cfg(feature = "connect")]
mod validate;
#[cfg(feature = "connect")]
mod view;
#[cfg(feature = "connect")]
mod wizard;

#[cfg(feature = "connect")]
use wasm_bindgen::prelude::*;

/// Fetches the worker's health from `api_base` and shows its version in
/// `target`; resolves to whether Cloudflare Access signs admins in here (the
/// page asks `/me` with no credential of its own only then).
#[cfg(feature = "connect")]
#[wasm_bindgen(js_name = showHealth)]
pub fn show_health(api_base: String, target: web_sys::Element) -> js_sys::Promise {
    js::promise(Box::pin(async move {
        let outcome = api::health(&api_base).await;
        view::render_health(&target, &outcome);
        let access = outcome.as_ref().is_ok_and(|report| report.access);
        Ok(JsValue::from_bool(access))
    }))
}

pub use api::{api_call, ApiClient, Credential};
#[cfg(feature = "connect")]
pub use validate::validate_field;
#[cfg(feature = "connect")]
pub use view::render_health;
#[cfg(feature = "connect")]
pub use wizard::mount_wizard;

/// What the hosted page offers a caller with `scopes` (GET /me's list):
/// `{wizard, connections, keys, sinks, sinksChange, audit}`, core's
/// `PageSections`, so the page decides nothing of its own.
#[cfg(feature = "connect")]
#[wasm_bindgen(js_name = pageSections)]
pub fn page_sections(scopes: Vec<String>) -> JsValue {
    use snc_core::api::access::{PageSections, Scope};
    let scopes: Vec<Scope> = scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    let shown = PageSections::for_scopes(&scopes);
    let out = js_sys::Object::new();
    for (name, on) in [
        ("wizard", shown.wizard),
        ("connections", shown.connections),
        ("keys", shown.keys),
        ("sinks", shown.sinks),
        ("sinksChange", shown.sinks_change),
        ("audit", shown.audit),
    ] {
        let _ = js_sys::Reflect::set(&out, &name.into(), &on.into());
    }
    out.into()
}
