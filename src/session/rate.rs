//! Per-session command rate limit: a token bucket refilled at
//! `limits.commands_per_second` and holding at most `limits.command_burst`
//! commands. A command that finds the bucket empty waits for its token; a
//! session kept waiting without a break for `limits.max_throttled_seconds`
//! is closed with 421. A client that merely works fast is slowed down; one
//! that floods is cut off, and neither costs more than its share.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::LimitsConfig;

/// The bucket; 24 bytes, so it costs an idle session little.
#[derive(Debug)]
pub(super) struct CommandRate {
    /// Tokens at `updated` (fractional).
    tokens: f32,
    updated: Instant,
    /// Since when every command has had to wait.
    throttled_since: Option<Instant>,
}

/// What to do with the command just read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Pace {
    Go,
    /// Run it after this delay.
    Wait(Duration),
    /// The session has been throttled too long: close it.
    Close,
}

impl CommandRate {
    pub fn new(cfg: &LimitsConfig) -> CommandRate {
        CommandRate { tokens: cfg.command_burst as f32, updated: Instant::now(), throttled_since: None }
    }

    /// Takes a token for one command arriving at `now`.
    pub fn take(&mut self, now: Instant, cfg: &LimitsConfig) -> Pace {
        if cfg.commands_per_second == 0 {
            return Pace::Go;
        }
        let rate = cfg.commands_per_second as f32;
        let burst = cfg.command_burst.max(1) as f32;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f32();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.throttled_since = None;
            return Pace::Go;
        }
        let wait = Duration::from_secs_f32((1.0 - self.tokens) / rate);
        let since = *self.throttled_since.get_or_insert(now);
        if cfg.max_throttled_seconds > 0
            && (now + wait).duration_since(since) > Duration::from_secs(cfg.max_throttled_seconds)
        {
            return Pace::Close;
        }
        // The token this command waits for is spent when it runs.
        self.tokens -= 1.0;
        Pace::Wait(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rate: u32, burst: u32, close: u64) -> LimitsConfig {
        LimitsConfig {
            commands_per_second: rate,
            command_burst: burst,
            max_throttled_seconds: close,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn burst_then_delay_then_close() {
        let c = cfg(10, 5, 2);
        let start = Instant::now();
        let mut r = CommandRate::new(&c);
        for _ in 0..5 {
            assert_eq!(r.take(start, &c), Pace::Go);
        }
        let Pace::Wait(w) = r.take(start, &c) else { panic!("sixth command should wait") };
        assert!((Duration::from_millis(95)..=Duration::from_millis(105)).contains(&w), "{w:?}");
        // A flood served at the rate: each command arrives when the previous
        // one's wait ends and waits again, until 2 s of it.
        let mut now = start + w;
        let mut served = 0;
        loop {
            match r.take(now, &c) {
                Pace::Wait(w) => {
                    served += 1;
                    now += w;
                }
                Pace::Close => break,
                Pace::Go => panic!("a flooding session got a free token"),
            }
            assert!(served < 100, "never closed");
        }
        assert!((15..=25).contains(&served), "closed after {served} delayed commands");
    }

    #[test]
    fn a_pause_ends_the_throttling() {
        let c = cfg(10, 2, 1);
        let start = Instant::now();
        let mut r = CommandRate::new(&c);
        assert_eq!(r.take(start, &c), Pace::Go);
        assert_eq!(r.take(start, &c), Pace::Go);
        assert!(matches!(r.take(start, &c), Pace::Wait(_)));
        // A second later the bucket is full again.
        let later = start + Duration::from_secs(1);
        assert_eq!(r.take(later, &c), Pace::Go);
        assert_eq!(r.take(later, &c), Pace::Go);
        assert!(matches!(r.take(later, &c), Pace::Wait(_)));
        assert!(r.throttled_since == Some(later));
    }

    #[test]
    fn no_limit_and_never_close() {
        let now = Instant::now();
        let off = cfg(0, 0, 0);
        let mut r = CommandRate::new(&off);
        for _ in 0..10_000 {
            assert_eq!(r.take(now, &off), Pace::Go);
        }
        let slow_only = cfg(1, 1, 0);
        let mut r = CommandRate::new(&slow_only);
        assert_eq!(r.take(now, &slow_only), Pace::Go);
        let mut t = now;
        for _ in 0..1000 {
            match r.take(t, &slow_only) {
                Pace::Wait(w) => t += w,
                other => panic!("{other:?}"),
            }
        }
    }
}
