//! Static files (www/) through the worker, with security headers: a strict
//! Content-Security-Policy for pages. (CORS for the portals in
//! ALLOWED_ORIGINS, so `<servicenow-connect>` loads there, is added to every
//! response by `routes::handle`.)

use worker::{Env, Headers, Request, Response, Result};

/// 'wasm-unsafe-eval' lets the page compile its wasm; nothing else runs that
/// did not come from this origin, and nothing may frame the admin page.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub async fn serve(req: Request, env: &Env) -> Result<Response> {
    let fetched = env.assets("ASSETS")?.fetch_request(req).await?;
    // Fetched headers are immutable: copy them into new ones.
    let headers = Headers::new();
    for (k, v) in fetched.headers().entries() {
        headers.set(&k, &v)?;
    }
    let html = headers
        .get("content-type")?
        .is_some_and(|t| t.starts_with("text/html"));
    if html {
        headers.set("Content-Security-Policy", CSP)?;
        headers.set("X-Frame-Options", "DENY")?;
    }
    headers.set("X-Content-Type-Options", "nosniff")?;
    headers.set("Referrer-Policy", "no-referrer")?;
    Ok(fetched.with_headers(headers))
}
