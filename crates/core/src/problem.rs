//! The error catalog: every problem a user can meet, with a stable code, an
//! HTTP status, a title and what to do next. The worker turns these into RFC
//! 9457 bodies; the browser shows the same words.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    Unauthorized,
    Forbidden,
    MethodNotAllowed,
    ValidationFailed,
    InstanceUrlForbidden,
    InstanceUnreachable,
    InstanceHibernating,
    NotServicenow,
    CredentialsRejected,
    NotAdmin,
    ReleaseUnsupported,
    TableAccessDenied,
    RateLimited,
    NotFound,
    Conflict,
    SinkUrlForbidden,
    PayloadTooLarge,
    QuotaExceeded,
    Internal,
}

impl ProblemCode {
    pub const ALL: [ProblemCode; 19] = [
        ProblemCode::Unauthorized,
        ProblemCode::Forbidden,
        ProblemCode::MethodNotAllowed,
        ProblemCode::ValidationFailed,
        ProblemCode::InstanceUrlForbidden,
        ProblemCode::InstanceUnreachable,
        ProblemCode::InstanceHibernating,
        ProblemCode::NotServicenow,
        ProblemCode::CredentialsRejected,
        ProblemCode::NotAdmin,
        ProblemCode::ReleaseUnsupported,
        ProblemCode::TableAccessDenied,
        ProblemCode::RateLimited,
        ProblemCode::NotFound,
        ProblemCode::Conflict,
        ProblemCode::SinkUrlForbidden,
        ProblemCode::PayloadTooLarge,
        ProblemCode::QuotaExceeded,
        ProblemCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Unauthorized => "unauthorized",
            ProblemCode::Forbidden => "forbidden",
            ProblemCode::MethodNotAllowed => "method_not_allowed",
            ProblemCode::ValidationFailed => "validation_failed",
            ProblemCode::InstanceUrlForbidden => "instance_url_forbidden",
            ProblemCode::InstanceUnreachable => "instance_unreachable",
            ProblemCode::InstanceHibernating => "instance_hibernating",
            ProblemCode::NotServicenow => "not_servicenow",
            ProblemCode::CredentialsRejected => "credentials_rejected",
            ProblemCode::NotAdmin => "not_admin",
            ProblemCode::ReleaseUnsupported => "release_unsupported",
            ProblemCode::TableAccessDenied => "table_access_denied",
            ProblemCode::RateLimited => "rate_limited",
            ProblemCode::NotFound => "not_found",
            ProblemCode::Conflict => "conflict",
            ProblemCode::SinkUrlForbidden => "sink_url_forbidden",
            ProblemCode::PayloadTooLarge => "payload_too_large",
            ProblemCode::QuotaExceeded => "quota_exceeded",
            ProblemCode::Internal => "internal",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ProblemCode::Unauthorized => 401,
            ProblemCode::Forbidden | ProblemCode::QuotaExceeded => 403,
            ProblemCode::MethodNotAllowed => 405,
            ProblemCode::ValidationFailed
            | ProblemCode::InstanceUrlForbidden
            | ProblemCode::SinkUrlForbidden => 422,
            ProblemCode::NotFound => 404,
            ProblemCode::Conflict => 409,
            ProblemCode::RateLimited => 429,
            ProblemCode::PayloadTooLarge => 413,
            ProblemCode::Internal => 500,
            ProblemCode::InstanceUnreachable | ProblemCode::NotServicenow => 502,
            ProblemCode::InstanceHibernating => 503,
            ProblemCode::CredentialsRejected
            | ProblemCode::NotAdmin
            | ProblemCode::ReleaseUnsupported
            | ProblemCode::TableAccessDenied => 422,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemCode::Unauthorized => "Credential missing or wrong",
            ProblemCode::Forbidden => "This credential may not do that",
            ProblemCode::MethodNotAllowed => "This route does not take that method",
            ProblemCode::ValidationFailed => "Some fields need attention",
            ProblemCode::InstanceUrlForbidden => "This instance URL is not allowed",
            ProblemCode::InstanceUnreachable => "The instance could not be reached",
            ProblemCode::InstanceHibernating => "The instance is hibernating",
            ProblemCode::NotServicenow => "This does not look like a ServiceNow instance",
            ProblemCode::CredentialsRejected => "ServiceNow rejected the credentials",
            ProblemCode::NotAdmin => "The user does not have the admin role",
            ProblemCode::ReleaseUnsupported => "This ServiceNow release is not supported",
            ProblemCode::TableAccessDenied => "The user cannot read a table the connector needs",
            ProblemCode::RateLimited => "ServiceNow is rate limiting this user",
            ProblemCode::NotFound => "Not found",
            ProblemCode::Conflict => "Already connected",
            ProblemCode::SinkUrlForbidden => "This receiver URL is not allowed",
            ProblemCode::PayloadTooLarge => "The request body is too large",
            ProblemCode::QuotaExceeded => "This credential has made all the connections it may",
            ProblemCode::Internal => "Something went wrong on our side",
        }
    }

    /// What the user should do next; the problem's `detail` starts from this.
    pub fn advice(self) -> &'static str {
        match self {
            ProblemCode::Unauthorized => "Send 'Authorization: Bearer <credential>': the worker's ADMIN_TOKEN, an API key (snck_…) or a connect ticket (snct_…), or sign in through Cloudflare Access.",
            ProblemCode::Forbidden => "Use a credential with the scope named here: an admin creates API keys with scopes under Keys on the hosted page (POST /api/v1/keys).",
            ProblemCode::MethodNotAllowed => "Use one of the methods in the Allow header; /api/v1/openapi.json lists every route.",
            ProblemCode::ValidationFailed => "Correct the fields listed in 'errors' and try again.",
            ProblemCode::InstanceUrlForbidden => "Use your instance's address, such as https://acme.service-now.com. Only hosts under the configured INSTANCE_HOSTS are allowed.",
            ProblemCode::InstanceUnreachable => "Check the instance URL and that the instance is up, then try again.",
            ProblemCode::InstanceHibernating => "Wake the instance (sign in to it, or wake it from the developer portal), wait a few minutes, then try again.",
            ProblemCode::NotServicenow => "Check the instance URL: it should be your ServiceNow instance, such as https://acme.service-now.com.",
            ProblemCode::CredentialsRejected => "ServiceNow does not say which part was wrong. Check, in this order: the user ID and password; the OAuth client ID and client secret (System OAuth > Application Registry); that the user is active and not locked out; that the OAuth endpoint allows the password grant. Then reconnect.",
            ProblemCode::NotAdmin => "Grant the admin role to this user (User Administration > Users > Roles), or connect with a user that has it.",
            ProblemCode::ReleaseUnsupported => "Connect an instance on a supported release, or widen the supported range of this connector.",
            ProblemCode::TableAccessDenied => "Check the user's roles and ACLs for the table named here, and that the REST API is active on the instance.",
            ProblemCode::RateLimited => "Wait until the time given and try again, or raise the user's inbound REST API rate limit (System Web Services > REST > Rate Limit Rules).",
            ProblemCode::NotFound => "Check the ID; list the connections with GET /api/v1/connections.",
            ProblemCode::Conflict => "Pick another name, or connect with another user. To give an existing connection new credentials, reconnect it instead of connecting again.",
            ProblemCode::SinkUrlForbidden => "Give the receiver's public https URL by host name: loopback, private, link-local and metadata addresses, IP literals and internal names are refused.",
            ProblemCode::PayloadTooLarge => "Send a JSON body of at most 64 KB, with its Content-Length: every request body of the API is a small JSON object.",
            ProblemCode::QuotaExceeded => "Delete a connection this key (or a ticket it minted) made, or ask an admin to connect the instance, or to raise CONNECTIONS_PER_KEY.",
            ProblemCode::Internal => "Try again. If it persists, check the worker's log for this request.",
        }
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code of the one problem no server sends: the browser could not reach
/// the connector at all (network down, wrong address, CORS refused). It is
/// not ServiceNow's problem and not the admin's input, so the wizard keeps
/// the admin where they are.
pub const CONNECTOR_UNREACHABLE: &str = "connector_unreachable";

