//! The ordered chain of authentication modules.

use std::sync::Arc;

use super::{Account, AuthOutcome, Authenticator, LoginRequest};

/// Modules asked in configured order; the first that knows the user decides.
#[derive(Debug, Clone, Default)]
pub struct AuthChain {
    modules: Vec<Arc<dyn Authenticator>>,
}

/// The chain's verdict, with the module that decided (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginResult {
    Accepted(Box<Account>),
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

    pub async fn authenticate(&self, request: &LoginRequest<'_>) -> LoginResult {
        for module in &self.modules {
            match module.authenticate(request).await {
                AuthOutcome::Accepted(account) => return LoginResult::Accepted(account),
                AuthOutcome::Rejected => return LoginResult::Rejected { module: module.name() },
                AuthOutcome::NotMine => {}
            }
        }
        LoginResult::Unknown
    }
}
