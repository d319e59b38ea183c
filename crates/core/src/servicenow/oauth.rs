//! OAuth as data: the password, client-credentials and refresh grant requests ServiceNow's
//! `/oauth_token.do` takes (form-encoded only), and what its answers mean.
//! ServiceNow answers every failure with the same opaque
//! `401 {"error":"server_error","error_description":"access_denied"}`, so a
//! rejection is mapped to `credentials_rejected` with every cause it can have.

use serde::Deserialize;

use crate::connect::input::OAuthClient;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::problem::{Problem, ProblemCode};
use crate::secret::{AccessToken, Password, RefreshToken};
use crate::servicenow::answers::classify_failure;
use crate::servicenow::instance_url::InstanceUrl;

/// Below this access token lifespan the connection works but refreshes often;
/// the admin is told to raise it (Defender for Cloud Apps asks for 3,600 s).
pub const SHORT_LIFESPAN_SECS: i64 = 3_600;

/// What a successful token request gave.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub access_token: AccessToken,
    /// ServiceNow's refresh grant may or may not return one.
    pub refresh_token: Option<RefreshToken>,
    pub expires_in: i64,
    pub scope: Option<String>,
}

impl TokenGrant {
    /// The access token's expiry, from the time the request was sent.
    pub fn expires_at(&self, sent_at: i64) -> i64 {
        sent_at + self.expires_in
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<AccessToken>,
    refresh_token: Option<RefreshToken>,
    expires_in: Option<serde_json::Value>,
    scope: Option<String>,
    token_type: Option<String>,
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish().into_bytes()
}

fn token_request(instance: &InstanceUrl, body: Vec<u8>) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        url: instance.join("/oauth_token.do"),
        headers: vec![
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("Accept".into(), "application/json".into()),
        ],
        body,
    }
}

pub fn password_grant(
    instance: &InstanceUrl,
    client: &OAuthClient,
    username: &str,
    password: &Password,
) -> HttpRequest {
    token_request(
        instance,
        form(&[
            ("grant_type", "password"),
            ("client_id", &client.client_id),
            ("client_secret", client.client_secret.expose()),
            ("username", username),
            ("password", password.expose()),
        ]),
    )
}

pub fn refresh_grant(
    instance: &InstanceUrl,
    client: &OAuthClient,
    refresh_token: &RefreshToken,
) -> HttpRequest {
    token_request(
        instance,
        form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client.client_id),
            ("client_secret", client.client_secret.expose()),
            ("refresh_token", refresh_token.expose()),
        ]),
    )
}

/// The client-credentials grant: the token acts as the OAuth application's
/// configured user. There is no refresh token; the grant is asked again.
pub fn client_credentials_grant(instance: &InstanceUrl, client: &OAuthClient) -> HttpRequest {
    token_request(
        instance,
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client.client_id),
            ("client_secret", client.client_secret.expose()),
        ]),
    )
}

