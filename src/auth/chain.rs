//! The ordered chain of authentication modules, and building it from the
//! configuration.

use std::sync::Arc;

use super::anonymous::{self, Anonymous};
use super::pam::{self, Pam};
use super::userdb::{self, UserDb};
use super::{password, Account, AuthOutcome, Authenticator, LoginRequest};
use crate::config::load::closest;
use crate::config::{Config, ConfigError, AUTH_MODULES, PLANNED_AUTH_MODULES};

/// Modules asked in configured order; the first that knows the user decides.
#[derive(Debug, Clone, Default)]
pub struct AuthChain {
    modules: Vec<Arc<dyn Authenticator>>,
}

/// The chain's verdict, with the module that decided (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginResult {
    Accepted(Arc<Account>),
    /// Wrong password or disabled account, according to the named module.
    Rejected {
        module: &'static str,
    },
    /// No module knows the user.
    Unknown,
}

impl AuthChain {
    pub fn new(modules: Vec<Arc<dyn Authenticator>>) -> AuthChain {
        AuthChain { modules }
    }

    /// Names of the modules, in the order they are asked.
    pub fn module_names(&self) -> Vec<&'static str> {
        self.modules.iter().map(|m| m.name()).collect()
    }

    /// Asks each module in turn; the first that knows the user decides.
    /// When none does, a dummy verification spends the time a wrong password
    /// would, so response time does not reveal which user names exist.
    pub async fn authenticate(&self, request: &LoginRequest<'_>) -> LoginResult {
        for module in &self.modules {
            match module.authenticate(request).await {
                AuthOutcome::Accepted(account) => return LoginResult::Accepted(account),
                AuthOutcome::Rejected => return LoginResult::Rejected { module: module.name() },
                AuthOutcome::NotMine => {}
            }
        }
        password::dummy_verify().await;
        LoginResult::Unknown
    }
}

/// Builds the chain named by `auth.chain`. Opens (and creates) the user
/// database when `userdb` is listed. Errors name the setting to fix.
pub fn build_chain(config: &Config) -> Result<AuthChain, ConfigError> {
    let mut modules: Vec<Arc<dyn Authenticator>> = Vec::new();
    for (i, name) in config.auth.chain.iter().enumerate() {
        if config.auth.chain[..i].contains(name) {
            return Err(ConfigError(format!("auth.chain: module `{name}` is listed twice; list it once")));
        }
        let module: Arc<dyn Authenticator> = match name.as_str() {
            anonymous::MODULE_NAME => Arc::new(Anonymous::from_config(&config.anonymous)),
            userdb::MODULE_NAME => {
                Arc::new(UserDb::open(&userdb::Location::from_config(&config.userdb)).map_err(|e| {
                    let key = if config.userdb.url.is_some() { "userdb.url" } else { "userdb.path" };
                    ConfigError(format!("{key}: cannot open the user database: {e}"))
                })?)
            }
            pam::MODULE_NAME => Arc::new(Pam::from_config(&config.pam).map_err(ConfigError)?),
            planned if PLANNED_AUTH_MODULES.contains(&planned) => {
                return Err(ConfigError(format!(
                    "auth.chain: module `{planned}` is not available yet; valid modules: {}",
                    AUTH_MODULES.join(", ")
                )))
            }
            unknown => {
                let guess = closest(unknown, AUTH_MODULES).map(|g| format!("; did you mean `{g}`?"));
                return Err(ConfigError(format!(
                    "auth.chain: unknown module `{unknown}`; valid modules: {}{}",
                    AUTH_MODULES.join(", "),
                    guess.unwrap_or_default()
                )));
            }
        };
        modules.push(module);
    }
    Ok(AuthChain::new(modules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::hash_password;
    use crate::auth::userdb::{SqliteUserStore, UserRecord, UserStore};
    use std::net::{IpAddr, Ipv4Addr};

    fn login<'a>(user: &'a str, password: &'a str) -> LoginRequest<'a> {
        LoginRequest { user, password, peer: IpAddr::V4(Ipv4Addr::LOCALHOST) }
    }

    fn config(dir: &tempfile::TempDir, chain: &[&str]) -> Config {
        let mut c = Config::default();
        c.auth.chain = chain.iter().map(|s| s.to_string()).collect();
        c.anonymous.root = dir.path().to_path_buf();
        c.userdb.path = dir.path().join("users.db");
        c
    }

    /// A userdb user named `ftp`, which both modules claim.
    fn add_ftp_user(c: &Config) {
        let store = SqliteUserStore::open(&c.userdb.path).unwrap();
        store.put(&UserRecord::new("ftp", hash_password("pw").unwrap(), c.anonymous.root.clone())).unwrap();
    }

    #[tokio::test]
    async fn first_module_that_knows_the_user_decides() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(&dir, &["anonymous", "userdb"]);
        add_ftp_user(&c);
        let chain = build_chain(&c).unwrap();
        assert_eq!(chain.module_names(), ["anonymous", "userdb"]);
        match chain.authenticate(&login("ftp", "wrong")).await {
            LoginResult::Accepted(acc) => assert_eq!(acc.module, "anonymous"),
            other => panic!("{other:?}"),
        }

        let c = config(&dir, &["userdb", "anonymous"]);
        let chain = build_chain(&c).unwrap();
        assert_eq!(
            chain.authenticate(&login("ftp", "wrong")).await,
            LoginResult::Rejected { module: "userdb" }
        );
        match chain.authenticate(&login("ftp", "pw")).await {
            LoginResult::Accepted(acc) => assert_eq!((acc.module, acc.anonymous), ("userdb", false)),
            other => panic!("{other:?}"),
        }
        // Not in the database: the next module gets its turn.
        match chain.authenticate(&login("anonymous", "")).await {
            LoginResult::Accepted(acc) => assert_eq!(acc.module, "anonymous"),
            other => panic!("{other:?}"),
        }
        assert_eq!(chain.authenticate(&login("nobody", "x")).await, LoginResult::Unknown);
    }

    #[tokio::test]
    async fn empty_chain_knows_nobody() {
        let chain = AuthChain::default();
        assert_eq!(chain.authenticate(&login("anonymous", "")).await, LoginResult::Unknown);
    }

    #[test]
    fn bad_module_names() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_chain(&config(&dir, &["anonymous", "ldap"])).unwrap_err().0;
        assert!(err.contains("unknown module `ldap`") && err.contains("anonymous, userdb, pam"), "{err}");
        let err = build_chain(&config(&dir, &["pam"])).unwrap_err().0;
        assert!(err.contains("pam:"), "{err}");
        let err = build_chain(&config(&dir, &["userdb", "userdb"])).unwrap_err().0;
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn unopenable_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(&dir, &["userdb"]);
        c.userdb.path = dir.path().join("no/such/dir/users.db");
        let err = build_chain(&c).unwrap_err().0;
        assert!(err.contains("userdb.path") && err.contains("no/such/dir"), "{err}");
    }
}
