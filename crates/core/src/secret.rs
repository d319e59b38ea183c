//! Secrets that cannot leak by accident: `Debug` and `Display` print
//! `[redacted]`, serialization is not implemented, and reading the value takes
//! an explicit `expose()`.

use std::marker::PhantomData;

use serde::{Deserialize, Deserializer};

/// What a secret is, as a type: a connection's access token cannot be sent
/// where its password or client secret goes.
pub mod kind {
    /// Any other secret: a sink's credential, a minted key, a value just
    /// opened from storage before its row's kind is applied.
    pub enum Any {}
    pub enum AccessToken {}
    pub enum RefreshToken {}
    pub enum ClientSecret {}
    pub enum Password {}
}

pub struct Secret<K = kind::Any> {
    value: String,
    kind: PhantomData<fn() -> K>,
}

/// A connection's secrets are kinds apart: a token cannot go where a
/// password goes.
///
/// ```compile_fail,E0308
/// use snc_core::secret::{AccessToken, Password};
/// fn basic_auth(_password: &Password) {}
/// basic_auth(&AccessToken::new("token"));
/// ```
pub type AccessToken = Secret<kind::AccessToken>;
pub type RefreshToken = Secret<kind::RefreshToken>;
pub type ClientSecret = Secret<kind::ClientSecret>;
pub type Password = Secret<kind::Password>;

impl<K> Secret<K> {
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            value: value.into(),
            kind: PhantomData,
        }
    }

    /// The plaintext, for the one place that must send or seal it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl Secret<kind::Any> {
    /// A value opened from storage, as the connection kind its row names.
    pub fn into_kind<L: Stored>(self) -> Secret<L> {
        Secret::new(self.value)
    }
}

impl<K> Clone for Secret<K> {
    fn clone(&self) -> Self {
        Secret::new(self.value.clone())
    }
}

impl<K> PartialEq for Secret<K> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<K> Eq for Secret<K> {}

impl<K> std::fmt::Debug for Secret<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<K> std::fmt::Display for Secret<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de, K> Deserialize<'de> for Secret<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
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

/// The kinds a connection keeps sealed: a value's type says how it is
/// stored, so it cannot be sealed as another kind.
pub trait Stored {
    const KIND: SecretKind;
}

impl Stored for kind::AccessToken {
    const KIND: SecretKind = SecretKind::AccessToken;
}

impl Stored for kind::RefreshToken {
    const KIND: SecretKind = SecretKind::RefreshToken;
}

impl Stored for kind::ClientSecret {
    const KIND: SecretKind = SecretKind::ClientSecret;
}

impl Stored for kind::Password {
    const KIND: SecretKind = SecretKind::Password;
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
