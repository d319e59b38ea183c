//! Connecting an instance: the connect request and its fields, the
//! preflight check, the browser's wizard, and the warnings a connection
//! carries.

pub mod input;
pub mod preflight;
pub mod warning;
pub mod wizard;
