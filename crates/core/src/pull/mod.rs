//! Pulling security events: a run as a state machine, its cursors, the
//! events' normalization, the archive's page layout, and the schedule of a
//! connection's alarm.

pub mod archive;
pub mod cursor;
pub mod events;
pub mod index;
pub mod own_calls;
pub mod run;
pub mod schedule;
