//! The connect request and its validation: one function the browser (through
//! wasm) and the worker both call, so both show the same codes and messages.

use serde::{Deserialize, Serialize};

use crate::problem::FieldError;
use crate::secret::{ClientSecret, Password, Secret};
use crate::servicenow::instance_url::{self, HostPolicy, InstanceUrl};

/// What the wizard or an API client sends; every member optional so a missing
/// one becomes a field error, not a parse failure.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConnectRequest {
    pub name: Option<String>,
    pub instance_url: Option<String>,
    pub method: Option<String>,
    pub username: Option<String>,
    pub password: Option<Password>,
    pub client_id: Option<String>,
    pub client_secret: Option<ClientSecret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// OAuth password grant; the password is used once and dropped.
    Oauth,
    /// OAuth client-credentials grant: no user, no password; for instances
    /// whose hardening switches the password grant off.
    ClientCredentials,
    /// Legacy HTTP Basic with a service account; the password is kept sealed.
    Basic,
}

/// A credential field of the connect request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialField {
    Username,
    Password,
    ClientId,
    ClientSecret,
}

impl CredentialField {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialField::Username => "username",
            CredentialField::Password => "password",
            CredentialField::ClientId => "client_id",
            CredentialField::ClientSecret => "client_secret",
        }
    }
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 3] = [
        AuthMethod::Oauth,
        AuthMethod::ClientCredentials,
        AuthMethod::Basic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Oauth => "oauth",
            AuthMethod::ClientCredentials => "client_credentials",
            AuthMethod::Basic => "basic",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMethod> {
        AuthMethod::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The credential fields this method needs, in the wizard's order.
    pub fn fields(self) -> &'static [CredentialField] {
        use CredentialField::*;
        match self {
            AuthMethod::Oauth => &[Username, Password, ClientId, ClientSecret],
            AuthMethod::ClientCredentials => &[ClientId, ClientSecret],
            AuthMethod::Basic => &[Username, Password],
        }
    }

    pub fn needs(self, field: CredentialField) -> bool {
        self.fields().contains(&field)
    }

    /// What to check when ServiceNow refuses this method's credentials: its
    /// refusal is the same opaque answer whatever the cause.
    pub fn rejected_advice(self) -> &'static str {
        match self {
            AuthMethod::Oauth => "ServiceNow does not say which part was wrong. Check, in this order: the user ID and password; the OAuth client ID and client secret (System OAuth > Application Registry); that the user is active and not locked out. The instance may also have the password grant switched off (glide.oauth.inbound.ropc.grant_type.disabled): connect with client credentials instead. Then reconnect.",
            AuthMethod::ClientCredentials => "ServiceNow does not say which part was wrong. Check the client ID and client secret (System OAuth > Application Registry), that the application is active and allows the client-credentials grant (glide.oauth.inbound.client.credential.grant_type.enabled), and that its OAuth application user is set, active and not locked out. Then reconnect.",
            AuthMethod::Basic => "ServiceNow does not say which part was wrong. Check the user ID and password, that the user is active and not locked out, and that basic-auth API calls are allowed for it: with ServiceNow's basic-auth restriction on, mark the account \"Web service access only\". Then reconnect.",
        }
    }

    /// How the page names it.
    pub fn label(self) -> &'static str {
        match self {
            AuthMethod::Oauth => "OAuth (recommended)",
            AuthMethod::ClientCredentials => "OAuth client credentials",
            AuthMethod::Basic => "User name and password (legacy)",
        }
    }
}

/// The credentials of a connect, one shape per method: what a method does
/// not use cannot be carried.
#[derive(Clone, Debug)]
pub enum ConnectCredentials {
    Oauth {
        username: String,
        password: Password,
        client: OAuthClient,
    },
    ClientCredentials {
        client: OAuthClient,
    },
    Basic {
        username: String,
        password: Password,
    },
}

impl ConnectCredentials {
    pub fn method(&self) -> AuthMethod {
        match self {
            ConnectCredentials::Oauth { .. } => AuthMethod::Oauth,
            ConnectCredentials::ClientCredentials { .. } => AuthMethod::ClientCredentials,
            ConnectCredentials::Basic { .. } => AuthMethod::Basic,
        }
    }

