use serde_json::json;
use worker::{Env, Response, Result};

use crate::config::Config;
use crate::respond;

/// What the browser needs to validate exactly as the worker does.
pub fn get(env: &Env, config: &Config) -> Result<Response> {
    let text = |n: &str| env.var(n).map(|v| v.to_string()).unwrap_or_default();
    respond::json(
        200,
        &json!({
            "instance_hosts": text("INSTANCE_HOSTS"),
            "allow_loopback_instances": text("ALLOW_LOOPBACK_INSTANCES").trim() == "true",
            // What connections really get: Config keeps 1..=90 and falls back to 7.
            "backfill_days": config.backfill_days,
            // Which fields each method needs, from the same table `validate` uses.
            "methods": snc_core::input::AuthMethod::ALL.iter().map(|m| json!({
                "id": m.as_str(),
                "label": m.label(),
                "fields": m.fields().iter().map(|f| f.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    )
}
