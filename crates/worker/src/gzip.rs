//! Gzip for the archive, in the worker's own wasm (flate2's pure-Rust
//! backend). The runtime's CompressionStream was tried first: under
//! `wrangler dev` each member's stream held sockets open until collected,
//! and three connections backfilling at once ran workerd out of file
//! descriptors (1,800 open after 1.5 s of one backfill), for no gain in
//! time per page. Level 3: about 90 bytes an event, at a third of level 6's
//! CPU.

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use worker::Result;

pub fn compress(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 6), Compression::new(3));
    gz.write_all(data)
        .and_then(|()| gz.finish())
        .map_err(|e| worker::Error::RustError(format!("gzip failed: {e}")))
}

/// One gzip member or several in a row (a whole archive object).
pub fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 6);
    MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| worker::Error::RustError(format!("gunzip failed: {e}")))?;
    Ok(out)
}
