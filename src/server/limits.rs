//! Simultaneous-connection counters: total, per address, per account. A
//! guard decrements its counter when dropped, so every exit path releases it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::LimitsConfig;

#[derive(Debug, Default)]
pub struct Limits {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
    per_user: HashMap<String, u32>,
}

/// The result of [`Limits::admit`].
pub enum Admission {
    Admitted(ConnectionGuard),
    Refused(&'static str),
}

/// Held by a session for its whole life.
#[derive(Debug)]
pub struct ConnectionGuard {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

/// Held while an account is logged in.
#[derive(Debug)]
pub struct UserGuard {
    counts: Arc<Mutex<Counts>>,
    user: String,
}

fn lock(m: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    // A panic elsewhere while holding the lock leaves counts that are still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Limits {
    pub fn admit(&self, ip: IpAddr, cfg: &LimitsConfig) -> Admission {
        let ip = ip.to_canonical();
        let mut counts = lock(&self.inner);
        if counts.total >= cfg.max_clients {
            return Admission::Refused("Too many users");
        }
        let per_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if per_ip >= cfg.max_clients_per_ip {
            return Admission::Refused("Too many connections from your address");
        }
        counts.total += 1;
        counts.per_ip.insert(ip, per_ip + 1);
        Admission::Admitted(ConnectionGuard { counts: self.inner.clone(), ip })
    }

    /// Counts a login of `user`, unless it already has `max` sessions
    /// (0: no limit).
    pub fn login(&self, user: &str, max: u32) -> Option<UserGuard> {
        let mut counts = lock(&self.inner);
        let current = counts.per_user.get(user).copied().unwrap_or(0);
        if max != 0 && current >= max {
            return None;
        }
        counts.per_user.insert(user.to_string(), current + 1);
        Some(UserGuard { counts: self.inner.clone(), user: user.to_string() })
    }

    /// Sessions `user` has on this node now.
    pub fn user_sessions(&self, user: &str) -> u32 {
        lock(&self.inner).per_user.get(user).copied().unwrap_or(0)
    }

    /// Every logged-in user with its number of sessions (the cluster heartbeat).
    pub fn per_user(&self) -> Vec<(String, u32)> {
        lock(&self.inner).per_user.iter().map(|(u, n)| (u.clone(), *n)).collect()
    }

    /// Current number of connections (for status and tests).
    pub fn connections(&self) -> u32 {
        lock(&self.inner).total
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Drop for UserGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(n) = counts.per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_released_on_drop() {
        let limits = Limits::default();
        let cfg = LimitsConfig { max_clients: 2, max_clients_per_ip: 1, ..LimitsConfig::default() };
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let ga = match limits.admit(a, &cfg) {
            Admission::Admitted(g) => g,
            Admission::Refused(r) => panic!("{r}"),
        };
        assert!(matches!(limits.admit(a, &cfg), Admission::Refused(_)));
        let gb = limits.admit(b, &cfg);
        assert!(matches!(gb, Admission::Admitted(_)));
        assert!(matches!(limits.admit("127.0.0.3".parse().unwrap(), &cfg), Admission::Refused(_)));
        drop(ga);
        drop(gb);
        assert_eq!(limits.connections(), 0);
        let u1 = limits.login("bob", 1);
        assert!(u1.is_some());
        assert!(limits.login("bob", 1).is_none());
        drop(u1);
        assert!(limits.login("bob", 1).is_some());
    }
}
