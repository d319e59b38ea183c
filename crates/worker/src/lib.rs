//! Entry points only; each route lives in `routes/`.

mod routes;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    routes::dispatch(req, env).await
}
