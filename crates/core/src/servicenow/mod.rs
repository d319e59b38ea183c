//! Speaking to ServiceNow: instance URLs and the host policy, releases,
//! OAuth grants, Table and Batch API requests and answers, and what a failed
//! answer means.

pub mod answers;
pub mod batch;
pub mod instance_url;
pub mod oauth;
pub mod release;
pub mod table;
