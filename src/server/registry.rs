//! Live sessions, as the web admin shows them: who is connected from where,
//! in which directory, moving which file how fast; and a way to end one.
//!
//! Kept small because every idle client pays for it: an entry is one
//! allocation (address, start time, a notifier), plus one more holding the
//! account and directory once the client has logged in. Sessions update it
//! only when something changes (login, CWD, a transfer starting or
//! ending), never per command.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::Notify;

use crate::auth::Account;
use crate::data::Progress;

/// Every session of the server.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    sessions: Mutex<HashMap<u64, Arc<Entry>>>,
    pub totals: Totals,
}

/// Counters since the server started.
#[derive(Debug, Default)]
pub struct Totals {
    pub connections: AtomicU64,
    pub logins: AtomicU64,
    pub downloads: AtomicU64,
    pub uploads: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
}

/// One session's entry.
#[derive(Debug)]
pub struct Entry {
    pub id: u64,
    pub peer: SocketAddr,
    pub since: SystemTime,
    detail: Mutex<Option<Box<Detail>>>,
    kick: Notify,
}

/// What exists once the client has logged in.
#[derive(Debug)]
struct Detail {
    account: Arc<Account>,
    cwd: Box<str>,
    transfer: Option<Box<TransferView>>,
}

/// A running transfer as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct TransferView {
    pub command: &'static str,
    pub path: String,
    pub progress: Arc<Progress>,
    pub started: Instant,
    /// The file's size for downloads, when known.
    pub size: Option<u64>,
}

/// A copy of an entry for display.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: u64,
    pub peer: SocketAddr,
    pub since: SystemTime,
    pub user: Option<String>,
    pub cwd: Option<String>,
    pub transfer: Option<TransferView>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// Adds a session; it is removed when the returned entry's guard drops.
    pub fn register(self: &Arc<Self>, peer: SocketAddr) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(Entry {
            id,
            peer,
            since: SystemTime::now(),
            detail: Mutex::new(None),
            kick: Notify::new(),
        });
        lock(&self.sessions).insert(id, entry.clone());
        self.totals.connections.fetch_add(1, Ordering::Relaxed);
        Registration { registry: self.clone(), entry }
    }

    /// All sessions, oldest first.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        let entries: Vec<Arc<Entry>> = lock(&self.sessions).values().cloned().collect();
        let mut list: Vec<Snapshot> = entries
            .iter()
            .map(|e| {
                let detail = lock(&e.detail);
                Snapshot {
                    id: e.id,
                    peer: e.peer,
                    since: e.since,
                    user: detail.as_ref().map(|d| d.account.name.clone()),
                    cwd: detail.as_ref().map(|d| d.cwd.to_string()),
                    transfer: detail.as_ref().and_then(|d| d.transfer.as_deref().cloned()),
                }
            })
            .collect();
        list.sort_by_key(|s| s.id);
        list
    }

    pub fn count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Asks session `id` to close (it answers 421 first); false if unknown.
    pub fn disconnect(&self, id: u64) -> bool {
        match lock(&self.sessions).get(&id) {
            Some(e) => {
                e.kick.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A session's handle on its entry; removes it when dropped.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    entry: Arc<Entry>,
}

impl Registration {
    /// Resolves when an administrator disconnects the session.
    pub async fn kicked(&self) {
        self.entry.kick.notified().await
    }

    pub fn logged_in(&self, account: Arc<Account>, cwd: &str) {
        self.registry.totals.logins.fetch_add(1, Ordering::Relaxed);
        *lock(&self.entry.detail) = Some(Box::new(Detail { account, cwd: cwd.into(), transfer: None }));
    }

    pub fn logged_out(&self) {
        *lock(&self.entry.detail) = None;
    }

    pub fn changed_dir(&self, cwd: &str) {
        if let Some(d) = lock(&self.entry.detail).as_mut() {
            d.cwd = cwd.into();
        }
    }

    pub fn transfer_started(&self, view: TransferView) {
        if let Some(d) = lock(&self.entry.detail).as_mut() {
            d.transfer = Some(Box::new(view));
        }
    }

    /// Clears the transfer and adds a file transfer's bytes to the totals
    /// (listings are not counted).
    pub fn transfer_ended(&self, command: &str, bytes: u64) {
        let totals = &self.registry.totals;
        let counters = match command {
            "RETR" => Some((&totals.downloads, &totals.bytes_sent)),
            "STOR" | "APPE" | "STOU" => Some((&totals.uploads, &totals.bytes_received)),
            _ => None,
        };
        if let Some((count, sum)) = counters {
            count.fetch_add(1, Ordering::Relaxed);
            sum.fetch_add(bytes, Ordering::Relaxed);
        }
        if let Some(d) = lock(&self.entry.detail).as_mut() {
            d.transfer = None;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.sessions).remove(&self.entry.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn register_snapshot_disconnect_drop() {
        let registry = Arc::new(Registry::default());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let reg = registry.register(peer);
        assert_eq!(registry.count(), 1);
        assert_eq!(registry.snapshot()[0].user, None);
        let account = Arc::new(Account {
            name: "alice".into(),
            groups: vec![],
            anonymous: false,
            root: "/tmp".into(),
            mounts: vec![],
            initial_dir: "/".into(),
            read_only: false,
            upload_dirs: vec![],
            max_sessions: None,
            module: "userdb",
            rules: vec![],
            shaping: Default::default(),
        });
        reg.logged_in(account, "/");
        reg.changed_dir("/pub");
        let s = &registry.snapshot()[0];
        assert_eq!((s.user.as_deref(), s.cwd.as_deref()), (Some("alice"), Some("/pub")));
        assert!(registry.disconnect(s.id));
        tokio::time::timeout(std::time::Duration::from_secs(5), reg.kicked()).await.expect("kicked");
        drop(reg);
        assert_eq!(registry.count(), 0);
        assert!(!registry.disconnect(s.id));
    }
}
