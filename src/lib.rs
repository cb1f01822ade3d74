//! ferroftpd: a frugal, fast FTP server.
//!
//! Data flows one way: socket → [`proto`] (parse) → [`session`] (decide) →
//! [`auth`] / [`perm`] / [`vfs`] (answer) → [`data`] (move bytes) → [`proto::Reply`] back.
//! Modules lower in that list never depend on modules above them.

pub mod admin;
pub mod auth;
pub mod config;
pub mod data;
pub mod perm;
pub mod pg;
pub mod proto;
pub mod server;
pub mod session;
pub mod tls;
pub mod vfs;
