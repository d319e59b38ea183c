//! The browser module. `www/` loads it; the connect wizard runs here, every
//! call to the connector goes through its API client, and the same core code
//! the worker runs does every check.

#[cfg(feature = "admin")]
pub mod admin;

// SAFETY: a page's wasm runs on the one thread of its window; a build with
// wasm threads (the `atomics` target feature) keeps Rust's own allocator.
#[cfg(all(
    feature = "connect",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };
mod api;
pub mod dom;
pub mod js;
#[cfg(feature = "connect")]
mod overview;
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
pub use overview::mount_overview;
#[cfg(feature = "connect")]
pub use validate::validate_field;
#[cfg(feature = "connect")]
pub use view::render_health;
#[cfg(feature = "connect")]
pub use wizard::mount_wizard;

/// Scopes as GET /me lists them (a JavaScript array of strings); unknown
/// ones are left out.
#[cfg(feature = "connect")]
fn scopes_from(scopes: &JsValue) -> snc_core::api::access::PageSections {
    js::page_sections(scopes)
}

#[cfg(feature = "connect")]
fn set(target: &js_sys::Object, name: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(target, &name.into(), value);
}

/// The view the address `hash` shows a caller with `scopes`:
/// `{view, id, hash, admin}` (`hash` the address to show, `admin` whether
/// the view is the admin module's), or `null` when the caller may see no
/// view. Core's `PageRoute::shown`.
#[cfg(feature = "connect")]
#[wasm_bindgen(js_name = pageRoute)]
pub fn page_route(hash: String, scopes: JsValue) -> JsValue {
    use snc_core::api::page::{PageRoute, ViewModule};
    let Some(route) = PageRoute::shown(&hash, &scopes_from(&scopes)) else {
        return JsValue::NULL;
    };
    let out = js_sys::Object::new();
    set(&out, "view", &route.view.as_str().into());
    set(
        &out,
        "id",
        &route.id.as_deref().map_or(JsValue::NULL, JsValue::from_str),
    );
    set(&out, "hash", &route.hash().into());
    set(
        &out,
        "admin",
        &(route.view.module() == ViewModule::Admin).into(),
    );
    out.into()
}

/// The navigation for a caller with `scopes`: `[[view, label, hash], …]`.
#[cfg(feature = "connect")]
#[wasm_bindgen(js_name = pageNav)]
pub fn page_nav(scopes: JsValue) -> js_sys::Array {
    use snc_core::api::page::PageRoute;
    PageRoute::nav(&scopes_from(&scopes))
        .into_iter()
        .map(|v| {
            let hash = PageRoute { view: v, id: None }.hash();
            js_sys::Array::of3(&v.as_str().into(), &v.label().into(), &hash.into())
        })
        .collect()
}
