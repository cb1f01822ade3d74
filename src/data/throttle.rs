//! Bandwidth limits: token buckets that transfer loops consult before
//! moving each piece of data.
//!
//! Buckets are shared: one for all downloads of the server, one for all
//! uploads, and one per user and direction that every session of that user
//! draws from (the anonymous class shares one). The [`Registry`] holds the
//! user buckets weakly, keyed by name, so a bucket lives while a transfer
//! of its user runs and is dropped with the last one.
//!
//! Fairness: a transfer charges at most [`GRANT`] bytes at a time and the
//! bucket may go into debt; each charge waits until the debt before it is
//! paid. Two sessions of one user therefore alternate piece by piece and
//! get about half the rate each, whoever started first.
//!
//! The rate is not stored in the bucket: the [`Limiter`] asks for it at
//! every charge (from the configuration in force), so a reload changes the
//! pace of transfers already running. The arithmetic is the command-rate
//! bucket's (`session::rate`) in `f64` bytes, with a debt instead of a
//! closing rule; that bucket is tied to its configuration section and its
//! `f32` is too coarse for byte counts, so it is not reused as is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{BandwidthConfig, Rate};

/// Most bytes one charge covers: the unit of fairness between sessions.
pub const GRANT: usize = 64 * 1024;

/// Seconds of traffic a bucket may save up while idle (at least one grant).
const BURST_SECONDS: f64 = 0.1;

/// Which way data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    Download,
    Upload,
}

/// One token bucket; tokens are bytes.
#[derive(Debug)]
pub struct Bucket {
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    /// Bytes available at `updated`; negative while in debt.
    tokens: f64,
    updated: Instant,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket { state: Mutex::new(BucketState { tokens: 0.0, updated: Instant::now() }) }
    }
}

impl Bucket {
    /// Charges `bytes` at `rate` bytes per second (0: unlimited) at `now`;
    /// returns how long the caller must wait before moving them.
    pub fn charge(&self, bytes: u64, rate: u64, now: Instant) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if rate == 0 {
            s.tokens = 0.0;
            s.updated = now;
            return Duration::ZERO;
        }
        let rate = rate as f64;
        let burst = (rate * BURST_SECONDS).max(GRANT as f64);
        let elapsed = now.saturating_duration_since(s.updated).as_secs_f64();
        s.tokens = (s.tokens + elapsed * rate).min(burst);
        s.updated = now;
        s.tokens -= bytes as f64;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / rate)
        }
    }
}

/// The buckets of a server.
#[derive(Debug, Default)]
pub struct Registry {
    download: Arc<Bucket>,
    upload: Arc<Bucket>,
    users: Mutex<HashMap<(String, Way), Weak<Bucket>>>,
}

/// The key of the bucket the anonymous class shares (no user name can
/// contain a NUL).
pub const ANONYMOUS_KEY: &str = "\0anonymous";

impl Registry {
    /// The server-wide bucket of one direction.
    pub fn server(&self, way: Way) -> Arc<Bucket> {
        match way {
            Way::Download => self.download.clone(),
            Way::Upload => self.upload.clone(),
        }
    }

    /// The bucket all sessions of `key` (a user name, or [`ANONYMOUS_KEY`])
    /// share for one direction.
    pub fn user(&self, key: &str, way: Way) -> Arc<Bucket> {
        let mut users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = users.get(&(key.to_string(), way)).and_then(Weak::upgrade) {
            return bucket;
        }
        users.retain(|_, weak| weak.strong_count() > 0);
        let bucket = Arc::new(Bucket::default());
        users.insert((key.to_string(), way), Arc::downgrade(&bucket));
        bucket
    }

    /// User buckets alive now (for tests and status).
    pub fn user_buckets(&self) -> usize {
        let users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        users.values().filter(|w| w.strong_count() > 0).count()
    }
}

/// Who a transfer belongs to, as far as limits are concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub anonymous: bool,
    pub groups: Vec<String>,
    /// The account's own limits (from the user database).
    pub own_download: Option<Rate>,
    pub own_upload: Option<Rate>,
}

impl Subject {
    /// The user's limit for one direction under `cfg` (0: none): its own,
    /// else the most generous of its groups', else the anonymous class's or
    /// the default per-user one.
    pub fn rate(&self, cfg: &BandwidthConfig, way: Way) -> u64 {
        let (own, anonymous, default) = match way {
            Way::Download => (self.own_download, cfg.anonymous_download, cfg.user_download),
            Way::Upload => (self.own_upload, cfg.anonymous_upload, cfg.user_upload),
        };
        if let Some(own) = own {
            return own.0;
        }
        let group_rates = cfg
            .group
            .iter()
            .filter(|g| self.groups.contains(&g.name))
            .map(|g| match way {
                Way::Download => g.download.0,
                Way::Upload => g.upload.0,
            })
            // 0 is "no limit", the most generous of all.
            .max_by_key(|&r| if r == 0 { u64::MAX } else { r });
        if let Some(r) = group_rates {
            return r;
        }
        if self.anonymous {
            anonymous.0
        } else {
            default.0
        }
    }
}

/// The current limits of a transfer, read at every charge: `[user, server]`
/// in bytes per second (0: none).
pub type RateSource = Box<dyn Fn() -> [u64; 2] + Send + Sync>;

/// What a running transfer consults: its user's bucket and the server's.
pub struct Limiter {
    user: Arc<Bucket>,
    server: Arc<Bucket>,
    rates: RateSource,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("rates", &(self.rates)()).finish()
    }
}

