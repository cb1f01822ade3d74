//! Graceful shutdown (SIGTERM): no new logins or commands, running
//! transfers get `timeouts.drain` seconds to finish, then the process exits.
//!
//! Idle sessions pay nothing for this: they hold no waiter. Each one learns
//! of the drain at its next command (answered 421), and the rest are closed
//! when the process exits. Only transfers are counted, by a token their
//! (already boxed) state carries.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    transfers: AtomicUsize,
    /// Woken when the last transfer ends.
    idle: Notify,
}

/// Held by a running transfer; counted until dropped.
#[derive(Debug)]
pub struct TransferToken(Arc<Drain>);

impl Drop for TransferToken {
    fn drop(&mut self) {
        if self.0.transfers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn transfer_started(self: &Arc<Self>) -> TransferToken {
        self.transfers.fetch_add(1, Ordering::AcqRel);
        TransferToken(self.clone())
    }

    pub fn running_transfers(&self) -> usize {
        self.transfers.load(Ordering::Acquire)
    }

    /// Starts draining and waits until no transfer runs or `limit` passes.
    /// Returns the transfers still running (cut off by the exit).
    pub async fn drain(&self, limit: Duration) -> usize {
        self.draining.store(true, Ordering::Release);
        let wait_idle = async {
            loop {
                let idle = self.idle.notified();
                if self.running_transfers() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait_idle).await;
        self.running_transfers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_last_transfer() {
        let drain = Arc::new(Drain::default());
        let token = drain.transfer_started();
        assert!(!drain.is_draining());
        let ended = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(token);
        });
        assert_eq!(drain.drain(Duration::from_secs(10)).await, 0);
        assert!(drain.is_draining());
        ended.await.expect("the transfer task ends");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_limit() {
        let drain = Arc::new(Drain::default());
        let _token = drain.transfer_started();
        assert_eq!(drain.drain(Duration::from_secs(30)).await, 1);
    }
}
