//! inetd mode (`ferroftpd serve --inetd`): one session on the connection
//! inherited as standard input, as inetd, xinetd and systemd's
//! `Accept=yes` sockets start a server. A TCP socket is served as any
//! client; a Unix-domain socket (a socketpair) as a loopback client.
//! Passive data connections still come from the configured port range.
//!
//! Nothing may be written to standard output: it is the client's socket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::auth::AuthChain;
use crate::config::Config;

use super::limits::Admission;
use super::{access, Server, Shared};

/// Serves the one connection on standard input, then returns.
#[cfg(unix)]
pub async fn serve(
    config: Config,
    auth: AuthChain,
    config_path: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use std::os::fd::AsFd as _;
    use std::os::fd::AsRawFd as _;

    use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike as _, SockaddrStorage};

    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| anyhow::anyhow!("inetd mode: cannot take standard input ({e})"))?;
    let family = getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .map_err(|_| anyhow::anyhow!("inetd mode: standard input is not a socket"))?
        .family();
    // One process per connection: each would try to bind the metrics port.
    let mut config = config;
    if config.metrics.take().is_some() {
        tracing::warn!("[metrics] is ignored in inetd mode (one process per connection)");
    }
    // No listeners: the connection is already there.
    let server = Server::bind_or_adopt(config, auth, config_path, Some(Vec::new())).await?;
    let shared = server.shared();
    match family {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            let stream = std::net::TcpStream::from(fd);
            stream.set_nonblocking(true)?;
            let peer = stream.peer_addr()?;
            let stream = tokio::net::TcpStream::from_std(stream)?;
            let info = super::ListenerInfo { configured: stream.local_addr()?, implicit_tls: false };
            // One process per connection: only bans shared through
            // [cluster] can be known here (read at start).
            let banned = shared.cluster.as_ref().and_then(|c| c.banned(peer.ip(), &shared.live().config.ban));
            if let Some(left) = banned {
                super::ban::refuse(stream, peer, left, false);
            } else if let Some(guard) = admit(&shared, peer) {
                crate::session::run(stream, peer, info, shared.clone(), guard).await;
            } else {
                access::refuse(stream, false);
            }
        }
        Some(AddressFamily::Unix) => {
            let stream = std::os::unix::net::UnixStream::from(fd);
            stream.set_nonblocking(true)?;
            let stream = tokio::net::UnixStream::from_std(stream)?;
            let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let peer = SocketAddr::new(loopback, 0);
            if let Some(guard) = admit(&shared, peer) {
                crate::session::run_unix(stream, peer, SocketAddr::new(loopback, 0), shared.clone(), guard)
                    .await;
            }
        }
        other => anyhow::bail!("inetd mode: standard input is a socket of an unsupported family ({other:?})"),
    }
    shared.xferlog.sync(std::time::Duration::from_secs(5));
    Ok(())
}

#[cfg(not(unix))]
pub async fn serve(
    _config: Config,
    _auth: AuthChain,
    _config_path: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    anyhow::bail!("inetd mode needs a Unix system")
}

/// The checks the accept loop makes, for the one client.
#[cfg_attr(not(unix), allow(dead_code))]
fn admit(shared: &Arc<Shared>, peer: SocketAddr) -> Option<super::limits::ConnectionGuard> {
    let live = shared.live();
    if !access::admitted(peer.ip(), &live.config.access) {
        tracing::warn!(%peer, "connection refused: address denied by [access] rules");
        return None;
    }
    match shared.limits.admit(peer.ip(), &live.config.limits) {
        Admission::Admitted(guard) => Some(guard),
        Admission::Refused(reason) => {
            tracing::warn!(%peer, reason, "connection refused");
            None
        }
    }
}
