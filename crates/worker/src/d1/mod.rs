//! The control plane's D1 database: one module per table group. D1 binds
//! integers as i32 and `undefined` is not NULL, so values go in through the
//! helpers here (strings, numbers as f64, explicit NULL), and rows come out
//! as typed structs: integers as `i64`, flags as `bool`, decoded once.

pub mod alerts;
pub mod audit;
pub mod connections;
pub mod credentials;
pub mod sinks;

use wasm_bindgen::JsValue;

pub(crate) fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

pub(crate) fn opt(v: Option<&str>) -> JsValue {
    v.map_or(JsValue::NULL, JsValue::from_str)
}

/// An integer bound as a JavaScript number: exact to 2^53, past D1's i32.
pub(crate) fn n(v: i64) -> JsValue {
    JsValue::from_f64(v as f64)
}

pub(crate) fn opt_n(v: Option<i64>) -> JsValue {
    v.map_or(JsValue::NULL, n)
}

/// SQLite has no boolean: flags are stored as 0 and 1.
pub(crate) fn flag(v: bool) -> JsValue {
    n(i64::from(v))
}

/// A stored count as the API shows it: never below zero.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A stored count held in 32 bits: never below zero, at most `u32::MAX`.
pub(crate) fn count32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}
