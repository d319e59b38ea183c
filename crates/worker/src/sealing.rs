//! Sealing a connection's secrets for D1: one place for the context a sealed
//! value is bound to (`<connection id>/<kind>`) and the fresh nonce.

use snc_core::seal::{KeyRing, SealingKey};
use snc_core::secret::{Secret, SecretKind, Stored};
use worker::{console_log, Result};

use crate::d1::connections::{SealedSecret, SecretRow, Store};
use crate::random_bytes;

/// Seals a stored value again under the current key, if it is still the
/// value read (a concurrent reconnect's newer one stays). `true` when written.
pub async fn reseal(
    store: &Store,
    ring: &KeyRing,
    connection_id: &str,
    row: &SecretRow,
) -> Result<bool> {
    let Ok(secret) = ring.open(&row.sealed, &context(connection_id, row.kind)) else {
        return Ok(false);
    };
    let expires_at = row
        .expires_at
        .as_deref()
        .and_then(snc_core::clock::parse_rfc3339);
    let fresh = seal_as(ring.current(), connection_id, row.kind, &secret, expires_at)?;
    store.reseal(connection_id, &row.sealed, &fresh).await
}

/// The cron's pass over values sealed under rotated-out keys, a bounded
/// number per run; returns how many were sealed again.
pub async fn reseal_stale(store: &Store, ring: &KeyRing, limit: u32) -> Result<usize> {
    let mut done = 0;
    for (connection_id, row) in store.stale_secrets(ring.current().id(), limit).await? {
        match reseal(store, ring, &connection_id, &row).await {
            Ok(true) => done += 1,
            Ok(false) => console_log!(
                "rotation: a {} of {connection_id} opens under no configured key",
                row.kind.as_str()
            ),
            Err(e) => console_log!("rotation: {connection_id}: {e}"),
        }
    }
    Ok(done)
}

/// What a sealed value is bound to: another row or purpose cannot open it.
pub fn context(connection_id: &str, kind: SecretKind) -> String {
    format!("{connection_id}/{}", kind.as_str())
}

/// Seals a connection's secret as the kind its type says.
pub fn seal<K: Stored>(
    key: &SealingKey,
    connection_id: &str,
    secret: &Secret<K>,
    expires_at: Option<i64>,
) -> Result<SealedSecret> {
    seal_as(key, connection_id, K::KIND, secret, expires_at)
}

/// Seals a value opened from a row of `kind` again (a key rotation).
fn seal_as<K>(
    key: &SealingKey,
    connection_id: &str,
    kind: SecretKind,
    secret: &Secret<K>,
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
