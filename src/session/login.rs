//! USER, PASS, REIN.

use std::time::Duration;

use super::user::LoggedIn;
use super::{Outcome, Params, Session};
use crate::auth::chain::LoginResult;
use crate::auth::{Account, LoginRequest};
use crate::proto::Reply;
use crate::server::ban::FailureVerdict;
use crate::server::metrics::NO_MODULE;
use crate::vfs::{self, Vfs};

impl Session {
    pub(super) fn cmd_user(&mut self, name: String) -> Outcome {
        if self.user.is_some() {
            return Reply::new(530, "Can't change to another user.").into();
        }
        if let Some(refusal) = self.login_needs_tls(&name) {
            return refusal.into();
        }
        // The same reply whoever the user is: no account enumeration.
        self.pending_user = Some(name);
        Reply::new(331, "Please specify the password.").into()
    }

    pub(super) async fn cmd_pass(&mut self, password: String) -> Outcome {
        if self.user.is_some() {
            return Reply::new(230, "Already logged in.").into();
        }
        let Some(name) = self.pending_user.take() else {
            return Reply::new(503, "Login with USER first.").into();
        };
        let started = tokio::time::Instant::now();
        let request = LoginRequest { user: &name, password: &password, peer: self.peer.ip() };
        let result = self.shared.live().auth.authenticate(&request).await;
        let account = match result {
            LoginResult::Accepted(account) => account,
            LoginResult::Rejected { module } => {
                tracing::warn!(user = %name, module, "login failed: wrong password or disabled account");
                return self.login_failed(started, module).await;
            }
            LoginResult::Unknown => {
                tracing::warn!(user = %name, "login failed: unknown user");
                return self.login_failed(started, NO_MODULE).await;
            }
        };
        if !crate::server::access::account_admits(self.peer.ip(), &account.shaping.allow_from) {
            // The reply of a wrong password: the address rule is no secret
            // worth hiding from the owner, but it tells others the password
            // was right.
            tracing::warn!(user = %account.name, peer = %self.peer.ip(), "login refused: address not in the account's allow_from");
            return self.login_failed(started, account.module).await;
        }
        if self.account_needs_tls(&account) {
            tracing::warn!(user = %account.name, "login refused: TLS required (no AUTH TLS)");
            self.count_login(false, account.module);
            return Reply::new(530, "This account requires TLS: send AUTH TLS before USER.").into();
        }
        let limit = account.max_sessions.unwrap_or(self.shared.live().config.limits.max_sessions_per_user);
        let Some(guard) = self.shared.limits.login(&account.name, limit) else {
            tracing::warn!(user = %account.name, limit, "login refused: too many sessions for this user");
            self.count_login(false, account.module);
            return Outcome::Close(Reply::new(421, "Too many sessions for this user, try again later."));
        };
        // Boxed: the session's future stays as small as without a cluster.
        if limit != 0
            && self.shared.cluster.is_some()
            && !Box::pin(cluster_admits(&self.shared, &account.name, limit)).await
        {
            tracing::warn!(user = %account.name, limit, "login refused: too many sessions for this user on all nodes");
            self.count_login(false, account.module);
            drop(guard);
            return Outcome::Close(Reply::new(421, "Too many sessions for this user, try again later."));
        }
        let vfs = match build_vfs(&account).await {
            Ok(vfs) => vfs,
            Err(e) => {
                // Answered exactly as a wrong password (text, delay, count):
                // a client must not learn that the password was right.
                tracing::error!(user = %account.name, module = account.module, root = %account.root.display(), error = %e, "login failed: root directory unavailable");
                drop(guard);
                return self.login_failed(started, account.module).await;
            }
        };
        let quota = match quota_usage(&self.shared, &account, &vfs).await {
            Ok(q) => q,
            Err(e) => {
                // As for a missing root: no hint that the password was right.
                tracing::error!(user = %account.name, root = %account.root.display(), error = %e, "login failed: cannot count the quota usage");
                drop(guard);
                return self.login_failed(started, account.module).await;
            }
        };
        let cwd = initial_dir(&vfs, &account).await;
        tracing::info!(user = %account.name, module = account.module, cwd = %cwd, "login");
        let text = if account.anonymous { "Anonymous access granted." } else { "Login successful." };
        if let Some(r) = &self.registration {
            r.logged_in(account.clone(), &cwd);
        }
        self.count_login(true, account.module);
        self.user = Some(Box::new(LoggedIn { account, vfs, cwd, rename_from: None, _guard: guard, quota }));
        self.failures = 0;
        Reply::new(230, text).into()
    }

