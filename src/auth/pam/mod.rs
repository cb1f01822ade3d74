//! The `pam` module: passwords and account state checked by the system's
//! PAM stack (`/etc/pam.d/<service>`), sessions shaped by `[pam]`.
//!
//! PAM answers only "is the password right, is the account usable"; the
//! user's root (a template such as `/srv/ftp/%u`, or the home directory from
//! the system's user database), initial directory, mounts, groups and
//! session limit come from the configuration, and the ACL rules apply by
//! name and group as for virtual users.
//!
//! PAM calls block (modules read files, ask daemons, sleep): each runs on
//! the blocking pool, at most `pam.max_concurrent` at once, so a login storm
//! cannot take every thread. The server keeps running as the user that
//! started it: what an unprivileged process can verify depends on the
//! modules (README, "PAM").

#[cfg(unix)]
mod ffi;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{Account, AuthOutcome, Authenticator, LoginRequest};
use crate::config::PamConfig;
use crate::vfs::MountSpec;

/// The module's name in `auth.chain`.
pub const MODULE_NAME: &str = "pam";

/// Where a PAM user's root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RootSource {
    /// A path with `%u` replaced by the user name.
    Template(String),
    /// The home directory in the system's user database.
    Home,
}

#[derive(Debug)]
pub struct Pam {
    service: String,
    root: RootSource,
    initial_dir: String,
    mounts: Vec<MountSpec>,
    groups: Vec<String>,
    unix_groups: bool,
    read_only: bool,
    max_sessions: Option<u32>,
    slots: Arc<Semaphore>,
}

