//! Per-user quotas: most bytes and most files under the account's root.
//!
//! Usage is counted once, by walking the root when the first session of a
//! user with a quota logs in, then kept in a [`Usage`] all its sessions
//! share (the [`Registry`] holds it weakly, so it is counted afresh after
//! the last session ends and changes made outside FTP are picked up).
//! Sessions update it on every upload, DELE and RNTO over a file; only
//! files count towards the file limit (RMD removes empty directories, which
//! cost nothing). Virtual directories grafted from elsewhere do not count:
//! only the root's own tree does. A root on an object store is counted by
//! walking the store's listing instead ([`super::Storage::usage`]).
//!
//! An upload is charged as its bytes arrive ([`QuotaUpload`]): a write that
//! would pass the limit fails with "storage full" before it reaches the
//! file, so the session answers 552 and discards the upload.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::io::AsyncWrite;

use super::{StorageError, Upload};

/// A user's usage, shared by its sessions.
#[derive(Debug, Default)]
pub struct Usage {
    bytes: AtomicU64,
    files: AtomicU64,
}

impl Usage {
    pub fn new(bytes: u64, files: u64) -> Usage {
        Usage { bytes: AtomicU64::new(bytes), files: AtomicU64::new(files) }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Adds `n` bytes unless that would pass `max`; false when refused.
    pub fn try_add_bytes(&self, n: u64, max: Option<u64>) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                let new = b.saturating_add(n);
                if max.is_some_and(|m| new > m) {
                    None
                } else {
                    Some(new)
                }
            })
            .is_ok()
    }

    pub fn sub_bytes(&self, n: u64) {
        let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(n)));
    }

    pub fn add_file(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sub_file(&self) {
        let _ = self.files.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| Some(f.saturating_sub(1)));
    }

    /// Forgets a removed file of `size` bytes.
    pub fn removed(&self, size: u64) {
        self.sub_bytes(size);
        self.sub_file();
    }
}

/// The usage of every user with a session, by name.
#[derive(Debug, Default)]
pub struct Registry {
    users: Mutex<HashMap<String, Weak<Usage>>>,
}

impl Registry {
    /// The usage of `user` if a session of it holds one.
    pub fn get(&self, user: &str) -> Option<Arc<Usage>> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(user).and_then(Weak::upgrade)
    }

    /// Keeps `usage` for `user`, unless another session got there first:
    /// returns the one to use.
    pub fn insert(&self, user: &str, usage: Arc<Usage>) -> Arc<Usage> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = users.get(user).and_then(Weak::upgrade) {
            return existing;
        }
        users.retain(|_, w| w.strong_count() > 0);
        users.insert(user.to_string(), Arc::downgrade(&usage));
        usage
    }
}

/// Bytes and files under `root` (symbolic links are not followed; the
/// server's temporary uploads are skipped). Blocking.
pub fn count(root: &Path) -> io::Result<(u64, u64)> {
    if super::object::is_store_path(root) {
        // Not a directory: the server counts it through the store's own
        // listing (`Storage::usage`) at the user's first login.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a root on an object store is counted by the server at the user's login, not by this command",
        ));
    }
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() && !super::local::is_temp_name(&entry.file_name()) {
                bytes += entry.metadata()?.len();
                files += 1;
            }
        }
    }
    Ok((bytes, files))
}

/// An upload charged to a user's usage as it is written.
pub struct QuotaUpload {
    inner: Box<dyn Upload>,
    usage: Arc<Usage>,
    max_bytes: Option<u64>,
    /// Length of the file before the upload (0 if new).
    old_len: u64,
    /// The file did not exist.
    new_file: bool,
    /// Nothing stays if the upload is not committed (a replacement through
    /// a temporary file, or a backend without resumable uploads).
    discarded_on_abort: bool,
    /// Bytes charged so far.
    added: u64,
    committed: bool,
}

impl QuotaUpload {
    pub fn new(
        inner: Box<dyn Upload>,
        usage: Arc<Usage>,
        max_bytes: Option<u64>,
        old_len: Option<u64>,
        discarded_on_abort: bool,
    ) -> QuotaUpload {
        QuotaUpload {
            inner,
            usage,
            max_bytes,
            old_len: old_len.unwrap_or(0),
            new_file: old_len.is_none(),
            discarded_on_abort,
            added: 0,
            committed: false,
        }
    }
}

impl AsyncWrite for QuotaUpload {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let want = buf.len() as u64;
        if !self.usage.try_add_bytes(want, self.max_bytes) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::StorageFull, "quota exceeded")));
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.usage.sub_bytes(want - n as u64);
                this.added += n as u64;
                Poll::Ready(Ok(n))
            }
            other => {
                this.usage.sub_bytes(want);
                other
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Upload for QuotaUpload {
    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        self.committed = true;
        let inner = std::mem::replace(&mut self.inner, Box::new(Discarded));
        let size = inner.commit().await?;
        // The true change is the file's growth; what was charged may differ
        // (an overwrite frees the old content, REST rewrites part of it).
        let grown = size as i128 - self.old_len as i128 - self.added as i128;
        if grown >= 0 {
            self.usage.bytes.fetch_add(grown as u64, Ordering::Relaxed);
        } else {
            self.usage.sub_bytes(grown.unsigned_abs().min(u64::MAX as u128) as u64);
        }
        if self.new_file {
            self.usage.add_file();
        }
        Ok(size)
    }
}

impl Drop for QuotaUpload {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if self.discarded_on_abort {
            // What was written goes (the old file, if any, stays).
            self.usage.sub_bytes(self.added);
        } else if self.new_file {
            // The partial file stays (unless the session removes it and
            // calls [`Usage::removed`]).
            self.usage.add_file();
        }
    }
}

/// Stands in for the inner upload once committed.
struct Discarded;

impl AsyncWrite for Discarded {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::Error::other("upload already committed")))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl Upload for Discarded {
    async fn commit(self: Box<Self>) -> Result<u64, StorageError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_limits_and_counts() {
        let u = Usage::new(90, 3);
        assert!(u.try_add_bytes(10, Some(100)));
        assert!(!u.try_add_bytes(1, Some(100)));
        assert!(u.try_add_bytes(1, None));
        u.removed(50);
        assert_eq!((u.bytes(), u.files()), (51, 2));
        u.removed(1000);
        assert_eq!(u.bytes(), 0);
    }

    #[test]
    fn count_walks_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"12345").unwrap();
        std::fs::create_dir_all(dir.path().join("d/e")).unwrap();
        std::fs::write(dir.path().join("d/e/b"), b"123").unwrap();
        assert_eq!(count(dir.path()).unwrap(), (8, 2));
        let r = Registry::default();
        assert!(r.get("bob").is_none());
        let u = r.insert("bob", Arc::new(Usage::new(1, 1)));
        let again = r.insert("bob", Arc::new(Usage::new(9, 9)));
        assert!(Arc::ptr_eq(&u, &again));
        drop((u, again));
        assert!(r.get("bob").is_none());
    }
}
