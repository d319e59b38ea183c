use snc_core::api::settings::PageSettings;

use crate::config::Config;
use crate::respond::{self, Answer};

/// What the browser needs to validate exactly as the worker does.
pub fn get(config: &Config) -> Answer {
    respond::json(
        200,
        // What connections really get: Config keeps 1..=90 and falls back to 7.
        &PageSettings::new(
            &config.instance_hosts,
            config.policy.loopback(),
            config.backfill_days,
        ),
    )
}
