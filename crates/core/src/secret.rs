//! Secrets that cannot leak by accident: `Debug` and `Display` print
//! `[redacted]`, serialization is not implemented, and reading the value takes
//! an explicit `expose()`.

use serde::{Deserialize, Deserializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The plaintext, for the one place that must send or seal it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// What a sealed value is, as stored in `connection_secrets.kind`; the kind
/// is also part of what the seal is bound to, so one kind cannot be opened
/// as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretKind {
    RefreshToken,
    AccessToken,
    ClientSecret,
    Password,
}

impl SecretKind {
    pub const ALL: [SecretKind; 4] = [
        SecretKind::RefreshToken,
        SecretKind::AccessToken,
        SecretKind::ClientSecret,
        SecretKind::Password,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::RefreshToken => "refresh_token",
            SecretKind::AccessToken => "access_token",
            SecretKind::ClientSecret => "client_secret",
            SecretKind::Password => "password",
        }
    }

    pub fn parse(kind: &str) -> Option<SecretKind> {
        SecretKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// A connection's secret as stored, opened: its kind, its value and, for an
/// access token, when it expires (Unix seconds).
#[derive(Clone, Debug)]
pub struct OpenedSecret {
    pub kind: SecretKind,
    pub secret: Secret,
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Secret,
        }
        let shown = format!(
            "{:?}",
            Holder {
                password: s.clone()
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(s.expose(), "hunter2");
    }
}
