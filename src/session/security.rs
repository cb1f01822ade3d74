//! AUTH TLS, PBSZ, PROT, CCC (RFC 4217) and the TLS policy.
//!
//! The policy (`[tls]`): TLS may be optional, required before USER
//! (`require_login`), or required for data connections too (`require_data`,
//! which implies the former). Listeners named in `tls.exempt_listen` keep it
//! optional; with `anonymous_exempt`, anonymous users need neither.
//!
//! Reply codes: USER before AUTH where TLS is required gets 530 with a text
//! that says why; PROT P before PBSZ 503; PROT C where data must be
//! protected 534; PROT S/E 536; unknown levels 504; CCC 534 (the control
//! connection never goes back to clear text); a transfer under PROT C where
//! data must be protected 521.
//!
//! AUTH is accepted before login only: after it, the USER must be sent
//! again (any USER sent before is forgotten), and REIN keeps the TLS layer
//! and the PBSZ/PROT settings, since there is no way back to clear text.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::{Outcome, Session};
use crate::auth::anonymous::Anonymous;
use crate::auth::Account;
use crate::proto::Reply;
use crate::server::{ListenerInfo, Live, Shared};
use crate::tls::{ServerStream, SessionTls};

/// TLS state of a session whose control connection is protected.
#[derive(Debug)]
pub(super) struct TlsState {
    pub session: SessionTls,
    /// PBSZ was sent (required before PROT).
    pub pbsz: bool,
    /// PROT P: data connections in TLS.
    pub private: bool,
}

impl TlsState {
    fn new(session: SessionTls, implicit: bool) -> Box<TlsState> {
        // Implicit FTPS starts as if PBSZ 0 and PROT P had been sent.
        Box::new(TlsState { session, pbsz: implicit, private: implicit })
    }
}

/// How the logged-in user's next data connection is set up.
#[derive(Debug, Default)]
pub(super) struct DataTls {
    /// Present under PROT P.
    pub session: Option<SessionTls>,
    /// Data connections must resume the control connection's session.
    pub require_reuse: bool,
    /// Clear data connections are refused (521).
    pub required: bool,
}

/// What the configuration requires of this listener's sessions.
struct Policy {
    login: bool,
    data: bool,
    anonymous_exempt: bool,
}

fn policy(live: &Live, listener: ListenerInfo) -> Policy {
    let t = &live.config.tls;
    let applies =
        live.tls.is_some() && (listener.implicit_tls || !t.exempt_listen.contains(&listener.configured));
    Policy {
        login: applies && (t.require_login || t.require_data),
        data: applies && t.require_data,
        anonymous_exempt: t.anonymous_exempt && live.config.auth.chain.iter().any(|m| m == "anonymous"),
    }
}

pub(super) fn data_policy(
    live: &Live,
    listener: ListenerInfo,
    tls: Option<&TlsState>,
    account: &Account,
) -> DataTls {
    let p = policy(live, listener);
    DataTls {
        session: tls.filter(|t| t.private).map(|t| t.session.clone()),
        require_reuse: live.config.tls.require_session_reuse,
        required: p.data && !(p.anonymous_exempt && account.anonymous),
    }
}

/// Implicit FTPS: the handshake right after accept, before the greeting,
/// bounded by the login timeout. `None` (logged) if it fails.
pub(super) async fn implicit_handshake(
    stream: TcpStream,
    shared: &Arc<Shared>,
) -> Option<(ServerStream, Box<TlsState>)> {
    let live = shared.live();
    let Some(setup) = &live.tls else {
        tracing::error!("implicit TLS connection but no certificate is configured; closing");
        return None;
    };
    let session = setup.for_session();
    let timeout = Duration::from_secs(live.config.timeouts.login.max(1));
    drop(live);
    match session.accept_control(stream, timeout).await {
        Ok(stream) => {
            tracing::info!(tls = crate::tls::describe(&stream), "implicit TLS control connection");
            Some((stream, TlsState::new(session, true)))
        }
        Err(e) => {
            tracing::info!(error = %e, "implicit TLS handshake failed");
            None
        }
    }
}

