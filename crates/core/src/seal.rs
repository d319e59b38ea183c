//! Secrets at rest: AES-256-GCM under `ENCRYPTION_KEY`, a fresh 96-bit nonce
//! per value (the host supplies it from its CSPRNG, so this stays
//! deterministic), and the key id stored beside the ciphertext so keys can be
//! rotated (`KeyRing`). The associated data binds a value to its connection and purpose:
//! a sealed refresh token copied into another row does not open there.
//!
//! Stored form: `v1.<key id>.<nonce b64>.<ciphertext b64>`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use crate::secret::Secret;

pub struct SealingKey {
    cipher: Aes256Gcm,
    /// Short, public name of the key: 8 characters of a GCM tag computed
    /// under it, so rotation can tell which key sealed a value.
    id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// `ENCRYPTION_KEY` is missing or is not 32 bytes of base64.
    BadKey,
    /// The stored value is not in our format.
    Malformed,
    /// Sealed under another key than the one configured.
    WrongKey,
    /// Tampered with, or bound to another connection or purpose.
    Unauthentic,
}

impl SealingKey {
    /// From `ENCRYPTION_KEY`: 32 bytes, base64 (standard or URL-safe).
    pub fn from_base64(encoded: &str) -> Result<Self, SealError> {
        let t = encoded.trim();
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
            .map_err(|_| SealError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SealError::BadKey)?;
        // A fingerprint that needs no extra hash crate: the tag of an empty
        // message under a fixed nonce. Reveals nothing usable about the key.
        let tag = cipher
            .encrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload {
                    msg: b"",
                    aad: b"snc key id",
                },
            )
            .map_err(|_| SealError::BadKey)?;
        let id = URL_SAFE_NO_PAD.encode(&tag)[..8].to_string();
        Ok(SealingKey { cipher, id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `secret` for `context` (e.g. `"<connection id>/refresh_token"`).
    pub fn seal<K>(
        &self,
        secret: &Secret<K>,
        context: &str,
        nonce: [u8; 12],
    ) -> Result<String, SealError> {
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Malformed)?;
        Ok(format!(
            "v1.{}.{}.{}",
            self.id,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ct)
        ))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, SealError> {
        let mut parts = sealed.split('.');
        let (Some("v1"), Some(kid), Some(nonce), Some(ct), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SealError::Malformed);
        };
        if kid != self.id {
            return Err(SealError::WrongKey);
        }
        let nonce = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| SealError::Malformed)?;
        let ct = URL_SAFE_NO_PAD
            .decode(ct)
            .map_err(|_| SealError::Malformed)?;
        if nonce.len() != 12 {
            return Err(SealError::Malformed);
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Unauthentic)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Unauthentic)
    }
}

/// The current key and the ones it replaced (`ENCRYPTION_KEYS_PREVIOUS`):
/// a value opens under the key its id names; what an old key sealed is
/// re-sealed under the current one when next written.
pub struct KeyRing {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl KeyRing {
    pub fn new(current: SealingKey, previous: Vec<SealingKey>) -> KeyRing {
        KeyRing { current, previous }
    }

    /// From `ENCRYPTION_KEY` and the comma-separated older keys. A previous
    /// key that does not read is an error: a typo there would strand every
    /// value it sealed.
    pub fn from_config(current: &str, previous: Option<&str>) -> Result<KeyRing, SealError> {
        let current = SealingKey::from_base64(current)?;
        let previous = previous
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(SealingKey::from_base64)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyRing { current, previous })
    }

    pub fn current(&self) -> &SealingKey {
        &self.current
    }

    /// Opens with the key the value names.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, SealError> {
        let kid = key_id_of(sealed).ok_or(SealError::Malformed)?;
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == kid)
            .ok_or(SealError::WrongKey)?
            .open(sealed, context)
    }

    /// Sealed under another key than the current one.
    pub fn is_stale(&self, sealed: &str) -> bool {
        key_id_of(sealed) != Some(self.current.id())
    }
}

/// The key id of a stored value, to find values sealed under an old key.
pub fn key_id_of(sealed: &str) -> Option<&str> {
    let mut parts = sealed.split('.');
    (parts.next() == Some("v1")).then(|| parts.next()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::kind;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn seal_open_round_trip_binds_context_and_hides_the_plaintext() {
        let k = SealingKey::from_base64(KEY).unwrap();
        let s = Secret::<kind::Any>::new("refresh-token-value");
        let sealed = k.seal(&s, "c1/refresh_token", [7; 12]).unwrap();
        assert!(!sealed.contains("refresh-token-value"));
        assert_eq!(key_id_of(&sealed), Some(k.id()));
        assert_eq!(
            k.open(&sealed, "c1/refresh_token").unwrap().expose(),
            "refresh-token-value"
        );
        assert_eq!(
            k.open(&sealed, "c2/refresh_token").unwrap_err(),
            SealError::Unauthentic
        );
        let other_nonce = k.seal(&s, "c1/refresh_token", [8; 12]).unwrap();
        assert_ne!(
            sealed, other_nonce,
            "a fresh nonce gives a fresh ciphertext"
        );
    }

    #[test]
    fn a_ring_opens_what_old_keys_sealed_and_says_what_to_reseal() {
        let old = STANDARD.encode([3u8; 32]);
        let older = STANDARD.encode([4u8; 32]);
        let sealed_old = SealingKey::from_base64(&old)
            .unwrap()
            .seal(&Secret::<kind::Any>::new("a"), "c/k", [1; 12])
            .unwrap();
        let sealed_older = SealingKey::from_base64(&older)
            .unwrap()
            .seal(&Secret::<kind::Any>::new("b"), "c/k", [1; 12])
            .unwrap();
        let ring = KeyRing::from_config(KEY, Some(&format!(" {old} ,{older}"))).unwrap();
        assert_eq!(ring.open(&sealed_old, "c/k").unwrap().expose(), "a");
        assert_eq!(ring.open(&sealed_older, "c/k").unwrap().expose(), "b");
        assert!(ring.is_stale(&sealed_old));
        let fresh = ring
            .current()
            .seal(&Secret::<kind::Any>::new("a"), "c/k", [2; 12])
            .unwrap();
        assert!(!ring.is_stale(&fresh));
        assert_eq!(ring.open(&fresh, "c/k").unwrap().expose(), "a");
        // Without the old key the value is refused by name, not by guess.
        let alone = KeyRing::from_config(KEY, None).unwrap();
        assert_eq!(
            alone.open(&sealed_old, "c/k").unwrap_err(),
            SealError::WrongKey
        );
        assert_eq!(
            KeyRing::from_config(KEY, Some("short")).err(),
            Some(SealError::BadKey)
        );
    }

    #[test]
    fn tampering_wrong_keys_and_bad_keys_are_refused() {
        let k = SealingKey::from_base64(KEY).unwrap();
        let sealed = k
            .seal(&Secret::<kind::Any>::new("x"), "ctx", [1; 12])
            .unwrap();
        let mut tampered = sealed.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(k.open(&tampered, "ctx").is_err());
        let other = SealingKey::from_base64(&STANDARD.encode([9u8; 32])).unwrap();
        assert_ne!(other.id(), k.id());
        assert_eq!(other.open(&sealed, "ctx").unwrap_err(), SealError::WrongKey);
        assert_eq!(
            SealingKey::from_base64("c2hvcnQ=").err(),
            Some(SealError::BadKey)
        );
        assert_eq!(
            SealingKey::from_base64("not base64!").err(),
            Some(SealError::BadKey)
        );
        assert_eq!(
            k.open("plaintext", "ctx").unwrap_err(),
            SealError::Malformed
        );
    }
}
