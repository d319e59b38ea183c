//! The warnings a connection carries: raised at connect (a short token
//! lifespan, no Batch API), by the posture check (hardening that will break
//! the connection's method) and by failing pulls. Stored as JSON on the
//! connection's row and shown by the API; the code is a type, the message
//! says what to do.

use serde::{Deserialize, Serialize};

use crate::connect::input::AuthMethod;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    /// The OAuth application's access tokens live under an hour.
    TokenLifespanShort,
    /// The instance has no Batch API: reads go one table at a time.
    TableAccessUnchecked,
    PasswordGrantDisabled,
    BasicAuthRestricted,
    /// Slices keep failing inside the worker.
    PullsFailing,
    /// A code this version does not know (written by a newer one): kept
    /// and shown with its message, never acted on.
    #[serde(other)]
    Unrecognised,
}

impl WarningCode {
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::TokenLifespanShort => "token_lifespan_short",
            WarningCode::TableAccessUnchecked => "table_access_unchecked",
            WarningCode::PasswordGrantDisabled => "password_grant_disabled",
            WarningCode::BasicAuthRestricted => "basic_auth_restricted",
            WarningCode::PullsFailing => "pulls_failing",
            WarningCode::Unrecognised => "unrecognised",
        }
    }

    pub const KNOWN: [WarningCode; 5] = [
        WarningCode::TokenLifespanShort,
        WarningCode::TableAccessUnchecked,
        WarningCode::PasswordGrantDisabled,
        WarningCode::BasicAuthRestricted,
        WarningCode::PullsFailing,
    ];

    pub fn parse(code: &str) -> WarningCode {
        WarningCode::KNOWN
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or(WarningCode::Unrecognised)
    }
}

/// The codes every posture check raises and clears; the others belong to
/// connect or to the pulls and stay as they are.
pub const HARDENING_CODES: [WarningCode; 2] = [
    WarningCode::PasswordGrantDisabled,
    WarningCode::BasicAuthRestricted,
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub code: WarningCode,
    pub message: String,
}

/// How later reads reach the instance, from what its connect check warned.
pub fn read_route(warnings: &[Warning]) -> crate::servicenow::batch::ReadRoute {
    if warnings
        .iter()
        .any(|w| w.code == WarningCode::TableAccessUnchecked)
    {
        crate::servicenow::batch::ReadRoute::OneByOne
    } else {
        crate::servicenow::batch::ReadRoute::Batch
    }
}

/// The hardening switches connect and the posture check read for warnings.
pub const PASSWORD_GRANT_OFF: &str = "glide.oauth.inbound.ropc.grant_type.disabled";
pub const BASIC_AUTH_RESTRICTION: &str = "glide.authenticate.basic_auth.restriction.active";

/// The hardening switches that decide whether a method keeps working.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hardening {
    /// `glide.oauth.inbound.ropc.grant_type.disabled` is true.
    pub password_grant_off: bool,
    /// `glide.authenticate.basic_auth.restriction.active` is true.
    pub basic_auth_restricted: bool,
    /// The account's `web_service_access_only`, when it could be read.
    pub web_service_only: Option<bool>,
}

impl Hardening {
    /// The warnings a connection made with `method` carries on an instance
    /// hardened like this (at connect and at every posture check).
    pub fn warnings(self, method: AuthMethod) -> Vec<Warning> {
        let mut out = Vec::new();
        if self.password_grant_off && method == AuthMethod::Oauth {
            out.push(Warning {
                code: WarningCode::PasswordGrantDisabled,
                message: "The instance switches the OAuth password grant off (glide.oauth.inbound.ropc.grant_type.disabled = true): the next connect or reconnect with a password will be refused. Reconnect with OAuth client credentials.".into(),
            });
        }
        if self.basic_auth_restricted
            && method == AuthMethod::Basic
            && self.web_service_only != Some(true)
        {
            out.push(Warning {
                code: WarningCode::BasicAuthRestricted,
                message: "ServiceNow's basic-auth restriction is on (glide.authenticate.basic_auth.restriction.active) and this account also signs in interactively: its API calls will be denied. Mark the account \"Web service access only\" (User Administration > Users), or connect with OAuth client credentials.".into(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_an_unknown_one_is_kept_as_unrecognised() {
        for code in WarningCode::KNOWN {
            assert_eq!(WarningCode::parse(code.as_str()), code);
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
        let stored = r#"[{"code":"from_a_newer_version","message":"m"}]"#;
        let read: Vec<Warning> = serde_json::from_str(stored).unwrap();
        assert_eq!(read[0].code, WarningCode::Unrecognised);
        assert_eq!(read[0].message, "m");
    }

    #[test]
    fn no_batch_api_reads_one_table_at_a_time() {
        let w = |code| Warning {
            code,
            message: String::new(),
        };
        assert_eq!(
            read_route(&[w(WarningCode::TableAccessUnchecked)]),
            crate::servicenow::batch::ReadRoute::OneByOne
        );
        assert_eq!(
            read_route(&[w(WarningCode::PullsFailing)]),
            crate::servicenow::batch::ReadRoute::Batch
        );
    }
}
