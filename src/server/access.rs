//! Address rules: which addresses may connect at all (`[access]`), checked
//! at accept beside the ban list, before any byte is read; and which
//! addresses an account may log in from (its `allow_from`), checked after
//! the password.
//!
//! The most specific network naming an address decides, so a deny can
//! carve a hole in an allowed range and an allow can carve one in a denied
//! range; between two networks of the same length, deny wins. An address
//! neither list names is allowed only when `allow` is empty. The rules are
//! read from the configuration in force, so a reload applies to the next
//! connection.

use std::net::IpAddr;

use crate::config::{AccessConfig, Cidr};

/// The reply a refused address gets at connect.
pub const DENIED_REPLY: &str = "421 Access denied for your address.\r\n";

/// True if `ip` may connect under `cfg`.
pub fn admitted(ip: IpAddr, cfg: &AccessConfig) -> bool {
    let longest = |nets: &[Cidr]| nets.iter().filter(|n| n.contains(ip)).map(|n| n.0.prefix_len()).max();
    match (longest(&cfg.allow), longest(&cfg.deny)) {
        (_, None) if cfg.allow.is_empty() => true,
        (None, None) => false,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (Some(allow), Some(deny)) => allow > deny,
    }
}

/// Refuses a connection at accept: the 421 written without waiting (no
/// task, no buffer; a full socket buffer just loses it), nothing read.
/// Implicit-TLS listeners get no reply, since the client expects a
/// handshake.
pub fn refuse(stream: tokio::net::TcpStream, implicit_tls: bool) {
    if !implicit_tls {
        let _ = stream.try_write(DENIED_REPLY.as_bytes());
    }
    drop(stream);
}

/// True if an account restricted to `allow_from` (empty: anywhere) may
/// log in from `ip`.
pub fn account_admits(ip: IpAddr, allow_from: &[Cidr]) -> bool {
    allow_from.is_empty() || allow_from.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(allow: &[&str], deny: &[&str]) -> AccessConfig {
        AccessConfig {
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
            deny: deny.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rules() {
        let open = cfg(&[], &[]);
        assert!(admitted(ip("192.0.2.1"), &open));
        let deny = cfg(&[], &["127.0.0.2", "2001:db8::/32"]);
        assert!(!admitted(ip("127.0.0.2"), &deny));
        assert!(!admitted(ip("::ffff:127.0.0.2"), &deny), "IPv4-mapped counts as IPv4");
        assert!(admitted(ip("127.0.0.1"), &deny));
        assert!(!admitted(ip("2001:db8::5"), &deny));
        assert!(admitted(ip("2001:db9::5"), &deny));
        let only = cfg(&["10.0.0.0/8"], &["10.66.0.0/16"]);
        assert!(admitted(ip("10.1.2.3"), &only));
        assert!(!admitted(ip("10.66.2.3"), &only), "a more specific deny");
        assert!(!admitted(ip("192.0.2.1"), &only), "outside every allow");
        let hole = cfg(&["10.66.1.0/24"], &["10.66.0.0/16"]);
        assert!(admitted(ip("10.66.1.9"), &hole), "a more specific allow");
        assert!(!admitted(ip("10.66.2.9"), &hole));
        let tie = cfg(&["10.0.0.0/8"], &["10.0.0.0/8"]);
        assert!(!admitted(ip("10.0.0.1"), &tie), "deny wins a tie");
    }

    #[test]
    fn accounts() {
        let nets: Vec<Cidr> = vec!["127.0.0.2/32".parse().unwrap(), "fd00::/8".parse().unwrap()];
        assert!(account_admits(ip("127.0.0.2"), &nets));
        assert!(!account_admits(ip("127.0.0.1"), &nets));
        assert!(account_admits(ip("fd12::1"), &nets));
        assert!(account_admits(ip("127.0.0.1"), &[]));
    }
}