    /// The typed user ID; client credentials name none (the OAuth
    /// application's user is learned at connect).
    pub fn username(&self) -> Option<&str> {
        match self {
            ConnectCredentials::Oauth { username, .. }
            | ConnectCredentials::Basic { username, .. } => Some(username),
            ConnectCredentials::ClientCredentials { .. } => None,
        }
    }

    pub fn client(&self) -> Option<&OAuthClient> {
        match self {
            ConnectCredentials::Oauth { client, .. }
            | ConnectCredentials::ClientCredentials { client } => Some(client),
            ConnectCredentials::Basic { .. } => None,
        }
    }
}

/// A connect request that passed validation.
#[derive(Clone, Debug)]
pub struct ConnectInput {
    pub name: String,
    pub instance_url: InstanceUrl,
    pub credentials: ConnectCredentials,
}

#[derive(Clone, Debug)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: ClientSecret,
}

/// What `/validate` answers: the normalized, non-secret part of the input.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Normalized {
    pub name: String,
    pub instance_url: InstanceUrl,
    pub method: AuthMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl ConnectInput {
    pub fn method(&self) -> AuthMethod {
        self.credentials.method()
    }

    pub fn normalized(&self) -> Normalized {
        Normalized {
            name: self.name.clone(),
            instance_url: self.instance_url.clone(),
            method: self.method(),
            username: self.credentials.username().map(str::to_string),
            client_id: self.credentials.client().map(|c| c.client_id.clone()),
        }
    }
}

pub const NAME_MAX: usize = 100;
pub const USERNAME_MAX: usize = 255;
pub const SECRET_MAX: usize = 4096;
pub const CLIENT_ID_MAX: usize = 128;

fn err(field: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        code: code.into(),
        message: message.into(),
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

pub fn check_name(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(err(
            "name",
            "required",
            "Give the connection a name, such as \"ServiceNow production\".",
        ));
    }
    if v.chars().count() > NAME_MAX {
        return Err(err(
            "name",
            "too_long",
            format!("Use at most {NAME_MAX} characters for the name."),
        ));
    }
    if has_control(v) {
        return Err(err(
            "name",
            "invalid",
            "Remove line breaks and control characters from the name.",
        ));
    }
    Ok(v.to_string())
}

pub fn check_method(value: &str) -> Result<AuthMethod, FieldError> {
    match value.trim() {
        "" => Err(err(
            "method",
            "required",
            "Choose how to connect: OAuth (recommended), OAuth client credentials, or user name and password (legacy).",
        )),
        v => AuthMethod::parse(v).ok_or_else(|| {
            err(
                "method",
                "invalid",
                "The method must be \"oauth\", \"client_credentials\" or \"basic\".",
            )
        }),
    }
}

pub fn check_instance_url(value: &str, policy: &HostPolicy) -> Result<InstanceUrl, FieldError> {
    instance_url::parse(value, policy).map_err(|e| err("instance_url", e.code(), e.message()))
}

pub fn check_username(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(err(
            "username",
            "required",
            "Enter the ServiceNow user ID (the user_name of an account with the admin role).",
        ));
    }
    if v.chars().count() > USERNAME_MAX {
        return Err(err(
            "username",
            "too_long",
            format!("Use at most {USERNAME_MAX} characters for the user ID."),
        ));
    }
    if has_control(v) {
        return Err(err(
            "username",
            "invalid",
            "Remove line breaks and control characters from the user ID.",
        ));
    }
    Ok(v.to_string())
}

fn check_secret<K>(field: &str, value: &Secret<K>, what: &str) -> Result<Secret<K>, FieldError> {
    if value.is_empty() {
        return Err(err(field, "required", format!("Enter the {what}.")));
    }
    if value.expose().chars().count() > SECRET_MAX {
        return Err(err(
            field,
            "too_long",
            format!("The {what} is longer than {SECRET_MAX} characters; check what was pasted."),
        ));
    }
    if value.expose().contains(['\n', '\r', '\0']) {
        return Err(err(
            field,
            "invalid",
            format!("The {what} contains a line break; check what was pasted."),
        ));
    }
    Ok(value.clone())
}

