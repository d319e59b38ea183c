//! `POST /oauth_token.do`: ServiceNow's token endpoint. Every failure gets the
//! same opaque 401 body ServiceNow sends, whatever the cause.

use std::collections::HashMap;

use base64::Engine;
use rand::{Rng, SeedableRng};

/// ServiceNow's body for every token failure (wrong password, wrong secret,
/// unknown client, expired or revoked refresh token alike).
pub const ACCESS_DENIED_BODY: &str =
    r#"{"error_description":"access_denied","error":"server_error"}"#;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub kind: TokenKind,
    pub user: String,
    pub expires_at: i64,
    pub revoked: bool,
}

/// What the endpoint decided: a JSON body to send with 200, or the 401.
#[derive(Debug, PartialEq, Eq)]
pub enum GrantOutcome {
    Issued(serde_json::Value),
    Denied,
}

/// The credentials the instance knows and the tokens it has issued.
pub struct TokenStore {
    tokens: HashMap<String, IssuedToken>,
    rng: rand::rngs::SmallRng,
}

pub struct Credentials<'a> {
    pub username: &'a str,
    /// Fleet accounts like `username` (`crate::config::is_account`).
    pub fleet_accounts: u32,
    pub password: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    /// The OAuth application's user, for the client-credentials grant.
    pub app_user: &'a str,
    pub user_active: bool,
    pub user_locked_out: bool,
    pub password_grant_allowed: bool,
    pub access_lifespan: i64,
    pub refresh_lifespan: i64,
}

impl TokenStore {
    pub fn new(seed: u64) -> Self {
        TokenStore {
            tokens: HashMap::new(),
            rng: rand::rngs::SmallRng::seed_from_u64(seed ^ 0x5EED_70C3),
        }
    }