impl Limiter {
    pub fn new(user: Arc<Bucket>, server: Arc<Bucket>, rates: RateSource) -> Limiter {
        Limiter { user, server, rates }
    }

    /// A limiter that never waits (tests, tools).
    pub fn unlimited() -> Limiter {
        Limiter::new(Arc::default(), Arc::default(), Box::new(|| [0, 0]))
    }

    /// True if a limit applies now.
    pub fn limited(&self) -> bool {
        (self.rates)() != [0, 0]
    }

    /// Charges `bytes` (at most [`GRANT`] for fairness) to both buckets and
    /// waits until they may move.
    pub async fn pace(&self, bytes: usize) {
        let [user, server] = (self.rates)();
        if user == 0 && server == 0 {
            return;
        }
        let now = Instant::now();
        let wait =
            self.user.charge(bytes as u64, user, now).max(self.server.charge(bytes as u64, server, now));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupRate;

    #[test]
    fn bucket_paces_at_the_rate() {
        let b = Bucket::default();
        let start = Instant::now();
        // 1 MiB at 1 MiB/s in grants: the last grant waits about a second.
        let mut wait = Duration::ZERO;
        for _ in 0..16 {
            wait = b.charge(GRANT as u64, 1 << 20, start);
        }
        assert!((Duration::from_millis(990)..=Duration::from_millis(1010)).contains(&wait), "{wait:?}");
        // Two seconds later the debt is paid and a grant saved up.
        let later = start + Duration::from_secs(2);
        assert_eq!(b.charge(GRANT as u64, 1 << 20, later), Duration::ZERO);
        // Unlimited never waits and clears the debt.
        for _ in 0..100 {
            assert_eq!(b.charge(1 << 30, 0, later), Duration::ZERO);
        }
        assert!(b.charge(1000, 1 << 20, later) <= Duration::from_millis(1));
    }

    #[test]
    fn two_takers_alternate() {
        // Two sessions charging in turn each wait for the other's piece too:
        // together they move at the rate, each at half of it.
        let b = Bucket::default();
        let now = Instant::now();
        let rate = 4 * GRANT as u64; // 4 grants per second
        let waits: Vec<Duration> = (0..8).map(|_| b.charge(GRANT as u64, rate, now)).collect();
        for (i, w) in waits.iter().enumerate() {
            let expected = (i + 1) as f64 / 4.0;
            assert!((w.as_secs_f64() - expected).abs() < 0.001, "charge {i}: {w:?}");
        }
    }

    #[test]
    fn a_lower_rate_applies_to_the_next_charge() {
        let b = Bucket::default();
        let now = Instant::now();
        b.charge(GRANT as u64, 1 << 30, now);
        let slow = b.charge(GRANT as u64, GRANT as u64, now);
        assert!(slow >= Duration::from_millis(990), "{slow:?}");
    }

    #[test]
    fn registry_shares_and_drops_user_buckets() {
        let r = Registry::default();
        let a = r.user("alice", Way::Download);
        let a2 = r.user("alice", Way::Download);
        assert!(Arc::ptr_eq(&a, &a2));
        let up = r.user("alice", Way::Upload);
        assert!(!Arc::ptr_eq(&a, &up));
        assert_eq!(r.user_buckets(), 2);
        drop((a, a2, up));
        assert_eq!(r.user_buckets(), 0);
        let _b = r.user("bob", Way::Download);
        assert_eq!(r.users.lock().unwrap().len(), 1, "dead entries are pruned");
        assert!(Arc::ptr_eq(&r.server(Way::Upload), &r.server(Way::Upload)));
    }

    #[test]
    fn rate_precedence() {
        let cfg = BandwidthConfig {
            user_download: Rate(100),
            anonymous_download: Rate(50),
            group: vec![
                GroupRate { name: "staff".into(), download: Rate(1000), upload: Rate(7) },
                GroupRate { name: "vip".into(), download: Rate(0), upload: Rate(9) },
                GroupRate { name: "slow".into(), download: Rate(10), upload: Rate(0) },
            ],
            ..BandwidthConfig::default()
        };
        let plain = Subject::default();
        assert_eq!(plain.rate(&cfg, Way::Download), 100);
        assert_eq!(plain.rate(&cfg, Way::Upload), 0);
        let anon = Subject { anonymous: true, ..Subject::default() };
        assert_eq!(anon.rate(&cfg, Way::Download), 50);
        let staff = Subject { groups: vec!["staff".into(), "slow".into()], ..Subject::default() };
        assert_eq!(staff.rate(&cfg, Way::Download), 1000, "the most generous group");
        assert_eq!(staff.rate(&cfg, Way::Upload), 0, "a group without limit");
        let vip = Subject { groups: vec!["vip".into()], ..Subject::default() };
        assert_eq!(vip.rate(&cfg, Way::Download), 0);
        let own = Subject { groups: vec!["staff".into()], own_download: Some(Rate(5)), ..Subject::default() };
        assert_eq!(own.rate(&cfg, Way::Download), 5, "the user's own limit wins");
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_waits_for_both_buckets() {
        let l = Limiter::new(Arc::default(), Arc::default(), Box::new(|| [0, GRANT as u64]));
        assert!(l.limited());
        let start = Instant::now();
        l.pace(GRANT).await;
        l.pace(GRANT).await;
        l.pace(GRANT).await;
        let took = start.elapsed();
        assert!((Duration::from_millis(2990)..=Duration::from_millis(3010)).contains(&took), "{took:?}");
        assert!(!Limiter::unlimited().limited());
    }
}
