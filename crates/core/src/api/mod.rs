//! The connector's own API: routes as data, callers and their scopes,
//! Access assertions, and the shapes it answers (connections, settings,
//! health).

pub mod access;
pub mod access_jwt;
pub mod connection;
pub mod health;
pub mod page;
pub mod routes;
pub mod settings;