    /// Answers a failed login `failed_login_delay_ms` after PASS arrived,
    /// whichever module decided and however long it took (a PAM stack, a
    /// hash, or no check at all for an unknown user), so the reply's timing
    /// tells nothing about which user names exist.
    async fn login_failed(&mut self, started: tokio::time::Instant, module: &str) -> Outcome {
        self.failures += 1;
        self.count_login(false, module);
        let verdict = if self.shared.cluster.is_some() {
            // Boxed: the session's future stays as small as without a cluster.
            Box::pin(shared_failure(&self.shared, self.peer.ip())).await
        } else {
            self.shared.bans.failure(self.peer.ip(), &self.shared.live().config.ban)
        };
        if let (FailureVerdict::Banned(_), Some(m)) = (verdict, &self.shared.metrics) {
            m.banned();
        }
        let delay = Duration::from_millis(self.shared.live().config.limits.failed_login_delay_ms);
        tokio::time::sleep_until(started + delay).await;
        if let FailureVerdict::Banned(_) = verdict {
            return Outcome::Close(Reply::new(
                421,
                "Too many failed logins from your address, try again later.",
            ));
        }
        if self.failures >= self.shared.live().config.limits.max_login_failures {
            tracing::warn!(failures = self.failures, "too many failed logins, closing");
            return Outcome::Close(Reply::new(421, "Too many failed logins, closing connection."));
        }
        Reply::new(530, "Login incorrect.").into()
    }

    /// Counts a login attempt for the metrics; `module` decided it.
    fn count_login(&self, success: bool, module: &str) {
        if let Some(m) = &self.shared.metrics {
            m.login(success, module);
        }
    }

    pub(super) fn cmd_rein(&mut self) -> Outcome {
        if let Some(user) = self.user.take() {
            tracing::info!(user = %user.account.name, "logout (REIN)");
            if let Some(r) = &self.registration {
                r.logged_out();
            }
        }
        self.pending_user = None;
        self.params = Params::default();
        Reply::new(220, "Ready for a new user.").into()
    }
}

/// With `[cluster]`: whether the user's sessions on every node,
/// this new one included, stay within `limit`; the node's count is then
/// published at once. Without the database, the node's own count (already
/// checked) decides.
async fn cluster_admits(shared: &crate::server::Shared, user: &str, limit: u32) -> bool {
    let Some(cluster) = &shared.cluster else { return true };
    let here = shared.limits.user_sessions(user);
    match cluster.sessions_elsewhere(user).await {
        Ok(elsewhere) if here.saturating_add(elsewhere) > limit => false,
        Ok(_) => {
            let _ = cluster.publish_sessions(user, here).await;
            true
        }
        Err(_) => true,
    }
}

/// With `[cluster]`: the failure is counted, and the address banned, in
/// the shared tables while the database answers; when it does not, by
/// this node on its own (and the reply waits for the delay anyway).
async fn shared_failure(shared: &crate::server::Shared, ip: std::net::IpAddr) -> FailureVerdict {
    let live = shared.live();
    let cfg = &live.config.ban;
    let Some(cluster) = &shared.cluster else { return shared.bans.failure(ip, cfg) };
    if cfg.max_failures == 0 || crate::server::ban::allowed(ip, cfg) {
        return FailureVerdict::Exempt;
    }
    match cluster.failure(ip, cfg).await {
        Ok(Some(length)) => FailureVerdict::Banned(length),
        Ok(None) => FailureVerdict::Counted,
        Err(_) => shared.bans.failure(ip, cfg),
    }
}

async fn build_vfs(account: &Account) -> Result<std::sync::Arc<Vfs>, crate::vfs::StorageError> {
    if let Some(vfs) = Vfs::shared_local_if_open(&account.root, &account.mounts) {
        return Ok(vfs);
    }
    let root = account.root.clone();
    let mounts = account.mounts.clone();
    match tokio::task::spawn_blocking(move || Vfs::shared_local(&root, &mounts)).await {
        Ok(result) => result,
        Err(e) => Err(crate::vfs::StorageError::new(crate::vfs::StorageErrorKind::Other, e.to_string())),
    }
}

/// The storage used by an account with a quota: shared with its other
/// sessions, or counted by its root's backend (a walk of the tree).
async fn quota_usage(
    shared: &crate::server::Shared,
    account: &Account,
    vfs: &Vfs,
) -> std::io::Result<Option<std::sync::Arc<crate::vfs::quota::Usage>>> {
    use crate::vfs::quota::Usage;
    if account.shaping.quota_bytes.is_none() && account.shaping.quota_files.is_none() {
        return Ok(None);
    }
    if let Some(usage) = shared.quotas.get(&account.name) {
        return Ok(Some(usage));
    }
    let root = vfs.resolve("/").ok_or_else(|| std::io::Error::other("no root mounted at /"))?;
    // Boxed: a walk's state must not enlarge every session.
    let (bytes, files) = Box::pin(root.mount.storage.usage()).await.map_err(std::io::Error::other)?;
    tracing::info!(user = %account.name, bytes, files, "quota usage counted");
    Ok(Some(shared.quotas.insert(&account.name, std::sync::Arc::new(Usage::new(bytes, files)))))
}

/// The account's initial directory if it exists, else `/`.
async fn initial_dir(vfs: &Vfs, account: &Account) -> String {
    let Ok(dir) = vfs::normalize("/", &account.initial_dir) else {
        return "/".to_string();
    };
    if dir == "/" {
        return dir;
    }
    if let Some(resolved) = vfs.resolve(&dir) {
        if let Ok(meta) = resolved.mount.storage.metadata(resolved.rel).await {
            if meta.is_dir() {
                return dir;
            }
        }
    }
    tracing::warn!(user = %account.name, initial_dir = %dir, "initial directory missing, starting at /");
    "/".to_string()
}
