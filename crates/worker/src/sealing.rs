//! Sealing a connection's secrets for D1: one place for the context a sealed
//! value is bound to (`<connection id>/<kind>`) and the fresh nonce.

use snc_core::seal::SealingKey;
use snc_core::secret::Secret;
use worker::Result;

use crate::random_bytes;
use crate::store::SealedSecret;

/// What a sealed value is bound to: another row or purpose cannot open it.
pub fn context(connection_id: &str, kind: &str) -> String {
    format!("{connection_id}/{kind}")
}

pub fn seal(
    key: &SealingKey,
    connection_id: &str,
    kind: &'static str,
    secret: &Secret,
    expires_at: Option<i64>,
) -> Result<SealedSecret> {
    let sealed = key
        .seal(secret, &context(connection_id, kind), random_bytes::<12>()?)
        .map_err(|_| worker::Error::RustError("sealing failed".into()))?;
    Ok(SealedSecret {
        kind,
        key_id: key.id().to_string(),
        sealed,
        expires_at,
    })
}
