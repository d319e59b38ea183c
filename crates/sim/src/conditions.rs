//! The ways a real instance misbehaves, switchable per run (flags) or live
//! (`POST /__sim/conditions`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// The connector's user lacks the admin role.
    pub not_admin: bool,
    /// The REST API is off: every `/api/now/*` call answers 403.
    pub rest_api_off: bool,
    /// A hibernating developer instance: every path answers 200 text/html.
    pub hibernating: bool,
    /// The user is locked out / inactive: token requests and Basic auth fail.
    pub user_locked_out: bool,
    pub user_inactive: bool,
    /// The OAuth endpoint does not allow the password grant
    /// (`glide.oauth.inbound.ropc.grant_type.disabled`, mirrored in sys_properties).
    pub password_grant_disabled: bool,
    /// ServiceNow's basic-auth restriction is active
    /// (`glide.authenticate.basic_auth.restriction.active`, mirrored): basic-auth
    /// API calls from an account that is not web-service-only are recorded
    /// in `sys_user_basic_auth_exception`...
    pub basic_auth_restricted: bool,
    /// ...and, once it enforces, denied.
    pub basic_auth_denying: bool,
    /// No Batch API (`/api/now/v1/batch` answers 400), as on old releases.
    pub batch_api_off: bool,
    /// Share of Table API calls answered 429 with Retry-After.
    pub rate_limit_fraction: f64,
    /// Hourly rate-limit rule: calls per hour before 429 until the hour ends.
    pub rate_limit_per_hour: Option<u32>,
    /// Retry-After sent with fractional 429s, seconds.
    pub retry_after_secs: u64,
    /// Share of Table API calls answered with a 5xx.
    pub error_fraction: f64,
    /// Delay added to every Table API answer, milliseconds.
    pub slow_ms: u64,
    /// Pages with `sysparm_limit` above this are cancelled like a query that
    /// hit the 60 s transaction limit.
    pub cancel_above_limit: Option<u32>,
    /// How long a cancelled transaction takes to answer, ms (a real one: 60,000).
    pub cancel_delay_ms: u64,
    /// Share of event records the user's ACLs hide: pages come back short.
    pub acl_hidden_fraction: f64,
    /// Tables answered 400 `Invalid table`, as an instance answers a table a
    /// plugin removal or a rename took away.
    pub invalid_tables: Vec<String>,
    /// Tables answered 503, as when the node serving them is failing (in a
    /// batch too, item by item).
    pub erroring_tables: Vec<String>,
    /// Every API call is written to `syslog_transaction`, as a real instance
    /// writes every transaction, the connector's own calls included: one
    /// row per HTTP call (a Batch API call is one row). Off by default, so
    /// a test's events are the generated ones.
    pub log_api_calls: bool,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            not_admin: false,
            rest_api_off: false,
            hibernating: false,
            user_locked_out: false,
            user_inactive: false,
            password_grant_disabled: false,
            basic_auth_restricted: false,
            basic_auth_denying: false,
            batch_api_off: false,
            rate_limit_fraction: 0.0,
            rate_limit_per_hour: None,
            retry_after_secs: 1,
            error_fraction: 0.0,
            slow_ms: 0,
            cancel_above_limit: None,
            cancel_delay_ms: 0,
            acl_hidden_fraction: 0.0,
            invalid_tables: Vec::new(),
            erroring_tables: Vec::new(),
            log_api_calls: false,
        }
    }
}

impl Conditions {
    /// Applies the members present in `patch` (a JSON object) over `self`.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Conditions, String> {
        let mut current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let (Some(cur), Some(p)) = (current.as_object_mut(), patch.as_object()) else {
            return Err("conditions must be a JSON object".into());
        };
        for (k, v) in p {
            cur.insert(k.clone(), v.clone());
        }
        serde_json::from_value(current).map_err(|e| e.to_string())
    }
}

/// Whether the ACLs hide this record from the connector's user: a fixed
/// function of the sys_id, so the ground truth can leave the same ones out.
pub fn acl_hidden(sys_id: &str, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    let head = sys_id
        .get(..8)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    (f64::from(head) / f64::from(u32::MAX)) < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_the_patch_does_not_name_and_refuses_unknown_members() {
        let c = Conditions {
            slow_ms: 5,
            ..Default::default()
        };
        let m = c.merged(&serde_json::json!({"hibernating": true})).unwrap();
        assert!(m.hibernating);
        assert_eq!(m.slow_ms, 5);
        assert!(c.merged(&serde_json::json!({"hibernate": true})).is_err());
    }

    #[test]
    fn acl_hiding_is_a_stable_share() {
        let ids: Vec<String> = (0..10_000u32)
            .map(|i| format!("{:08x}{}", i.wrapping_mul(2_654_435_761), "0".repeat(24)))
            .collect();
        let hidden = ids.iter().filter(|id| acl_hidden(id, 0.25)).count();
        assert!((2_000..3_000).contains(&hidden), "{hidden}");
        assert!(ids.iter().all(|id| !acl_hidden(id, 0.0)));
    }
}
