use worker::{Env, Response, Result};

use snc_core::settings::PageSettings;

use crate::config::Config;
use crate::respond;

/// What the browser needs to validate exactly as the worker does.
pub fn get(env: &Env, config: &Config) -> Result<Response> {
    let text = |n: &str| env.var(n).map(|v| v.to_string()).unwrap_or_default();
    respond::json(
        200,
        // What connections really get: Config keeps 1..=90 and falls back to 7.
        &PageSettings::new(
            &text("INSTANCE_HOSTS"),
            text("ALLOW_LOOPBACK_INSTANCES").trim() == "true",
            config.backfill_days,
        ),
    )
}