pub fn check_password(value: &Password) -> Result<Password, FieldError> {
    check_secret("password", value, "password")
}

pub fn check_client_id(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(err("client_id", "required", "Enter the client ID from System OAuth > Application Registry (32 characters, generated by ServiceNow)."));
    }
    if v.len() > CLIENT_ID_MAX
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(err("client_id", "invalid", "The client ID has letters, digits, '-', '_' or '.' only; copy it again from the Application Registry record."));
    }
    Ok(v.to_string())
}

pub fn check_client_secret(value: &ClientSecret) -> Result<ClientSecret, FieldError> {
    check_secret("client_secret", value, "client secret")
}

/// Checks one field as the wizard does while the admin types. `value` is the
/// field's current text. Unknown fields are an error, so typos surface.
pub fn check_field(field: &str, value: &str, policy: &HostPolicy) -> Result<(), FieldError> {
    match field {
        "name" => check_name(value).map(|_| ()),
        "method" => check_method(value).map(|_| ()),
        "instance_url" => check_instance_url(value, policy).map(|_| ()),
        "username" => check_username(value).map(|_| ()),
        "password" => check_password(&Secret::new(value)).map(|_| ()),
        "client_id" => check_client_id(value).map(|_| ()),
        "client_secret" => check_client_secret(&Secret::new(value)).map(|_| ()),
        other => Err(err(
            other,
            "unknown_field",
            format!("There is no field named \"{other}\"."),
        )),
    }
}

/// The value when fine; otherwise the problem joins `errors`.
fn keep<T>(checked: Result<T, FieldError>, errors: &mut Vec<FieldError>) -> Option<T> {
    checked.map_err(|e| errors.push(e)).ok()
}

/// The credential fields a connect or reconnect carries for its method;
/// problems are pushed to `errors`. Fields the method does not use are
/// ignored (the wizard may keep what was typed before the method changed).
fn check_credentials(
    req: &ConnectRequest,
    method: Option<AuthMethod>,
    errors: &mut Vec<FieldError>,
) -> Option<ConnectCredentials> {
    let method = method?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (no_password, no_client_secret) = (Password::new(""), ClientSecret::new(""));
    let mut username = None;
    let mut password = None;
    let mut client_id = None;
    let mut client_secret = None;
    for field in method.fields() {
        match field {
            CredentialField::Username => {
                username = keep(check_username(&text(&req.username)), errors)
            }
            CredentialField::Password => {
                password = keep(
                    check_password(req.password.as_ref().unwrap_or(&no_password)),
                    errors,
                )
            }
            CredentialField::ClientId => {
                client_id = keep(check_client_id(&text(&req.client_id)), errors)
            }
            CredentialField::ClientSecret => {
                client_secret = keep(
                    check_client_secret(req.client_secret.as_ref().unwrap_or(&no_client_secret)),
                    errors,
                )
            }
        }
    }
    let client = client_id
        .zip(client_secret)
        .map(|(client_id, client_secret)| OAuthClient {
            client_id,
            client_secret,
        });
    match method {
        AuthMethod::Oauth => {
            let ((username, password), client) = username.zip(password).zip(client)?;
            Some(ConnectCredentials::Oauth {
                username,
                password,
                client,
            })
        }
        AuthMethod::ClientCredentials => {
            Some(ConnectCredentials::ClientCredentials { client: client? })
        }
        AuthMethod::Basic => {
            let (username, password) = username.zip(password)?;
            Some(ConnectCredentials::Basic { username, password })
        }
    }
}

/// Validates a whole connect request, collecting every field's problem.
pub fn validate(
    req: &ConnectRequest,
    policy: &HostPolicy,
) -> Result<ConnectInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let name = keep(check_name(&text(&req.name)), &mut errors);
    let instance_url = keep(
        check_instance_url(&text(&req.instance_url), policy),
        &mut errors,
    );
    let method = keep(check_method(&text(&req.method)), &mut errors);
    let credentials = check_credentials(req, method, &mut errors);
    match (name, instance_url, credentials) {
        (Some(name), Some(instance_url), Some(credentials)) if errors.is_empty() => {
            Ok(ConnectInput {
                name,
                instance_url,
                credentials,
            })
        }
        _ => Err(errors),
    }
}

