//! Authentication: an ordered chain of modules, each answering a login with
//! [`AuthOutcome::Accepted`], [`AuthOutcome::Rejected`] or
//! [`AuthOutcome::NotMine`]. The first module that does not say `NotMine`
//! decides.

pub mod anonymous;
pub mod chain;
pub mod pam;
pub mod password;
pub mod userdb;
pub mod userdb_pg;

pub use chain::{build_chain, AuthChain, LoginResult};

use std::net::IpAddr;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::vfs::MountSpec;

/// A logged-in identity and everything that shapes its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub groups: Vec<String>,
    /// True for the anonymous module's accounts.
    pub anonymous: bool,
    /// Real directory shown as `/`.
    pub root: PathBuf,
    pub mounts: Vec<MountSpec>,
    /// Virtual directory the session starts in.
    pub initial_dir: String,
    /// No modification anywhere, except below `upload_dirs`.
    pub read_only: bool,
    /// Virtual directories where a read-only account may still upload new
    /// files (an anonymous drop box). Only used when `read_only` is set.
    pub upload_dirs: Vec<String>,
    /// Simultaneous sessions allowed for this account (`None`: server default).
    pub max_sessions: Option<u32>,
    /// Name of the module that accepted the login, for logs.
    pub module: &'static str,
    /// The account's own permission rules (from the user database), which
    /// apply to it alone; compiled at login.
    pub rules: Vec<crate::perm::rules::Rule>,
    /// Bandwidth, address and storage limits of this account.
    pub shaping: AccountLimits,
}

/// An account's own bandwidth, address and storage limits; all off by
/// default (the server-wide settings then apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountLimits {
    /// Downloads of all its sessions together (`None`: group or server default).
    pub download_rate: Option<crate::config::Rate>,
    /// Uploads of all its sessions together.
    pub upload_rate: Option<crate::config::Rate>,
    /// Addresses the account may log in from (empty: any the server admits).
    pub allow_from: Vec<crate::config::Cidr>,
    /// Most bytes of files under the root (`None`: no limit).
    pub quota_bytes: Option<u64>,
    /// Most files under the root (`None`: no limit).
    pub quota_files: Option<u64>,
}

/// A login attempt.
#[derive(Debug, Clone)]
pub struct LoginRequest<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub peer: IpAddr,
}

/// A module's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Accepted(std::sync::Arc<Account>),
    /// The module knows the user and the password is wrong (or the account is
    /// disabled): the chain stops here.
    Rejected,
    /// Not this module's user: ask the next one.
    NotMine,
}

/// One authentication module.
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The module's name as written in `auth.chain`.
    fn name(&self) -> &'static str;

    async fn authenticate(&self, request: &LoginRequest<'_>) -> AuthOutcome;
}
