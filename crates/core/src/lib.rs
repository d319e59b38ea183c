//! The connector's logic, free of I/O: it builds requests, parses responses and
//! decides the next step. Hosts (the worker, the browser module) move the bytes
//! and pass the current time in, so everything here is deterministic and tested
//! natively.

pub mod access;
pub mod access_jwt;
pub mod api;
pub mod archive;
pub mod batch;
pub mod clock;
pub mod connection;
pub mod cursor;
pub mod detect;
pub mod events;
pub mod forward;
pub mod health;
pub mod http;
pub mod input;
pub mod instance_url;
pub mod inventory;
pub mod oauth;
pub mod posture;
pub mod preflight;
pub mod problem;
pub mod pull_run;
pub mod release;
pub mod schedule;
pub mod seal;
pub mod secret;
pub mod servicenow;
pub mod settings;
pub mod stored;
pub mod table;
pub mod warning;
pub mod wizard;

/// The product version, shown by `GET /api/v1/health` and in the browser.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
