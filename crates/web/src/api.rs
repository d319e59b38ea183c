//! The only place that talks HTTP. It was gloo-net; plain web-sys fetch does
//! the one call this module makes for a fraction of the page's bytes.

use snc_core::health::HealthReport;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The request did not complete (network down, CORS refused).
    Unreachable(String),
    /// An answer came, but not the expected one.
    Unexpected { status: u16 },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(why) => write!(f, "The connector could not be reached ({why}). Check that the worker is running and try again."),
            ApiError::Unexpected { status } => write!(f, "The connector answered unexpectedly (HTTP {status}). Check the worker's URL and try again."),
        }
    }
}

fn unreachable(e: wasm_bindgen::JsValue) -> ApiError {
    ApiError::Unreachable(
        e.as_string()
            .or_else(|| {
                e.dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.message()))
            })
            .unwrap_or_else(|| "network error".into()),
    )
}

pub async fn health(api_base: &str) -> Result<HealthReport, ApiError> {
    let url = format!("{}/api/v1/health", api_base.trim_end_matches('/'));
    let window = web_sys::window().ok_or_else(|| ApiError::Unreachable("no window".into()))?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(&url))
        .await
        .map_err(unreachable)?
        .dyn_into()
        .map_err(unreachable)?;
    let status = resp.status();
    // The browser's own JSON parser: serde_json would be most of this
    // module's bytes for two string fields.
    let json = match resp.json() {
        Ok(p) => JsFuture::from(p).await.ok(),
        Err(_) => None,
    };
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| js_sys::Reflect::get(j, &name.into()).ok())
            .and_then(|v| v.as_string())
    };
    match (status, field("status").as_deref(), field("version")) {
        (200, Some("ok"), Some(version)) if !version.is_empty() => Ok(HealthReport {
            status: "ok".into(),
            version,
        }),
        _ => Err(ApiError::Unexpected { status }),
    }
}
