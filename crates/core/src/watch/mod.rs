//! Watching an instance: the detection rules and their alerts, the
//! posture checks, and the inventory of accounts, roles and groups.

pub mod baseline;
pub mod detect;
pub mod hosting;
pub mod inventory;
pub mod posture;
pub mod travel;
