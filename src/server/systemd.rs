//! systemd integration: socket activation (`LISTEN_FDS`) and readiness
//! notification (`Type=notify`). Both are no-ops where systemd is absent
//! (the variables unset, or another platform).

use std::net::TcpListener;

/// One listening socket handed over by the service manager.
#[derive(Debug)]
pub struct Activated {
    pub listener: TcpListener,
    /// Named `ftps` or `implicit` (`FileDescriptorName=` in the socket
    /// unit): implicit TLS from the first byte.
    pub implicit_tls: bool,
}

/// Names of sockets that speak implicit TLS.
fn is_implicit_name(name: &str) -> bool {
    matches!(name, "ftps" | "implicit" | "implicit-tls")
}

/// The listening sockets passed by socket activation, if this process was
/// started that way (`LISTEN_PID` is ours). Each must be a TCP stream
/// socket that is already listening.
#[cfg(unix)]
pub fn activated_listeners() -> anyhow::Result<Option<Vec<Activated>>> {
    use std::os::fd::{FromRawFd as _, OwnedFd};

    let fds = sd_notify::listen_fds_with_names()
        .map_err(|e| anyhow::anyhow!("socket activation: {e} (check LISTEN_FDS and LISTEN_PID)"))?;
    if fds.len() == 0 {
        return Ok(None);
    }
    let mut listeners = Vec::new();
    for (fd, name) in fds {
        // SAFETY: the service manager passed this descriptor to us alone
        // (LISTEN_PID is this process) and nothing else in the process has
        // taken it: ownership moves here exactly once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let kind = nix::sys::socket::getsockopt(&owned, nix::sys::socket::sockopt::SockType)
            .map_err(|e| anyhow::anyhow!("socket activation: descriptor {fd} is not a socket ({e})"))?;
        let listening = nix::sys::socket::getsockopt(&owned, nix::sys::socket::sockopt::AcceptConn)
            .map_err(|e| anyhow::anyhow!("socket activation: descriptor {fd}: {e}"))?;
        if kind != nix::sys::socket::SockType::Stream || !listening {
            anyhow::bail!(
                "socket activation: descriptor {fd} ({name}) is not a listening stream socket; \
                 use ListenStream= with Accept=no"
            );
        }
        let listener = TcpListener::from(owned);
        listener.local_addr().map_err(|e| {
            anyhow::anyhow!("socket activation: descriptor {fd} ({name}) is not a TCP socket ({e})")
        })?;
        listener.set_nonblocking(true)?;
        listeners.push(Activated { listener, implicit_tls: is_implicit_name(&name) });
    }
    Ok(Some(listeners))
}

#[cfg(not(unix))]
pub fn activated_listeners() -> anyhow::Result<Option<Vec<Activated>>> {
    Ok(None)
}

/// What the service manager is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Listening and serving (`READY=1`).
    Ready,
    /// Re-reading the configuration (`RELOADING=1`).
    Reloading,
    /// Draining before exit (`STOPPING=1`).
    Stopping,
}

/// Tells the service manager (if any: `NOTIFY_SOCKET`) the new state.
#[cfg(unix)]
pub fn notify(state: State, status: &str) {
    use sd_notify::NotifyState;
    let mut states = vec![NotifyState::Status(status)];
    match state {
        State::Ready => states.push(NotifyState::Ready),
        State::Reloading => {
            states.push(NotifyState::Reloading);
            // Required after RELOADING=1 by Type=notify-reload (systemd 253+).
            states.extend(NotifyState::monotonic_usec_now().ok());
        }
        State::Stopping => states.push(NotifyState::Stopping),
    }
    if let Err(e) = sd_notify::notify(&states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

#[cfg(not(unix))]
pub fn notify(_state: State, _status: &str) {}

#[cfg(test)]
mod tests {
    #[test]
    fn implicit_tls_names() {
        assert!(super::is_implicit_name("ftps"));
        assert!(!super::is_implicit_name("ftp"));
        assert!(!super::is_implicit_name("ferroftpd.socket"));
    }
}