/// Validates the credentials of a reconnect: the connect fields minus name and URL.
pub fn validate_credentials(
    req: &ConnectRequest,
    method: AuthMethod,
) -> Result<ConnectCredentials, Vec<FieldError>> {
    let mut errors = Vec::new();
    match check_credentials(req, Some(method), &mut errors) {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> ConnectRequest {
        ConnectRequest {
            name: Some(" Prod ".into()),
            instance_url: Some("acme".into()),
            method: Some("oauth".into()),
            username: Some("svc.connector".into()),
            password: Some(Secret::new("pw")),
            client_id: Some("9f2c4b1e7a3d4c5e8f6a0b1c2d3e4f50".into()),
            client_secret: Some(Secret::new("sec")),
        }
    }

    #[test]
    fn a_full_oauth_request_normalizes() {
        let ok = validate(&full(), &HostPolicy::default()).unwrap();
        let n = ok.normalized();
        assert_eq!(n.name, "Prod");
        assert_eq!(n.instance_url.as_str(), "https://acme.service-now.com");
        assert_eq!(n.method, AuthMethod::Oauth);
        let json = serde_json::to_string(&n).unwrap();
        assert!(!json.contains("pw") && !json.contains("sec\""), "{json}");
    }

    #[test]
    fn every_missing_field_is_reported_at_once() {
        let errors = validate(
            &ConnectRequest {
                method: Some("oauth".into()),
                ..Default::default()
            },
            &HostPolicy::default(),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "instance_url",
                "username",
                "password",
                "client_id",
                "client_secret"
            ]
        );
        assert!(errors.iter().all(|e| e.code == "required"));
    }

    #[test]
    fn basic_needs_no_client_and_bad_method_is_named() {
        let mut r = full();
        r.method = Some("basic".into());
        r.client_id = None;
        r.client_secret = None;
        assert!(validate(&r, &HostPolicy::default())
            .unwrap()
            .credentials
            .client()
            .is_none());
        r.method = Some("saml".into());
        let e = validate(&r, &HostPolicy::default()).unwrap_err();
        assert_eq!(
            (e[0].field.as_str(), e[0].code.as_str()),
            ("method", "invalid")
        );
    }

    #[test]
    fn client_credentials_needs_the_client_only() {
        let r = ConnectRequest {
            name: Some("Prod".into()),
            instance_url: Some("acme".into()),
            method: Some("client_credentials".into()),
            username: Some("ignored".into()),
            ..Default::default()
        };
        let errors = validate(&r, &HostPolicy::default()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["client_id", "client_secret"]);
        let mut r = r;
        r.client_id = Some("9f2c4b1e7a3d4c5e8f6a0b1c2d3e4f50".into());
        r.client_secret = Some(Secret::new("sec"));
        let ok = validate(&r, &HostPolicy::default()).unwrap();
        assert_eq!(ok.method(), AuthMethod::ClientCredentials);
        assert!(
            ok.credentials.username().is_none(),
            "a typed user ID is not kept"
        );
        let json = serde_json::to_string(&ok.normalized()).unwrap();
        assert!(
            !json.contains("username") && !json.contains("sec\""),
            "{json}"
        );
        for m in AuthMethod::ALL {
            assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
        }
    }

    #[test]
    fn check_field_matches_whole_validation() {
        let p = HostPolicy::default();
        assert!(check_field("instance_url", "acme", &p).is_ok());
        let e = check_field("instance_url", "https://10.0.0.1", &p).unwrap_err();
        assert_eq!(e.code, "instance_url_forbidden");
        assert_eq!(check_field("name", "  ", &p).unwrap_err().code, "required");
        assert_eq!(
            check_field("client_id", "abc def", &p).unwrap_err().code,
            "invalid"
        );
        assert_eq!(
            check_field("bogus", "x", &p).unwrap_err().code,
            "unknown_field"
        );
    }
}