impl Session {
    pub(super) fn cmd_auth(&mut self, mechanism: &str) -> Outcome {
        let mechanism = mechanism.to_ascii_uppercase();
        if self.shared.live().tls.is_none() {
            return Reply::new(502, "TLS is not configured.").into();
        }
        if !matches!(mechanism.as_str(), "TLS" | "TLS-C" | "SSL" | "TLS-P") {
            return Reply::new(504, format!("AUTH {mechanism} not supported; use AUTH TLS.")).into();
        }
        if self.control.is_tls() {
            return Reply::new(503, "Already using TLS.").into();
        }
        if !self.control.can_start_tls() {
            return Reply::new(431, "TLS is not available on this connection.").into();
        }
        if self.user.is_some() {
            return Reply::new(503, "AUTH must come before login.").into();
        }
        // A USER sent in clear does not carry over.
        self.pending_user = None;
        Outcome::StartTls(Reply::new(234, format!("AUTH {mechanism} successful; proceed with negotiation.")))
    }

    /// The handshake after `234`; false ends the session (there is no way
    /// to speak to the client in clear any more).
    pub(super) async fn start_tls(&mut self) -> bool {
        let live = self.shared.live();
        let Some(setup) = &live.tls else {
            return false;
        };
        let session = setup.for_session();
        let timeout = Duration::from_secs(live.config.timeouts.login.max(1));
        drop(live);
        match self.control.start_tls(&session, timeout).await {
            Ok(()) => {
                tracing::info!(
                    tls = self.control.tls_description().unwrap_or_default(),
                    "control connection protected"
                );
                self.tls = Some(TlsState::new(session, false));
                true
            }
            Err(e) => {
                tracing::info!(error = %e, "TLS handshake on the control connection failed");
                false
            }
        }
    }

    pub(super) fn cmd_pbsz(&mut self, size: &str) -> Reply {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Reply::new(503, "PBSZ requires AUTH TLS first.");
        };
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Reply::new(501, "PBSZ takes a number; use PBSZ 0.");
        }
        // TLS does its own framing: the only buffer size is 0 (RFC 4217 §8).
        tls.pbsz = true;
        Reply::new(200, "PBSZ=0")
    }

    pub(super) fn cmd_prot(&mut self, level: &str) -> Reply {
        let level = level.to_ascii_uppercase();
        let clear_refused = self.clear_data_refused();
        let Some(tls) = self.tls.as_deref_mut() else {
            return Reply::new(503, "PROT requires AUTH TLS first.");
        };
        if !tls.pbsz {
            return Reply::new(503, "PROT requires PBSZ first; send PBSZ 0.");
        }
        match level.as_str() {
            "P" => {
                tls.private = true;
                Reply::new(200, "Protection set to Private.")
            }
            "C" if clear_refused => {
                Reply::new(534, "PROT C refused: data connections must be protected; use PROT P.")
            }
            "C" => {
                tls.private = false;
                Reply::new(200, "Protection set to Clear.")
            }
            "S" | "E" => Reply::new(536, format!("PROT {level} not supported; use PROT P.")),
            _ => Reply::new(504, format!("Unknown protection level {level}; use PROT P.")),
        }
    }

    /// True if clear data connections would be refused for this session
    /// (before login, unless anonymous users are exempt).
    fn clear_data_refused(&self) -> bool {
        let live = self.shared.live();
        let p = policy(&live, self.listener);
        match &self.user {
            Some(user) => p.data && !(p.anonymous_exempt && user.account.anonymous),
            None => p.data && !p.anonymous_exempt,
        }
    }

    pub(super) fn cmd_ccc(&self) -> Reply {
        if self.control.is_tls() {
            Reply::new(534, "CCC refused: the control connection stays protected.")
        } else {
            Reply::new(533, "Control connection is not protected.")
        }
    }

    /// The refusal for USER `name` on a clear control connection where
    /// TLS is required, if it is.
    pub(super) fn login_needs_tls(&self, name: &str) -> Option<Reply> {
        if self.control.is_tls() {
            return None;
        }
        let live = self.shared.live();
        let p = policy(&live, self.listener);
        if !p.login {
            return None;
        }
        if p.anonymous_exempt && Anonymous::is_anonymous_name(name) {
            return None;
        }
        tracing::info!(user = name, "login refused: TLS required (no AUTH TLS)");
        let text = if p.anonymous_exempt {
            "Non-anonymous sessions must use TLS: send AUTH TLS before USER."
        } else {
            "This server requires TLS: send AUTH TLS before USER."
        };
        Some(Reply::new(530, text))
    }

    /// After a successful password check: refuses an account that needs
    /// TLS on a clear connection (a user name that looked anonymous but was
    /// accepted by another module).
    pub(super) fn account_needs_tls(&self, account: &Account) -> bool {
        if self.control.is_tls() {
            return false;
        }
        let live = self.shared.live();
        let p = policy(&live, self.listener);
        p.login && !(p.anonymous_exempt && account.anonymous)
    }
}