/// One field's problem, as shown next to the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

/// An RFC 9457 problem with our `code` and, for validation, `errors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait, for `rate_limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(code: ProblemCode) -> Self {
        Problem {
            type_uri: format!(
                "https://servicenow-connector.dev/problems/{}",
                code.as_str()
            ),
            title: code.title().into(),
            status: code.status(),
            detail: code.advice().into(),
            code: code.as_str().into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// The catalog's advice, preceded by what happened in this case.
    pub fn with_context(code: ProblemCode, what_happened: impl AsRef<str>) -> Self {
        let mut p = Problem::new(code);
        p.detail = format!("{} {}", what_happened.as_ref(), code.advice());
        p
    }

    /// Puts other advice in place of the catalog's, where the case knows
    /// better (a refusal's causes depend on the method used).
    pub fn advise(mut self, advice: &str) -> Self {
        let generic = ProblemCode::ALL
            .into_iter()
            .find(|c| self.is(*c))
            .map(ProblemCode::advice);
        match generic.and_then(|g| self.detail.strip_suffix(g)) {
            Some(context) => self.detail = format!("{context}{advice}"),
            None => self.detail = format!("{} {advice}", self.detail),
        }
        self
    }

    /// A 429: what was too much, what to do, and when to come back.
    pub fn rate_limited(what_happened: &str, advice: &str, retry_after_secs: u64) -> Self {
        let mut p = Problem::with_context(ProblemCode::RateLimited, what_happened).advise(advice);
        p.retry_after = Some(retry_after_secs);
        p
    }

    /// What the browser shows when no answer came; `why` is the browser's
    /// own reason, if it gave one.
    pub fn connector_unreachable(why: &str) -> Self {
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        };
        Problem {
            type_uri: format!("https://servicenow-connector.dev/problems/{CONNECTOR_UNREACHABLE}"),
            title: "The connector could not be reached".into(),
            status: 0,
            detail: format!("No answer came{why}. Check your network and the connector's address, then try again."),
            code: CONNECTOR_UNREACHABLE.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Field errors as one problem: `validation_failed`, or the refused
    /// URL's own code when a field names an instance or receiver URL the
    /// policy refuses (`instance_url_forbidden`, `sink_url_forbidden`).
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let refused = [
            ProblemCode::InstanceUrlForbidden,
            ProblemCode::SinkUrlForbidden,
        ]
        .into_iter()
        .find(|code| errors.iter().any(|e| e.code == code.as_str()));
        let mut p = Problem::new(refused.unwrap_or(ProblemCode::ValidationFailed));
        p.errors = errors;
        p
    }

    pub fn is(&self, code: ProblemCode) -> bool {
        self.code == code.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_url_among_field_errors_names_the_problem() {
        let field = |code: &str| FieldError {
            field: "url".into(),
            code: code.into(),
            message: "m".into(),
        };
        assert!(Problem::validation(vec![field("required")]).is(ProblemCode::ValidationFailed));
        let p = Problem::validation(vec![field("required"), field("sink_url_forbidden")]);
        assert!(p.is(ProblemCode::SinkUrlForbidden));
        assert_eq!(p.status, ProblemCode::SinkUrlForbidden.status());
        assert_eq!(p.errors.len(), 2);
        assert!(Problem::validation(vec![field("instance_url_forbidden")])
            .is(ProblemCode::InstanceUrlForbidden));
    }

    #[test]
    fn a_rate_limit_says_what_was_too_much_what_to_do_and_when() {
        let p = Problem::rate_limited("Too many calls.", "Call more slowly.", 60);
        assert_eq!(p.status, 429);
        assert!(p.is(ProblemCode::RateLimited));
        assert_eq!(p.retry_after, Some(60));
        assert_eq!(p.detail, "Too many calls. Call more slowly.");
    }

    #[test]
    fn the_api_description_lists_every_code() {
        let spec: serde_json::Value =
            serde_json::from_str(include_str!("../../worker/openapi.json")).unwrap();
        let listed: Vec<&str> = spec["components"]["schemas"]["Problem"]["properties"]["code"]
            ["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut want: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        let mut got = listed.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn every_code_serializes_to_its_stable_name_and_has_advice() {
        for code in ProblemCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
            assert!(code.advice().len() > 20, "{code} needs advice");
            let p = Problem::new(code);
            assert_eq!(p.status, code.status());
            assert!(p.type_uri.ends_with(code.as_str()));
        }
    }

    #[test]
    fn a_conflict_says_what_happened_once_then_what_to_do() {
        let p = Problem::with_context(
            ProblemCode::Conflict,
            "A connection with this name, or this instance and user, exists.",
        );
        assert_eq!(p.detail.matches("A connection with this name").count(), 1);
        assert!(p.detail.contains("Pick another name"), "{}", p.detail);
    }

    #[test]
    fn validation_problem_carries_field_errors() {
        let p = Problem::validation(vec![FieldError {
            field: "name".into(),
            code: "required".into(),
            message: "Give the connection a name.".into(),
        }]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["status"], 422);
        assert_eq!(v["code"], "validation_failed");
        assert_eq!(v["errors"][0]["field"], "name");
        assert!(v.get("retry_after").is_none());
    }
}