    fn mint(&mut self) -> String {
        let bytes: [u8; 64] = self.rng.random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Handles one token request. `form` is the decoded body; `basic` the
    /// client ID and secret from an `Authorization: Basic` header, if any.
    pub fn grant(
        &mut self,
        creds: &Credentials<'_>,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
        now: i64,
    ) -> GrantOutcome {
        let (client_id, client_secret) = match basic {
            Some(pair) => pair,
            None => (
                form.get("client_id").cloned().unwrap_or_default(),
                form.get("client_secret").cloned().unwrap_or_default(),
            ),
        };
        if client_id != creds.client_id || client_secret != creds.client_secret {
            return GrantOutcome::Denied;
        }
        let user = match form.get("grant_type").map(String::as_str) {
            Some("password") => {
                let given = form.get("username").map(String::as_str).unwrap_or_default();
                let ok = crate::config::is_account(creds.username, creds.fleet_accounts, given)
                    && form.get("password").map(String::as_str) == Some(creds.password)
                    && creds.user_active
                    && !creds.user_locked_out
                    && creds.password_grant_allowed;
                if !ok {
                    return GrantOutcome::Denied;
                }
                given.to_string()
            }
            Some("client_credentials") => creds.app_user.to_string(),
            Some("refresh_token") => {
                let presented = form.get("refresh_token").cloned().unwrap_or_default();
                match self.tokens.get(&presented) {
                    Some(t) if t.kind == TokenKind::Refresh && !t.revoked && t.expires_at > now => {
                        t.user.clone()
                    }
                    _ => return GrantOutcome::Denied,
                }
            }
            _ => return GrantOutcome::Denied,
        };
        let access = self.mint();
        self.tokens.insert(
            access.clone(),
            IssuedToken {
                kind: TokenKind::Access,
                user: user.clone(),
                expires_at: now + creds.access_lifespan,
                revoked: false,
            },
        );
        let refresh = match form.get("grant_type").map(String::as_str) {
            // No refresh token: the client asks the grant again.
            Some("client_credentials") => {
                return GrantOutcome::Issued(serde_json::json!({
                    "access_token": access,
                    "scope": "useraccount",
                    "token_type": "Bearer",
                    "expires_in": creds.access_lifespan - 1,
                }))
            }
            Some("refresh_token") => form.get("refresh_token").cloned().unwrap_or_default(),
            _ => {
                let r = self.mint();
                self.tokens.insert(
                    r.clone(),
                    IssuedToken {
                        kind: TokenKind::Refresh,
                        user,
                        expires_at: now + creds.refresh_lifespan,
                        revoked: false,
                    },
                );
                r
            }
        };
        GrantOutcome::Issued(serde_json::json!({
            "access_token": access,
            "refresh_token": refresh,
            "scope": "useraccount",
            "token_type": "Bearer",
            // ServiceNow reports one second less than the configured lifespan.
            "expires_in": creds.access_lifespan - 1,
        }))
    }

    /// The user a bearer token acts as, if it is a live access token.
    pub fn access_user(&self, token: &str, now: i64) -> Option<&str> {
        match self.tokens.get(token) {
            Some(t) if t.kind == TokenKind::Access && !t.revoked && t.expires_at > now => {
                Some(t.user.as_str())
            }
            _ => None,
        }
    }

    /// Every issued token string, live or not.
    pub fn issued(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }

    /// Revokes every token (`kind` None) or every token of one kind; returns how many.
    pub fn revoke(&mut self, kind: Option<TokenKind>) -> usize {
        let mut n = 0;
        for t in self.tokens.values_mut() {
            if !t.revoked && kind.as_ref().is_none_or(|k| *k == t.kind) {
                t.revoked = true;
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials<'static> {
        Credentials {
            username: "admin",
            fleet_accounts: 0,
            password: "pw",
            client_id: "cid",
            client_secret: "sec",
            app_user: "app",
            user_active: true,
            user_locked_out: false,
            password_grant_allowed: true,
            access_lifespan: 1800,
            refresh_lifespan: 8_640_000,
        }
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn password_then_refresh_grant_and_expiry() {
        let mut store = TokenStore::new(7);
        let c = creds();
        let f = form(&[
            ("grant_type", "password"),
            ("client_id", "cid"),
            ("client_secret", "sec"),
            ("username", "admin"),
            ("password", "pw"),
        ]);
        let GrantOutcome::Issued(body) = store.grant(&c, &f, None, 1000) else {
            panic!("password grant denied")
        };
        assert_eq!(body["expires_in"], 1799);
        let access = body["access_token"].as_str().unwrap().to_string();
        let refresh = body["refresh_token"].as_str().unwrap().to_string();
        assert_eq!(store.access_user(&access, 1000 + 1799), Some("admin"));
        assert_eq!(store.access_user(&access, 1000 + 1800), None);

        let r = form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]);
        let basic = Some(("cid".to_string(), "sec".to_string()));
        let GrantOutcome::Issued(again) = store.grant(&c, &r, basic, 5000) else {
            panic!("refresh grant denied")
        };
        assert_ne!(again["access_token"], body["access_token"]);

        store.revoke(Some(TokenKind::Refresh));
        let basic = Some(("cid".to_string(), "sec".to_string()));
        assert_eq!(store.grant(&c, &r, basic, 5001), GrantOutcome::Denied);
    }

    #[test]
    fn every_bad_input_is_the_same_denial() {
        let mut store = TokenStore::new(7);
        let base = [
            ("grant_type", "password"),
            ("client_id", "cid"),
            ("client_secret", "sec"),
            ("username", "admin"),
            ("password", "pw"),
        ];
        for (i, bad) in ["authorization_code", "nope", "bad", "other", "wrong"]
            .iter()
            .enumerate()
        {
            let mut pairs = base;
            pairs[i].1 = bad;
            assert_eq!(
                store.grant(&creds(), &form(&pairs), None, 0),
                GrantOutcome::Denied
            );
        }
        let mut locked = creds();
        locked.user_locked_out = true;
        assert_eq!(
            store.grant(&locked, &form(&base), None, 0),
            GrantOutcome::Denied
        );
    }
}
