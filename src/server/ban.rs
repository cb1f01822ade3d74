//! Brute-force defence: failed logins are counted per address over a
//! sliding window (`ban.window`); an address that reaches `ban.max_failures`
//! is banned for `ban.duration` seconds. A banned address is refused at
//! accept, before any session state exists, with a 421 written without
//! waiting (no task, no buffer). Addresses in `ban.allow` are never banned.
//!
//! IPv6 addresses count by their /64: one host usually owns a whole /64,
//! and could otherwise dodge the count by changing its interface bits.
//!
//! The table is bounded: expired entries are pruned as it grows, and past
//! [`MAX_TRACKED`] addresses the ones whose last failure is oldest are
//! forgotten first (bans are kept over mere counts).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BanConfig;

/// Most addresses the table remembers at once.
pub const MAX_TRACKED: usize = 65_536;

/// The reply a banned address gets.
pub const BANNED_REPLY: &str = "421 Too many failed logins from your address, try again later.\r\n";

#[derive(Debug, Default)]
pub struct BanList {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<IpAddr, Entry>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Times of the failures still inside the window, oldest first (at most
    /// `max_failures` of them are kept).
    failures: VecDeque<Instant>,
    /// When the ban ends, if banned.
    banned_until: Option<Instant>,
    /// Connections refused during the current ban (logged when it ends).
    refused: u64,
}

impl Entry {
    fn last_activity(&self) -> Option<Instant> {
        self.failures.back().copied().max(self.banned_until)
    }
}

/// What [`BanList::failure`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureVerdict {
    /// Counted; not (yet) banned.
    Counted,
    /// This failure banned the address for the given time.
    Banned(Duration),
    /// The address is allow-listed, or banning is off.
    Exempt,
}

/// The key an address is counted under.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Whether `ban.allow` exempts `ip`.
pub(crate) fn allowed(ip: IpAddr, cfg: &BanConfig) -> bool {
    cfg.allow.iter().any(|net| net.contains(ip))
}

impl BanList {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// If `ip` is banned now, the time left. Called at accept.
    pub fn banned(&self, ip: IpAddr, cfg: &BanConfig) -> Option<Duration> {
        if cfg.max_failures == 0 || allowed(ip, cfg) {
            return None;
        }
        let now = Instant::now();
        let k = key(ip);
        let mut table = self.table();
        let entry = table.entries.get_mut(&k)?;
        match entry.banned_until {
            Some(until) if until > now => {
                entry.refused += 1;
                Some(until - now)
            }
            Some(_) => {
                tracing::info!(address = %k, refused = entry.refused, "ban lifted");
                entry.banned_until = None;
                entry.refused = 0;
                if entry.failures.is_empty() {
                    table.entries.remove(&k);
                }
                None
            }
            None => None,
        }
    }

    /// Counts a failed login from `ip`; bans it when the count within the
    /// window reaches the threshold.
    pub fn failure(&self, ip: IpAddr, cfg: &BanConfig) -> FailureVerdict {
        if cfg.max_failures == 0 || allowed(ip, cfg) {
            return FailureVerdict::Exempt;
        }
        let now = Instant::now();
        let window = Duration::from_secs(cfg.window);
        let k = key(ip);
        let mut table = self.table();
        if !table.entries.contains_key(&k) && table.entries.len() >= MAX_TRACKED {
            table.make_room(now, window);
        }
        let entry = table.entries.entry(k).or_default();
        if entry.banned_until.is_some_and(|until| until > now) {
            // Sessions opened before the ban go on failing: nothing to add.
            return FailureVerdict::Counted;
        }
        while entry.failures.front().is_some_and(|&t| now.duration_since(t) >= window) {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        if entry.failures.len() >= cfg.max_failures as usize {
            let duration = Duration::from_secs(cfg.duration);
            entry.failures.clear();
            entry.banned_until = Some(now + duration);
            entry.refused = 0;
            tracing::warn!(
                address = %k,
                failures = cfg.max_failures,
                window_secs = cfg.window,
                ban_secs = cfg.duration,
                "address banned after repeated failed logins"
            );
            return FailureVerdict::Banned(duration);
        }
        FailureVerdict::Counted
    }

    /// Addresses banned right now, with the time each ban has left, longest first.
    pub fn banned_list(&self) -> Vec<(IpAddr, Duration)> {
        let now = Instant::now();
        let mut list: Vec<(IpAddr, Duration)> = self
            .table()
            .entries
            .iter()
            .filter_map(|(k, e)| e.banned_until.filter(|&u| u > now).map(|u| (*k, u - now)))
            .collect();
        list.sort_by_key(|e| std::cmp::Reverse(e.1));
        list
    }

    /// Lifts the ban of `ip` (and forgets its failures); false if it was not banned.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let k = key(ip);
        let removed = self.table().entries.remove(&k);
        let was = removed.is_some_and(|e| e.banned_until.is_some_and(|u| u > Instant::now()));
        if was {
            tracing::info!(address = %k, "ban lifted by an administrator");
        }
        was
    }

    /// Addresses currently remembered (banned or with recent failures).
    pub fn tracked(&self) -> usize {
        self.table().entries.len()
    }

    /// Addresses banned right now.
    pub fn banned_count(&self) -> usize {
        let now = Instant::now();
        self.table().entries.values().filter(|e| e.banned_until.is_some_and(|u| u > now)).count()
    }
}

