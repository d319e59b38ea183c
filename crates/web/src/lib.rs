//! The browser module. `www/` loads it and calls the exported functions; the
//! same core code the worker runs does every check here.

mod api;
mod validate;
mod view;

use wasm_bindgen::prelude::*;

/// Fetches the worker's health from `api_base` and shows its version in `target`.
#[wasm_bindgen(js_name = showHealth)]
pub async fn show_health(api_base: String, target: web_sys::Element) {
    let outcome = api::health(&api_base).await;
    view::render_health(&target, &outcome);
}

/// The version of the browser module itself.
#[wasm_bindgen(js_name = moduleVersion)]
pub fn module_version() -> String {
    snc_core::VERSION.to_string()
}

pub use api::ApiError;
pub use validate::validate_field;
pub use view::render_health;
