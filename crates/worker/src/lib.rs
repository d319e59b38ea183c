//! Entry points only; each route lives in `routes/`.

mod auth;
mod config;
mod respond;
mod routes;
mod store;
mod transport;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::handle(req, env).await
}

/// Unix seconds now: core takes time as an argument, the worker supplies it.
pub(crate) fn now() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

/// Random bytes from the platform CSPRNG (Web Crypto in workerd).
pub(crate) fn random_bytes<const N: usize>() -> std::result::Result<[u8; N], worker::Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| worker::Error::RustError(format!("no randomness: {e}")))?;
    Ok(buf)
}
