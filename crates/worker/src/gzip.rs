//! Gzip for the archive, in the worker's own wasm (flate2's pure-Rust
//! backend). Level 1: the compressor is the largest share of a page's CPU,
//! and level 1 takes about half of level 3's time. Over compact lines (see
//! `snc_core::pull::archive`) it stores 103-105 bytes an event; level 3 over whole
//! Events stored 80-86. The
//! runtime's CompressionStream has no level to choose (it compresses at
//! zlib's default 6), and zlib-rs built for wasm was no faster than this.

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use worker::Result;

/// Appends `data` as one gzip member to `out`.
pub fn compress_into(data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let mut gz = GzEncoder::new(out, Compression::new(1));
    gz.write_all(data)
        .and_then(|()| gz.try_finish())
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