impl Table {
    /// Drops what has expired; if still full, forgets the entries least
    /// recently active (counts before bans).
    fn make_room(&mut self, now: Instant, window: Duration) {
        self.entries.retain(|_, e| {
            let banned = e.banned_until.is_some_and(|u| u > now);
            let recent = e.failures.back().is_some_and(|&t| now.duration_since(t) < window);
            banned || recent
        });
        if self.entries.len() < MAX_TRACKED {
            return;
        }
        let mut order: Vec<(bool, Option<Instant>, IpAddr)> =
            self.entries.iter().map(|(k, e)| (e.banned_until.is_some(), e.last_activity(), *k)).collect();
        order.sort();
        let excess = self.entries.len() + 1 - MAX_TRACKED / 2;
        for (_, _, k) in order.into_iter().take(excess) {
            self.entries.remove(&k);
        }
        tracing::warn!(kept = self.entries.len(), "failed-login table full: forgot the oldest addresses");
    }
}

/// Refuses a connection from a banned address: the 421 goes out with one
/// non-blocking write (an empty socket buffer always takes it) and the
/// socket is closed at once, so a flood of banned connections costs no task
/// and no timer. Implicit-TLS listeners just close (no TLS, no reply).
pub fn refuse(stream: tokio::net::TcpStream, peer: std::net::SocketAddr, left: Duration, implicit_tls: bool) {
    tracing::debug!(%peer, secs_left = left.as_secs(), "connection from a banned address refused");
    if !implicit_tls {
        let _ = stream.try_write(BANNED_REPLY.as_bytes());
    }
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: u32, window: u64, duration: u64) -> BanConfig {
        BanConfig { max_failures: max, window, duration, allow: Vec::new() }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn bans_after_the_threshold_within_the_window_and_lifts() {
        let bans = BanList::default();
        let c = cfg(3, 10, 60);
        let a = ip("192.0.2.1");
        assert_eq!(bans.failure(a, &c), FailureVerdict::Counted);
        assert_eq!(bans.failure(a, &c), FailureVerdict::Counted);
        assert_eq!(bans.banned(a, &c), None);
        // Another address is counted apart.
        assert_eq!(bans.failure(ip("192.0.2.2"), &c), FailureVerdict::Counted);
        assert_eq!(bans.failure(a, &c), FailureVerdict::Banned(Duration::from_secs(60)));
        assert_eq!(bans.banned(a, &c), Some(Duration::from_secs(60)));
        assert_eq!(bans.banned(ip("::ffff:192.0.2.1"), &c), Some(Duration::from_secs(60)));
        assert_eq!(bans.banned(ip("192.0.2.2"), &c), None);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(bans.banned(a, &c), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(bans.banned(a, &c), None);
        // The count starts afresh after a ban.
        assert_eq!(bans.failure(a, &c), FailureVerdict::Counted);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_count() {
        let bans = BanList::default();
        let c = cfg(3, 10, 60);
        let a = ip("198.51.100.7");
        bans.failure(a, &c);
        bans.failure(a, &c);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(bans.failure(a, &c), FailureVerdict::Counted);
        assert_eq!(bans.failure(a, &c), FailureVerdict::Counted);
        assert_eq!(bans.failure(a, &c), FailureVerdict::Banned(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn allow_list_and_off_switch() {
        let bans = BanList::default();
        let mut c = cfg(1, 10, 60);
        c.allow = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(bans.failure(ip("10.1.2.3"), &c), FailureVerdict::Exempt);
        assert_eq!(bans.banned(ip("10.1.2.3"), &c), None);
        assert_eq!(bans.failure(ip("11.1.2.3"), &c), FailureVerdict::Banned(Duration::from_secs(60)));
        // Allow-listing a banned address lets it in at once.
        c.allow.push("11.1.2.3".parse().unwrap());
        assert_eq!(bans.banned(ip("11.1.2.3"), &c), None);
        c.allow.clear();
        assert!(bans.banned(ip("11.1.2.3"), &c).is_some());
        // Off: nothing counted, nothing refused.
        let off = cfg(0, 10, 60);
        assert_eq!(bans.banned(ip("11.1.2.3"), &off), None);
        assert_eq!(bans.failure(ip("12.0.0.1"), &off), FailureVerdict::Exempt);
    }

    #[tokio::test]
    async fn ipv6_counts_by_64() {
        let bans = BanList::default();
        let c = cfg(2, 10, 60);
        bans.failure(ip("2001:db8:1:2::1"), &c);
        assert!(matches!(bans.failure(ip("2001:db8:1:2::ffff"), &c), FailureVerdict::Banned(_)));
        assert!(bans.banned(ip("2001:db8:1:2:abcd::9"), &c).is_some());
        assert!(bans.banned(ip("2001:db8:1:3::1"), &c).is_none());
    }

    #[tokio::test]
    async fn the_table_is_bounded() {
        let bans = BanList::default();
        let c = cfg(5, 600, 60);
        for i in 0..(MAX_TRACKED as u32 + 10) {
            bans.failure(IpAddr::from(i.to_be_bytes()), &c);
        }
        assert!(bans.tracked() <= MAX_TRACKED, "{} tracked", bans.tracked());
    }
}
