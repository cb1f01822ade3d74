//! A logged-in session's state and the context its handlers run in.

use std::net::SocketAddr;
use std::sync::Arc;

use super::errors::{path_reply, permission_denied};
use super::{Outcome, Params};
use crate::auth::Account;
use crate::perm::{Decision, Operation, Target};
use crate::proto::{Command, Reply};
use crate::server::limits::UserGuard;
use crate::server::{Live, Shared};
use crate::vfs::{self, Resolved, Vfs};

/// State that exists only after a successful login.
#[derive(Debug)]
pub(super) struct LoggedIn {
    pub account: Arc<Account>,
    /// Shared with other sessions of the same tree.
    pub vfs: Arc<Vfs>,
    /// Current virtual directory, normalised.
    pub cwd: String,
    /// Normalised virtual path named by RNFR.
    pub rename_from: Option<String>,
    pub _guard: UserGuard,
    /// Storage used, shared with the user's other sessions (only for an
    /// account with a quota).
    pub quota: Option<Arc<crate::vfs::quota::Usage>>,
}

/// What a handler of a logged-in command can reach.
pub(super) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    /// The configuration and rules in force for this command.
    pub live: &'a Live,
    pub user: &'a mut LoggedIn,
    pub params: &'a mut Params,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// TLS for data connections (PROT P) and the policy on clear ones.
    pub data_tls: super::security::DataTls,
    /// The session's live-registry entry (the directory shown to admins).
    pub registration: Option<&'a crate::server::registry::Registration>,
}

impl Ctx<'_> {
    pub async fn dispatch(&mut self, cmd: Command, rename_from: Option<String>) -> Outcome {
        let result: Result<Outcome, Reply> = match cmd {
            Command::Pwd => Ok(self.pwd().into()),
            Command::Cwd(arg) => self.cwd(&arg).await.map(Outcome::from),
            Command::Cdup => self.cwd("..").await.map(Outcome::from),
            Command::Mkd(arg) => self.mkd(&arg).await.map(Outcome::from),
            Command::Rmd(arg) => self.rmd(&arg).await.map(Outcome::from),
            Command::Dele(arg) => self.dele(&arg).await.map(Outcome::from),
            Command::Rnfr(arg) => self.rnfr(&arg).await.map(Outcome::from),
            Command::Rnto(arg) => self.rnto(&arg, rename_from).await.map(Outcome::from),
            Command::Size(arg) => self.size(&arg).await.map(Outcome::from),
            Command::Mdtm(arg) => self.mdtm(&arg).await.map(Outcome::from),
            Command::Mfmt { time, path } => self.mfmt(time, &path).await.map(Outcome::from),
            Command::Mlst(arg) => self.mlst(arg.as_deref()).await.map(Outcome::from),
            Command::Stat(Some(arg)) => self.stat_path(&arg).await.map(Outcome::from),
            Command::Site(arg) => self.site(&arg).await.map(Outcome::from),
            Command::Allo(size) => Ok(self.allo(size).into()),
            Command::Rest(offset) => Ok(self.rest(offset).into()),
            Command::Pasv => Ok(self.pasv().into()),
            Command::Epsv(arg) => Ok(self.epsv(arg).into()),
            Command::Port(addr) => Ok(self.port(addr, false).into()),
            Command::Eprt(addr) => Ok(self.port(addr, true).into()),
            Command::Retr(arg) => self.retr(&arg).await,
            Command::Stor(arg) => self.store(&arg, super::transfer::StoreKind::Stor).await,
            Command::Appe(arg) => self.store(&arg, super::transfer::StoreKind::Appe).await,
            Command::Stou(arg) => self.stou(arg.as_deref()).await,
            Command::List(arg) => self.listing(arg.as_deref(), super::transfer::ListFormat::List).await,
            Command::Nlst(arg) => self.listing(arg.as_deref(), super::transfer::ListFormat::Nlst).await,
            Command::Mlsd(arg) => self.listing(arg.as_deref(), super::transfer::ListFormat::Mlsd).await,
            other => {
                tracing::warn!(command = ?other, "command not dispatched");
                Ok(Reply::new(502, "Command not implemented.").into())
            }
        };
        result.unwrap_or_else(Outcome::Reply)
    }

    /// Normalises a client path against the current directory.
    pub fn vpath(&self, arg: &str) -> Result<String, Reply> {
        vfs::normalize(&self.user.cwd, arg).map_err(|e| {
            tracing::info!(error = %e, "bad path");
            path_reply(&e)
        })
    }

    /// Resolves a virtual path and asks the permission module; a refusal is
    /// logged with its reason and answered 550.
    pub fn authorize<'v>(&'v self, op: Operation, vpath: &'v str) -> Result<Resolved<'v>, Reply> {
        let resolved = self.user.vfs.resolve(vpath).ok_or_else(permission_denied)?;
        match self.check(op, vpath, &resolved) {
            Decision::Allow => Ok(resolved),
            Decision::Deny(reason) => {
                tracing::info!(user = %self.user.account.name, op = %op, path = vpath, reason, "permission denied");
                Err(permission_denied())
            }
        }
    }

    /// The permission decision for an already resolved path.
    pub fn check(&self, op: Operation, vpath: &str, resolved: &Resolved<'_>) -> Decision {
        let real = resolved.real_location();
        let target =
            Target { virtual_path: vpath, real_path: &real, read_only_mount: resolved.mount.read_only };
        self.live.perms.check(&self.user.account, op, &target)
    }
}