impl Pam {
    /// Builds the module from a validated `[pam]` section; fails when this
    /// platform has no PAM or libpam cannot be loaded.
    pub fn from_config(config: &PamConfig) -> Result<Pam, String> {
        available()?;
        let root = match (&config.root, config.home) {
            (Some(template), false) => RootSource::Template(template.clone()),
            (None, true) => RootSource::Home,
            _ => return Err("pam: set exactly one of `root` and `home`".into()),
        };
        let mounts = config
            .mounts
            .iter()
            .map(|m| MountSpec::parse(m).map_err(|e| format!("pam.mounts `{m}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pam {
            service: config.service.clone(),
            root,
            initial_dir: config.initial_dir.clone(),
            mounts,
            groups: config.groups.clone(),
            unix_groups: config.unix_groups,
            read_only: config.read_only,
            max_sessions: config.max_sessions,
            slots: Arc::new(Semaphore::new(config.max_concurrent.max(1) as usize)),
        })
    }

    /// The account of a user PAM accepted; `None` (logged) when its root
    /// cannot be determined.
    fn account(&self, user: &str) -> Option<Account> {
        let (root, unix_groups) = match &self.root {
            RootSource::Template(t) => {
                (PathBuf::from(t.replace("%u", user)), self.unix_groups.then(|| system::groups(user)))
            }
            RootSource::Home => {
                let Some(home) = system::home(user) else {
                    tracing::error!(
                        user,
                        "pam: accepted, but the system's user database has no home for this user"
                    );
                    return None;
                };
                (home, self.unix_groups.then(|| system::groups(user)))
            }
        };
        let mut groups = self.groups.clone();
        for g in unix_groups.into_iter().flatten() {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        Some(Account {
            name: user.to_string(),
            groups,
            anonymous: false,
            root,
            mounts: self.mounts.clone(),
            initial_dir: self.initial_dir.clone(),
            read_only: self.read_only,
            upload_dirs: Vec::new(),
            max_sessions: self.max_sessions,
            module: MODULE_NAME,
            rules: Vec::new(),
            shaping: Default::default(),
        })
    }
}

/// Whether this platform can use the module (a clear error if not).
pub fn available() -> Result<(), String> {
    #[cfg(unix)]
    {
        ffi::available().map_err(|e| format!("pam: {e}"))
    }
    #[cfg(not(unix))]
    {
        Err("pam: PAM is not available on this platform; remove \"pam\" from auth.chain".into())
    }
}

/// A name PAM may be asked about and that is safe inside a root template:
/// the virtual users' rules (no `/`, spaces or control characters, 1–64
/// bytes), and neither `.` nor `..`.
fn acceptable_name(user: &str) -> bool {
    super::userdb::validate_name(user).is_ok() && user != "." && user != ".."
}

#[async_trait]
impl Authenticator for Pam {
    fn name(&self) -> &'static str {
        MODULE_NAME
    }

    async fn authenticate(&self, request: &LoginRequest<'_>) -> AuthOutcome {
        if !acceptable_name(request.user) {
            return AuthOutcome::NotMine;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return AuthOutcome::Rejected;
        };
        let verdict = check(&self.service, request).await;
        match verdict {
            Verdict::Accepted => match self.account(request.user) {
                Some(account) => AuthOutcome::Accepted(Arc::new(account)),
                None => AuthOutcome::Rejected,
            },
            Verdict::UnknownUser => AuthOutcome::NotMine,
            Verdict::Refused(why) => {
                tracing::info!(user = request.user, service = %self.service, reason = %why, "pam: refused");
                AuthOutcome::Rejected
            }
            Verdict::AccountUnusable(why) => {
                tracing::warn!(user = request.user, service = %self.service, reason = %why, "pam: account not usable");
                AuthOutcome::Rejected
            }
            Verdict::Error(why) => {
                tracing::error!(user = request.user, service = %self.service, error = %why, "pam: stack failed");
                AuthOutcome::Rejected
            }
        }
    }
}

#[cfg(unix)]
use ffi::Verdict;

#[cfg(not(unix))]
#[derive(Debug)]
enum Verdict {
    Accepted,
    UnknownUser,
    Refused(String),
    AccountUnusable(String),
    Error(String),
}

/// One PAM conversation on the blocking pool.
async fn check(service: &str, request: &LoginRequest<'_>) -> Verdict {
    #[cfg(unix)]
    {
        let (service, user, password, rhost) = (
            service.to_string(),
            request.user.to_string(),
            request.password.to_string(),
            request.peer.to_string(),
        );
        match tokio::task::spawn_blocking(move || ffi::check(&service, &user, &password, &rhost)).await {
            Ok(v) => v,
            Err(e) => Verdict::Error(format!("PAM task failed: {e}")),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (service, request);
        Verdict::Error("PAM is not available on this platform".into())
    }
}

/// The system's user database (home directories, groups).
mod system {
    use std::path::PathBuf;

    #[cfg(unix)]
    pub fn home(user: &str) -> Option<PathBuf> {
        nix::unistd::User::from_name(user).ok().flatten().map(|u| u.dir)
    }

    /// The user's Unix groups by name (the primary one first).
    #[cfg(unix)]
    pub fn groups(user: &str) -> Vec<String> {
        use nix::unistd::{Group, User};
        let Some(u) = User::from_name(user).ok().flatten() else { return Vec::new() };
        #[cfg(not(any(target_vendor = "apple", target_os = "openbsd")))]
        let gids = std::ffi::CString::new(user)
            .ok()
            .and_then(|name| nix::unistd::getgrouplist(&name, u.gid).ok())
            .unwrap_or_else(|| vec![u.gid]);
        #[cfg(any(target_vendor = "apple", target_os = "openbsd"))]
        let gids = vec![u.gid];
        gids.into_iter().filter_map(|gid| Group::from_gid(gid).ok().flatten()).map(|g| g.name).collect()
    }

    #[cfg(not(unix))]
    pub fn home(_user: &str) -> Option<PathBuf> {
        None
    }

    #[cfg(not(unix))]
    pub fn groups(_user: &str) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unsafe_in_a_root_template_are_not_asked() {
        for bad in ["..", ".", "a/b", "", "a b", "x\n"] {
            assert!(!acceptable_name(bad), "{bad:?}");
        }
        assert!(acceptable_name("alice"));
        assert!(acceptable_name("a.b-c_d"));
    }

    #[test]
    fn template_root_and_groups() {
        let config = PamConfig {
            root: Some("/srv/ftp/%u".into()),
            groups: vec!["staff".into()],
            mounts: vec!["/pub=/srv/pub:ro".into()],
            ..PamConfig::default()
        };
        let Ok(pam) = Pam::from_config(&config) else {
            // No libpam on this machine: nothing more to check here.
            return;
        };
        let account = pam.account("alice").unwrap();
        assert_eq!(account.root, PathBuf::from("/srv/ftp/alice"));
        assert_eq!(account.groups, ["staff"]);
        assert_eq!(account.module, "pam");
        assert_eq!(account.mounts[0].virtual_path, "/pub");
        assert!(account.mounts[0].read_only);
    }

    #[test]
    fn root_and_home_are_exclusive() {
        let both = PamConfig { root: Some("/x/%u".into()), home: true, ..PamConfig::default() };
        let neither = PamConfig::default();
        for c in [both, neither] {
            if let Err(e) = Pam::from_config(&c) {
                assert!(e.contains("libpam") || e.contains("exactly one"), "{e}");
            } else {
                panic!("accepted {c:?}");
            }
        }
    }
}
