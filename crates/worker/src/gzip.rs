//! Gzip through the runtime's own CompressionStream and DecompressionStream:
//! native code in workerd, several times faster than a compressor compiled
//! to wasm, and no compressor in the worker's bundle.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::Result;

#[wasm_bindgen(inline_js = r#"
async function pipe(bytes, stream) {
  const out = new Blob([bytes]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}
export function gzip(bytes) { return pipe(bytes, new CompressionStream("gzip")); }
export function gunzip(bytes) { return pipe(bytes, new DecompressionStream("gzip")); }
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn gzip(bytes: &[u8]) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn gunzip(bytes: &[u8]) -> std::result::Result<JsValue, JsValue>;
}

fn bytes(v: std::result::Result<JsValue, JsValue>, what: &str) -> Result<Vec<u8>> {
    v.map(|v| Uint8Array::new(&v).to_vec())
        .map_err(|_| worker::Error::RustError(format!("{what} failed")))
}

pub async fn compress(data: &[u8]) -> Result<Vec<u8>> {
    bytes(gzip(data).await, "gzip")
}

/// One gzip member or several in a row (a whole archive object).
pub async fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    bytes(gunzip(data).await, "gunzip")
}
