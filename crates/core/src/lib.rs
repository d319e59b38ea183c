//! The connector's logic, free of I/O: it builds requests, parses responses and
//! decides the next step. Hosts (the worker, the browser module) move the bytes
//! and pass the current time in, so everything here is deterministic and tested
//! natively.
//!
//! Grouped by concern: `servicenow` (the instance's APIs), `connect` (the
//! connect check and wizard), `pull` (runs, cursors, events, the archive),
//! `watch` (detections, posture, inventory), `forward` (the sinks), `api`
//! (this connector's own API); and the shared parts at the root: `http`,
//! `problem`, `secret`, `seal`, `clock`, `stored`.

pub mod api;
pub mod clock;
pub mod connect;
pub mod forward;
pub mod http;
pub mod problem;
pub mod pull;
pub mod seal;
pub mod secret;
pub mod servicenow;
pub mod stored;
pub mod watch;

/// The product version, shown by `GET /api/v1/health` and in the browser.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
