//! Forwarding to the team's own monitoring, with no I/O: sinks as data and
//! their URLs checked, records formatted (contract, OCSF, ECS), each
//! receiver's wire format (Standard Webhooks, Splunk HEC, Elastic `_bulk`,
//! Sentinel's Logs Ingestion API), what an answer means, and when to try
//! again. The worker's connection object moves the bytes.
//!
//! `kinds` (the names), `settings` (sinks as the API takes them), `formats`
//! (records for a receiver), `delivery` (its requests), `verdicts` (what its
//! answers mean), and one state machine each for a batch's sending, a sink's
//! step and a range replay.

mod delivery;
mod formats;
mod kinds;
pub mod replay;
pub mod sending;
mod settings;
pub mod step;
mod verdicts;

pub use delivery::*;
pub use formats::*;
pub use kinds::*;
pub use settings::*;
pub use verdicts::*;

#[cfg(test)]
mod tests;