/// Reads a token endpoint answer; `now` turns `Retry-After` dates into seconds.
pub fn parse_token_response(resp: &HttpResponse, now: i64) -> Result<TokenGrant, Problem> {
    if resp.status == 401 || resp.status == 400 {
        let opaque = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .map(|v| v.get("error_description").is_some() || v.get("error").is_some())
            .unwrap_or(false);
        if opaque || resp.status == 401 {
            return Err(Problem::with_context(
                ProblemCode::CredentialsRejected,
                "ServiceNow refused the token request (access_denied).",
            ));
        }
    }
    if resp.status != 200 || resp.media_type().as_deref() == Some("text/html") {
        return Err(classify_failure(resp, "the OAuth token endpoint", now));
    }
    let body: TokenBody = serde_json::from_slice(&resp.body).map_err(|_| {
        Problem::with_context(
            ProblemCode::NotServicenow,
            "The token endpoint did not answer with a ServiceNow token.",
        )
    })?;
    let expires_in = match body.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    match (body.access_token, expires_in) {
        (Some(access_token), Some(expires_in)) if !access_token.is_empty() && expires_in > 0 => {
            if body
                .token_type
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
            {
                return Err(Problem::with_context(
                    ProblemCode::NotServicenow,
                    "The token endpoint issued a token that is not a bearer token.",
                ));
            }
            Ok(TokenGrant {
                access_token,
                refresh_token: body.refresh_token.filter(|r| !r.is_empty()),
                expires_in,
                scope: body.scope,
            })
        }
        _ => Err(Problem::with_context(
            ProblemCode::NotServicenow,
            "The token endpoint's answer has no access token or lifespan.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::servicenow::instance_url::{parse, HostPolicy};

    fn instance() -> InstanceUrl {
        parse("acme", &HostPolicy::default()).unwrap()
    }

    fn client() -> OAuthClient {
        OAuthClient {
            client_id: "cid".into(),
            client_secret: Secret::new("s&c=ret"),
        }
    }

    fn resp(status: u16, ct: &str, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), ct.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn password_grant_is_form_encoded_with_every_member_escaped() {
        let r = password_grant(&instance(), &client(), "svc", &Secret::new("p@ss w+rd"));
        assert_eq!(r.url, "https://acme.service-now.com/oauth_token.do");
        assert_eq!(r.method, Method::Post);
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert_eq!(body, "grant_type=password&client_id=cid&client_secret=s%26c%3Dret&username=svc&password=p%40ss+w%2Brd");
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "Content-Type" && v == "application/x-www-form-urlencoded"));
        assert!(!format!("{r:?}").contains("p%40ss"));
    }

    #[test]
    fn client_credentials_grant_sends_no_user() {
        let r = client_credentials_grant(&instance(), &client());
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert_eq!(
            body,
            "grant_type=client_credentials&client_id=cid&client_secret=s%26c%3Dret"
        );
        let ok = parse_token_response(&resp(200, "application/json", r#"{"scope":"useraccount","token_type":"Bearer","expires_in":1799,"access_token":"a1"}"#), 0).unwrap();
        assert!(ok.refresh_token.is_none());
    }

    #[test]
    fn success_and_the_opaque_denial() {
        let ok = parse_token_response(&resp(200, "application/json", r#"{"scope":"useraccount","token_type":"Bearer","expires_in":1799,"refresh_token":"r1","access_token":"a1"}"#), 0).unwrap();
        assert_eq!(ok.expires_in, 1799);
        assert_eq!(ok.access_token.expose(), "a1");
        assert_eq!(ok.refresh_token.as_ref().map(Secret::expose), Some("r1"));
        assert_eq!(ok.expires_at(100), 1899);

        let denied = parse_token_response(
            &resp(
                401,
                "application/json",
                r#"{"error_description":"access_denied","error":"server_error"}"#,
            ),
            0,
        )
        .unwrap_err();
        assert!(denied.is(ProblemCode::CredentialsRejected));
        for cause in [
            "user ID and password",
            "client ID and client secret",
            "locked out",
            "password grant",
        ] {
            assert!(
                denied.detail.contains(cause),
                "detail lacks {cause}: {}",
                denied.detail
            );
        }
    }

    #[test]
    fn html_rate_limits_and_garbage_are_told_apart() {
        let hib = parse_token_response(
            &resp(200, "text/html; charset=UTF-8", "<html>Hibernating</html>"),
            0,
        )
        .unwrap_err();
        assert!(hib.is(ProblemCode::InstanceHibernating));
        let mut limited = resp(429, "application/json", "{}");
        limited.headers.push(("Retry-After".into(), "30".into()));
        let p = parse_token_response(&limited, 0).unwrap_err();
        assert!(p.is(ProblemCode::RateLimited));
        assert_eq!(p.retry_after, Some(30));
        assert!(
            parse_token_response(&resp(200, "application/json", "{}"), 0)
                .unwrap_err()
                .is(ProblemCode::NotServicenow)
        );
        assert!(
            parse_token_response(&resp(200, "application/json", "not json"), 0)
                .unwrap_err()
                .is(ProblemCode::NotServicenow)
        );
    }
}
