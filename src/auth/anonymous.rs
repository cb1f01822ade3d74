//! The `anonymous` module: users `anonymous` and `ftp`, any password.
//!
//! The password is customarily an e-mail address and proves nothing, so the
//! account is always read-only except below the configured upload
//! directories (a drop box), and sees only the anonymous root.

use std::path::PathBuf;

use async_trait::async_trait;

use super::{Account, AuthOutcome, Authenticator, LoginRequest};
use crate::config::AnonymousConfig;

/// The module's name in `auth.chain`.
pub const MODULE_NAME: &str = "anonymous";

/// User names this module answers for, compared case-insensitively.
pub const USER_NAMES: [&str; 2] = ["anonymous", "ftp"];

#[derive(Debug, Clone)]
pub struct Anonymous {
    /// Built once: every anonymous session shares it.
    account: std::sync::Arc<Account>,
}

impl Anonymous {
    /// `upload_dirs` are normalised absolute virtual paths (the config
    /// loader checks and normalises them).
    pub fn new(root: impl Into<PathBuf>, upload_dirs: Vec<String>) -> Anonymous {
        let account = Account {
            name: "anonymous".to_string(),
            groups: vec!["anonymous".to_string()],
            anonymous: true,
            root: root.into(),
            mounts: Vec::new(),
            initial_dir: "/".to_string(),
            read_only: true,
            upload_dirs,
            max_sessions: None,
            module: MODULE_NAME,
            rules: Vec::new(),
            shaping: Default::default(),
        };
        Anonymous { account: std::sync::Arc::new(account) }
    }

    pub fn from_config(config: &AnonymousConfig) -> Anonymous {
        Anonymous::new(config.root.clone(), config.upload_dirs.clone())
    }

    /// True for the user names this module owns.
    pub fn is_anonymous_name(user: &str) -> bool {
        USER_NAMES.iter().any(|n| n.eq_ignore_ascii_case(user))
    }

    /// The account every anonymous login gets (also for `ferroftpd perm explain`).
    pub fn account(&self) -> Account {
        Account::clone(&self.account)
    }
}

#[async_trait]
impl Authenticator for Anonymous {
    fn name(&self) -> &'static str {
        MODULE_NAME
    }

    async fn authenticate(&self, request: &LoginRequest<'_>) -> AuthOutcome {
        if Anonymous::is_anonymous_name(request.user) {
            AuthOutcome::Accepted(self.account.clone())
        } else {
            AuthOutcome::NotMine
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};

    async fn ask(m: &Anonymous, user: &str, password: &str) -> AuthOutcome {
        m.authenticate(&LoginRequest { user, password, peer: IpAddr::V6(Ipv6Addr::LOCALHOST) }).await
    }

    #[tokio::test]
    async fn accepts_anonymous_and_ftp_with_any_password() {
        let m = Anonymous::new("/srv/ftp", vec!["/incoming".into()]);
        for user in ["anonymous", "ANONYMOUS", "Ftp", "ftp"] {
            for password in ["", "me@example.org"] {
                let AuthOutcome::Accepted(acc) = ask(&m, user, password).await else {
                    panic!("{user} refused");
                };
                assert_eq!(acc.name, "anonymous");
                assert_eq!(acc.groups, ["anonymous"]);
                assert!(acc.anonymous && acc.read_only);
                assert_eq!(acc.root, PathBuf::from("/srv/ftp"));
                assert_eq!(acc.upload_dirs, ["/incoming"]);
                assert_eq!(acc.initial_dir, "/");
                assert_eq!(acc.module, "anonymous");
            }
        }
    }

    #[tokio::test]
    async fn others_are_not_mine() {
        let m = Anonymous::from_config(&AnonymousConfig::default());
        for user in ["bob", "anonymous ", "ftpuser", ""] {
            assert_eq!(ask(&m, user, "x").await, AuthOutcome::NotMine, "{user:?}");
        }
    }
}
