//! Opening data connections.
//!
//! Passive: a listener on the control connection's local address, on a port
//! from the configured range. The listener *is* the reservation: dropping it
//! (error, ABOR, a second PASV, disconnect, timeout) frees the port, so no
//! bookkeeping can leak. Only the control connection's peer address may
//! connect; anyone else is dropped and logged (passive-port theft).
//!
//! Active: PORT/EPRT may only name the client's own address and a port of
//! 1024 or more, so the server cannot be used to bounce connections.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

/// The configured passive port range, shared by all sessions; a reload
/// may change it (new reservations use the new range).
#[derive(Debug)]
pub struct PassivePorts {
    /// `first << 16 | last`, so both change together.
    range: AtomicU32,
    /// Where the next search starts, so consecutive sessions spread over the
    /// range instead of all probing the same busy ports.
    cursor: AtomicU32,
}

impl PassivePorts {
    /// `[0, 0]` means any port the system picks.
    pub fn new(range: [u16; 2]) -> PassivePorts {
        let ports = PassivePorts { range: AtomicU32::new(0), cursor: AtomicU32::new(0) };
        ports.set_range(range);
        ports
    }

    /// Replaces the range (on reload).
    pub fn set_range(&self, range: [u16; 2]) {
        let (first, last) = (range[0], range[1].max(range[0]));
        self.range.store(u32::from(first) << 16 | u32::from(last), Ordering::Relaxed);
    }

    /// The current range, `[0, 0]` for any port.
    pub fn range(&self) -> [u16; 2] {
        let r = self.range.load(Ordering::Relaxed);
        [(r >> 16) as u16, r as u16]
    }

    /// Binds a listener on `ip` on a free port of the range.
    pub fn bind(&self, ip: IpAddr) -> io::Result<PassiveListener> {
        let [first, last] = self.range();
        if first == 0 {
            return bind_listener(SocketAddr::new(ip, 0)).map(|listener| PassiveListener { listener });
        }
        let span = u32::from(last - first) + 1;
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % span;
        let mut last_err = None;
        for i in 0..span {
            let port = first + ((start + i) % span) as u16;
            match bind_listener(SocketAddr::new(ip, port)) {
                Ok(listener) => return Ok(PassiveListener { listener }),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "passive range exhausted")))
    }
}

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // On Unix, SO_REUSEADDR lets a port be listened on again while its last
    // data connection lingers in TIME_WAIT (else a small range is exhausted
    // for a minute after a few transfers), and still refuses a second
    // listener on a port that is listening: two sessions never share one.
    // Windows' SO_REUSEADDR would allow exactly that sharing, so not there.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8)
}

/// A reserved passive port, waiting for the client.
#[derive(Debug)]
pub struct PassiveListener {
    listener: TcpListener,
}

impl PassiveListener {
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Accepts the client's data connection, refusing connections from any
    /// other address, until `timeout` runs out.
    pub async fn accept_from(self, client: IpAddr, timeout: Duration) -> io::Result<TcpStream> {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = tokio::time::timeout_at(deadline, self.listener.accept()).await;
            let (stream, from) = match accepted {
                Ok(result) => result?,
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no data connection")),
            };
            if same_host(from.ip(), client) {
                return Ok(stream);
            }
            tracing::warn!(from = %from, expected = %client, "refused passive data connection from a foreign address");
        }
    }
}

/// How the next transfer gets its data connection.
#[derive(Debug, Default)]
pub enum DataSetup {
    #[default]
    None,
    Passive(PassiveListener),
    Active(SocketAddr),
}

/// Why a PORT/EPRT target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveRefusal {
    ForeignAddress,
    PrivilegedPort,
}

/// Bounce protection: only the client's own address and a port ≥ 1024.
pub fn check_active_target(target: SocketAddr, client: IpAddr) -> Result<(), ActiveRefusal> {
    if !same_host(target.ip(), client) {
        return Err(ActiveRefusal::ForeignAddress);
    }
    if target.port() < 1024 {
        return Err(ActiveRefusal::PrivilegedPort);
    }
    Ok(())
}

/// Connects to the client for an active-mode transfer, from the control
/// connection's local address.
pub async fn connect_active(
    target: SocketAddr,
    local_ip: IpAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    let local_ip = match (local_ip.to_canonical(), target.ip()) {
        (IpAddr::V4(v4), IpAddr::V6(_)) => IpAddr::V6(v4.to_ipv6_mapped()),
        (ip, _) => ip,
    };
    socket.bind(SocketAddr::new(local_ip, 0))?;
    match tokio::time::timeout(timeout, socket.connect(target)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "active connection timed out")),
    }
}

/// Compares addresses, treating IPv4-mapped IPv6 as the IPv4 address.
pub fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn bounce_protection() {
        let me = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(check_active_target("127.0.0.1:5000".parse().unwrap(), me), Ok(()));
        assert_eq!(check_active_target("[::ffff:127.0.0.1]:5000".parse().unwrap(), me), Ok(()));
        assert_eq!(
            check_active_target("127.0.0.2:5000".parse().unwrap(), me),
            Err(ActiveRefusal::ForeignAddress)
        );
        assert_eq!(
            check_active_target("127.0.0.1:25".parse().unwrap(), me),
            Err(ActiveRefusal::PrivilegedPort)
        );
    }

    #[tokio::test]
    async fn range_ports_are_exclusive_and_released() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        let pool = PassivePorts::new([base, base]);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let first = pool.bind(ip).unwrap();
        assert_eq!(first.port(), base);
        assert!(pool.bind(ip).is_err(), "a one-port range must be exhausted while held");
        drop(first);
        assert_eq!(pool.bind(ip).unwrap().port(), base);
    }
}
