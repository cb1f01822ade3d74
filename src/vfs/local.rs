//! The local file-system backend.
//!
//! Every path is resolved beneath the root through a capability handle
//! ([`cap_std::fs::Dir`], opened once per storage), never by string checks
//! alone: `..`, absolute symlinks and symlinks leading out of the root are
//! refused by cap-std (on Linux with `openat2(RESOLVE_BENEATH)`), with an
//! [`io::ErrorKind::PermissionDenied`] error that surfaces as
//! [`StorageErrorKind::PermissionDenied`]. Symlinks that stay inside the root
//! work normally. All paths are resolved from the root handle, so a symlink
//! in `a/b` may point to `a/c`.
//!
//! Every blocking call runs on tokio's blocking pool; the root handle is
//! shared with those closures through an `Arc`.
//!
//! Uploads that replace an existing file go to a temporary file
//! `.ferroftpd-upload.<random>.tmp` beside the target and are renamed over
//! it on commit, so the old content stays intact until the new one is
//! complete. Names with that prefix are hidden from listings and refused as
//! paths, and [`remove_stale_uploads`] sweeps leftovers at start-up.
//!
//! A committed upload is durable (`transfer.fsync`, on by default): its data
//! is flushed to the disk and so is its directory entry (after the rename of
//! a replacement, or the creation of a new file) before commit returns, so
//! the 226 a client gets survives the machine dying, not only the process.
//! A client told 226 may delete its copy; behind a load balancer it may
//! never talk to this node again.

use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use futures_util::stream::{self, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{
    Capabilities, DirEntry, EntryStream, FileKind, Metadata, Reader, Storage, StorageError, StorageErrorKind,
    Upload, WriteMode,
};

/// Prefix of in-progress replacement uploads.
pub const TEMP_PREFIX: &str = ".ferroftpd-upload.";
const TEMP_SUFFIX: &str = ".tmp";

/// Entries read per blocking call while listing: bounds the memory of a
/// listing whatever the size of the directory.
const LIST_BATCH: usize = 256;

/// A temporary upload older than this is assumed abandoned; younger ones may
/// belong to a server instance still running (e.g. during a restart).
const STALE_UPLOAD_AGE: Duration = Duration::from_secs(60);

/// How deep [`remove_stale_uploads`] descends, so a symlink loop inside the
/// root cannot keep it busy.
const STALE_SWEEP_MAX_DEPTH: usize = 32;

/// `transfer.fsync`: set from the configuration in force (at start and on
/// reload), read at each commit, so trees shared between sessions follow it.
static DURABLE_COMMITS: AtomicBool = AtomicBool::new(true);

/// Whether committed uploads are flushed to the disk (with their directory
/// entries) before the commit returns.
pub fn set_durable_commits(on: bool) {
    DURABLE_COMMITS.store(on, Ordering::Relaxed);
}

/// The local file-system backend: one open directory handle per storage.
#[derive(Debug)]
pub struct LocalStorage {
    /// Canonical root, for [`Storage::real_location`] only: never used to
    /// resolve a path.
    root: PathBuf,
    dir: Arc<Dir>,
}

impl LocalStorage {
    /// Opens `root`. Fails with `NotFound` or `NotADirectory` if it is not an
    /// existing directory. Blocking: it runs once per mount at login.
    pub fn new(root: &Path) -> Result<LocalStorage, StorageError> {
        let context = |e: io::Error| {
            let err = StorageError::from(e);
            StorageError::new(err.kind, format!("{}: {}", root.display(), err.message))
        };
        let canonical = std::fs::canonicalize(root).map_err(context)?;
        if !std::fs::metadata(&canonical).map_err(context)?.is_dir() {
            return Err(StorageError::new(
                StorageErrorKind::NotADirectory,
                format!("{}: not a directory", root.display()),
            ));
        }
        let dir = Dir::open_ambient_dir(&canonical, ambient_authority()).map_err(context)?;
        Ok(LocalStorage { root: canonical, dir: Arc::new(dir) })
    }

    /// Runs `f` with the root handle on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> Result<T, StorageError> + Send + 'static,
    {
        let dir = Arc::clone(&self.dir);
        blocking(move || f(&dir)).await
    }
}

#[async_trait]
impl Storage for LocalStorage {
    async fn usage(&self) -> Result<(u64, u64), StorageError> {
        // A walk of the whole tree: off the async workers.
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || super::quota::count(&root))
            .await
            .map_err(|e| StorageError::new(StorageErrorKind::Other, e.to_string()))?
            .map_err(|e| StorageError::new(StorageErrorKind::Other, e.to_string()))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { append: true, resume_upload: true, set_modified: true, set_mode: cfg!(unix) }
    }

    fn real_location(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }

    async fn metadata(&self, path: &str) -> Result<Metadata, StorageError> {
        let p = rel_path(path)?;
        self.run(move |dir| Ok(convert(&dir.metadata(&p)?))).await
    }

    async fn list(&self, path: &str) -> Result<EntryStream, StorageError> {
        let p = rel_path(path)?;
        let base = path.to_string();
        let root = Arc::clone(&self.dir);
        // Open here so a missing directory fails the call, not the stream.
        let entries = self.run(move |dir| Ok(dir.read_dir(&p)?)).await?;
        let lister = Lister { root, base, entries };
        let batches = stream::unfold(Some(lister), |state| async move {
            let mut lister = state?;
            let read = blocking(move || {
                let (batch, done) = lister.next_batch();
                Ok((lister, batch, done))
            })
            .await;
            match read {
                Ok((_, batch, true)) if batch.is_empty() => None,
                Ok((lister, batch, done)) => Some((batch, (!done).then_some(lister))),
                Err(e) => Some((vec![Err(e)], None)),
            }
        });
        Ok(batches.flat_map(stream::iter).boxed())
    }

    async fn read(&self, path: &str, offset: u64) -> Result<Reader, StorageError> {
        let p = rel_path(path)?;
        let name = path.to_string();
        self.run(move |dir| {
            // Checked before opening: opening a FIFO or device would block or
            // stream forever.
            existing_regular_file(dir, &p, &name)?;
            let mut file = dir.open(&p)?.into_std();
            if !file.metadata()?.is_file() {
                return Err(not_regular(&name));
            }
            file.seek(SeekFrom::Start(offset))?;
            Ok(Reader::File(file))
        })
        .await
    }

    async fn write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn Upload>, StorageError> {
        if path.is_empty() {
            return Err(StorageError::new(StorageErrorKind::IsADirectory, "/: is a directory"));
        }
        let p = rel_path(path)?;
        let name = path.to_string();
        let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
        let (file, pending) = self.run(move |dir| open_upload(dir, &p, &name, mode)).await?;
        // The directory whose entry must reach the disk for a file written
        // in place (a new one); a replacement syncs its own directory.
        let entry_dir = pending.is_none().then(|| (Arc::clone(&self.dir), parent));
        Ok(Box::new(LocalUpload { file: tokio::fs::File::from_std(file), pending, entry_dir }))
    }

    async fn make_dir(&self, path: &str) -> Result<(), StorageError> {
        if path.is_empty() {
            return Err(StorageError::new(StorageErrorKind::AlreadyExists, "/: exists"));
        }
        let p = rel_path(path)?;
        self.run(move |dir| Ok(dir.create_dir(&p)?)).await
    }

    async fn remove_dir(&self, path: &str) -> Result<(), StorageError> {
        let p = non_root(path)?;
        self.run(move |dir| Ok(dir.remove_dir(&p)?)).await
    }

    async fn remove_file(&self, path: &str) -> Result<(), StorageError> {
        let p = non_root(path)?;
        let name = path.to_string();
        self.run(move |dir| match dir.remove_file(&p) {
            Ok(()) => Ok(()),
            // Some systems (macOS) answer EPERM for unlink on a directory.
            Err(e) if dir.symlink_metadata(&p).is_ok_and(|m| m.is_dir()) => Err(StorageError::new(
                StorageErrorKind::IsADirectory,
                format!("{name}: is a directory ({e})"),
            )),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let from = non_root(from)?;
        let to = non_root(to)?;
        self.run(move |dir| Ok(dir.rename(&from, dir, &to)?)).await
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<(), StorageError> {
        let p = rel_path(path)?;
        let name = path.to_string();
        self.run(move |dir| {
            let meta = dir.metadata(&p)?;
            if !meta.is_dir() && !meta.is_file() {
                return Err(not_regular(&name));
            }
            // Windows needs write access to change times, Unix only
            // ownership; directories open read-only on Unix.
            let mut opts = OpenOptions::new();
            opts.read(true).write(cfg!(not(unix)) && meta.is_file());
            let file = dir.open_with(&p, &opts)?.into_std();
            Ok(file.set_modified(time)?)
        })
        .await
    }

    #[cfg(unix)]
    async fn set_mode(&self, path: &str, mode: u32) -> Result<(), StorageError> {
        use cap_std::fs::{Permissions, PermissionsExt};
        let p = rel_path(path)?;
        let mode = mode & 0o7777;
        // Setuid/setgid on files written by the server's account would hand
        // that account's rights to whoever can run them.
        if mode & 0o6000 != 0 {
            return Err(StorageError::new(
                StorageErrorKind::PermissionDenied,
                "setuid and setgid bits are not allowed",
            ));
        }
        self.run(move |dir| Ok(dir.set_permissions(&p, Permissions::from_mode(mode))?)).await
    }

    #[cfg(not(unix))]
    async fn set_mode(&self, _path: &str, _mode: u32) -> Result<(), StorageError> {
        Err(StorageError::new(StorageErrorKind::Unsupported, "permission bits are not supported here"))
    }
}

/// Checks a backend-relative path and turns it into one for cap-std (`.` for
/// the root). The caller normalises paths already; this guards against a
/// caller that did not.
fn rel_path(path: &str) -> Result<PathBuf, StorageError> {
    if path.is_empty() {
        return Ok(PathBuf::from("."));
    }
    for comp in path.split('/') {
        let bad = comp.is_empty()
            || comp == "."
            || comp == ".."
            || comp.contains('\0')
            || (cfg!(windows) && comp.contains(['\\', ':']));
        if bad {
            return Err(StorageError::new(StorageErrorKind::InvalidName, format!("invalid path {path:?}")));
        }
        // Hidden and swept at start-up: such a name must not be used by
        // clients, nor reach another session's upload in progress.
        if comp.starts_with(TEMP_PREFIX) {
            return Err(StorageError::new(StorageErrorKind::InvalidName, format!("reserved name {comp:?}")));
        }
    }
    Ok(PathBuf::from(path))
}

/// Like [`rel_path`], refusing the root, which cannot be removed or renamed.
fn non_root(path: &str) -> Result<PathBuf, StorageError> {
    if path.is_empty() {
        return Err(StorageError::new(StorageErrorKind::PermissionDenied, "the root cannot be changed"));
    }
    rel_path(path)
}

async fn blocking<T, F>(f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Other, format!("blocking task failed: {e}")))?
}

fn not_regular(name: &str) -> StorageError {
    StorageError::new(StorageErrorKind::PermissionDenied, format!("{name}: not a regular file"))
}

fn is_a_directory(name: &str) -> StorageError {
    StorageError::new(StorageErrorKind::IsADirectory, format!("{name}: is a directory"))
}

/// The metadata of `p` if it is a regular file (symlinks followed), `None`
/// if nothing is there; an error for directories and special files.
fn regular_file_or_missing(
    dir: &Dir,
    p: &Path,
    name: &str,
) -> Result<Option<cap_std::fs::Metadata>, StorageError> {
    match dir.metadata(p) {
        Ok(m) if m.is_file() => Ok(Some(m)),
        Ok(m) if m.is_dir() => Err(is_a_directory(name)),
        Ok(_) => Err(not_regular(name)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn existing_regular_file(dir: &Dir, p: &Path, name: &str) -> Result<cap_std::fs::Metadata, StorageError> {
    regular_file_or_missing(dir, p, name)?
        .ok_or_else(|| StorageError::new(StorageErrorKind::NotFound, format!("{name}: not found")))
}

/// Opens the file an upload writes to; for a replacement also returns the
/// temporary name to rename on commit.
fn open_upload(
    dir: &Dir,
    p: &Path,
    name: &str,
    mode: WriteMode,
) -> Result<(std::fs::File, Option<Pending>), StorageError> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    match mode {
        WriteMode::Replace => {
            // Two rounds: the target may appear between the check and the
            // exclusive create.
            for _ in 0..2 {
                if let Some(meta) = regular_file_or_missing(dir, p, name)? {
                    // Through symlinks, so an upload to a link inside the
                    // root replaces the linked file and the link stays.
                    let target = dir.canonicalize(p)?;
                    return open_replacement(dir, &target, &meta);
                }
                // No file yet: write in place so a broken upload stays
                // resumable with REST.
                match dir.open_with(p, opts.clone().create_new(true)) {
                    Ok(file) => return Ok((file.into_std(), None)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // `create_new` never follows a link: a dangling one
                        // inside the root gets its target created, as with
                        // APPE (links out of the root failed above).
                        if dir.symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
                            let file = dir.open_with(p, opts.clone().create(true).truncate(true))?;
                            return Ok((file.into_std(), None));
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(StorageError::new(StorageErrorKind::Other, format!("{name}: changed during open")))
        }
        WriteMode::CreateNew => Ok((dir.open_with(p, opts.create_new(true))?.into_std(), None)),
        WriteMode::Append => {
            regular_file_or_missing(dir, p, name)?;
            Ok((dir.open_with(p, opts.append(true).create(true))?.into_std(), None))
        }
        WriteMode::At(offset) => {
            // A file created between this check and the open is fine: it is
            // then a regular file too.
            if offset > 0 {
                existing_regular_file(dir, p, name)?;
            } else {
                regular_file_or_missing(dir, p, name)?;
            }
            let mut file = dir.open_with(p, opts.create(offset == 0))?.into_std();
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Err(not_regular(name));
            }
            if offset > meta.len() {
                return Err(StorageError::new(StorageErrorKind::Other, "restart offset beyond end of file"));
            }
            file.seek(SeekFrom::Start(offset))?;
            Ok((file, None))
        }
    }
}

/// Creates the temporary file for replacing `target`, carrying over its
/// permission bits so a replaced file keeps its mode. The target's directory
/// is opened once here and both the commit's rename and the clean-up work
/// inside that handle: a directory swapped for a symlink mid-upload cannot
/// redirect them, and the temporary file is never lost track of.
fn open_replacement(
    dir: &Dir,
    target: &Path,
    target_meta: &cap_std::fs::Metadata,
) -> Result<(std::fs::File, Option<Pending>), StorageError> {
    let parent_path = target.parent().unwrap_or(Path::new(""));
    let name = target.file_name().ok_or_else(|| not_regular(&target.to_string_lossy()))?;
    let parent =
        if parent_path.as_os_str().is_empty() { dir.try_clone()? } else { dir.open_dir(parent_path)? };
    let mut last_err = None;
    for _ in 0..8 {
        let temp = PathBuf::from(format!("{TEMP_PREFIX}{:016x}{TEMP_SUFFIX}", rand::random::<u64>()));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        match parent.open_with(&temp, &opts) {
            Ok(file) => {
                if let Err(e) = file.set_permissions(target_meta.permissions()) {
                    tracing::debug!(error = %e, "could not copy permissions to the upload");
                }
                let pending = Pending { parent: Arc::new(parent), temp, target: PathBuf::from(name) };
                return Ok((file.into_std(), Some(pending)));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_err.map_or_else(|| StorageError::new(StorageErrorKind::Other, "no temporary name"), Into::into))
}

/// A replacement in progress: the target's directory and two names in it.
#[derive(Debug)]
struct Pending {
    parent: Arc<Dir>,
    temp: PathBuf,
    target: PathBuf,
}

/// An upload to the local disk. When `pending` is set the bytes go to a
/// temporary file that is renamed over the target on commit, or removed on
/// drop.
#[derive(Debug)]
struct LocalUpload {
    file: tokio::fs::File,
    pending: Option<Pending>,
    /// For a file written in place: the root and the file's directory below
    /// it, synced on commit so a new file's name is durable too.
    entry_dir: Option<(Arc<Dir>, PathBuf)>,
}

impl AsyncWrite for LocalUpload {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.file.is_write_vectored()
    }
}

#[async_trait]
impl Upload for LocalUpload {
    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        self.file.flush().await?;
        let durable = DURABLE_COMMITS.load(Ordering::Relaxed);
        if let Some(pending) = &self.pending {
            // On disk before the rename, so a crash leaves the old file or
            // the complete new one, never a truncated one (even without
            // `transfer.fsync`: that only decides whether 226 waits for the
            // rename to be durable too).
            self.file.sync_data().await?;
            let (temp, target) = (pending.temp.clone(), pending.target.clone());
            let dir = Arc::clone(&pending.parent);
            blocking(move || {
                dir.rename(&temp, &dir, &target)?;
                if durable {
                    sync_dir(&dir)?;
                }
                Ok(())
            })
            .await?;
            self.pending = None;
        } else if durable {
            self.file.sync_data().await?;
            if let Some((root, parent)) = self.entry_dir.take() {
                blocking(move || {
                    if parent.as_os_str().is_empty() {
                        sync_dir(&root)
                    } else {
                        sync_dir(&root.open_dir(&parent)?)
                    }
                })
                .await?;
            }
        }
        Ok(self.file.metadata().await?.len())
    }
}

/// Flushes a directory's entries (a rename or a new name in it) to the
/// disk. Unix only: elsewhere directories cannot be opened for syncing, and
/// the file system journals names itself (NTFS).
fn sync_dir(dir: &Dir) -> Result<(), StorageError> {
    // Opened anew for reading: cap-std's own handle may be an O_PATH one,
    // which cannot be synced.
    #[cfg(unix)]
    dir.open_with(".", OpenOptions::new().read(true))?.into_std().sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        let Some(pending) = self.pending.take() else { return };
        let remove = move || {
            if let Err(e) = pending.parent.remove_file(&pending.temp) {
                tracing::warn!(temp = %pending.temp.display(), error = %e, "could not remove aborted upload");
            }
        };
        // Off the async workers when there is a runtime; a removal lost at
        // shutdown is caught by `remove_stale_uploads` at the next start.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// Reads a directory a batch at a time on the blocking pool.
struct Lister {
    root: Arc<Dir>,
    /// The listed directory relative to the root (`""` for the root).
    base: String,
    entries: cap_std::fs::ReadDir,
}

impl Lister {
    /// Up to [`LIST_BATCH`] entries, and whether the directory is exhausted.
    fn next_batch(&mut self) -> (Vec<Result<DirEntry, StorageError>>, bool) {
        let mut batch = Vec::with_capacity(LIST_BATCH);
        while batch.len() < LIST_BATCH {
            match self.entries.next() {
                None => return (batch, true),
                Some(Err(e)) => {
                    batch.push(Err(e.into()));
                    return (batch, true);
                }
                Some(Ok(entry)) => batch.extend(self.entry(&entry).map(Ok)),
            }
        }
        (batch, false)
    }

    fn entry(&self, entry: &cap_std::fs::DirEntry) -> Option<DirEntry> {
        let os_name = entry.file_name();
        // A lossy name could not be used to reach the file later.
        let Some(name) = os_name.to_str() else {
            tracing::debug!(dir = %self.base, name = ?os_name, "skipping a name that is not UTF-8");
            return None;
        };
        if name.starts_with(TEMP_PREFIX) {
            return None;
        }
        // Does not follow symlinks: one `fstatat` on the listed directory.
        let own = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(dir = %self.base, name, error = %e, "entry vanished while listing");
                return None;
            }
        };
        let meta = if own.file_type().is_symlink() {
            // Followed from the root, so a link may point anywhere inside it;
            // dangling or escaping links are listed as links.
            let path = if self.base.is_empty() { name.to_string() } else { format!("{}/{name}", self.base) };
            match self.root.metadata(&path) {
                Ok(target) => convert(&target),
                Err(_) => convert(&own),
            }
        } else {
            convert(&own)
        };
        Some(DirEntry { name: name.to_string(), meta })
    }
}

fn convert(m: &cap_std::fs::Metadata) -> Metadata {
    let kind = if m.is_dir() {
        FileKind::Dir
    } else if m.file_type().is_symlink() {
        FileKind::Symlink
    } else {
        // Special files (FIFOs, devices) count as files; `read` and `write`
        // refuse them.
        FileKind::File
    };
    let (mode, unique, nlink) = platform_bits(m);
    Metadata { kind, len: m.len(), modified: m.modified().ok().map(|t| t.into_std()), mode, unique, nlink }
}

#[cfg(unix)]
fn platform_bits(m: &cap_std::fs::Metadata) -> (Option<u32>, Option<String>, u64) {
    use cap_std::fs::MetadataExt;
    (Some(m.mode() & 0o7777), Some(format!("{:x}U{:x}", m.dev(), m.ino())), m.nlink())
}

#[cfg(not(unix))]
fn platform_bits(_: &cap_std::fs::Metadata) -> (Option<u32>, Option<String>, u64) {
    (None, None, 1)
}

pub(crate) fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX) && n.ends_with(TEMP_SUFFIX))
}

/// Removes temporary upload files left by a crash or a kill below `root`
/// (those older than a minute, to spare another instance's uploads in
/// progress). Blocking; meant for start-up. Returns how many were removed.
/// Unreadable subdirectories are logged and skipped; only an unreadable
/// `root` is an error.
pub fn remove_stale_uploads(root: &Path) -> io::Result<usize> {
    let dir = Dir::open_ambient_dir(root, ambient_authority())?;
    let mut removed = 0;
    sweep(&dir, root, 0, SystemTime::now(), &mut removed)?;
    Ok(removed)
}

fn sweep(dir: &Dir, shown: &Path, depth: usize, now: SystemTime, removed: &mut usize) -> io::Result<()> {
    for entry in dir.entries()? {
        let entry = entry?;
        let name = entry.file_name();
        let Ok(file_type) = entry.file_type() else { continue };
        if file_type.is_dir() {
            if depth + 1 >= STALE_SWEEP_MAX_DEPTH {
                continue;
            }
            let sub_shown = shown.join(&name);
            // Opened beneath `dir`, so a swapped-in symlink cannot lead out.
            let result = dir.open_dir(&name).and_then(|sub| sweep(&sub, &sub_shown, depth + 1, now, removed));
            if let Err(e) = result {
                tracing::warn!(dir = %sub_shown.display(), error = %e, "could not sweep for stale uploads");
            }
        } else if file_type.is_file() && is_temp_name(&name) {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t.into_std()).ok())
                .is_some_and(|age| age >= STALE_UPLOAD_AGE);
            if stale {
                match entry.remove_file() {
                    Ok(()) => *removed += 1,
                    Err(e) => tracing::warn!(
                        file = %shown.join(&name).display(), error = %e, "could not remove stale upload"
                    ),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// `unwrap_err` for results whose success type has no `Debug`.
    fn failure<T>(result: Result<T, StorageError>) -> StorageError {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    fn setup() -> (tempfile::TempDir, LocalStorage) {
        let tmp = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(tmp.path()).unwrap();
        (tmp, storage)
    }

    async fn read_all(storage: &LocalStorage, path: &str, offset: u64) -> Result<Vec<u8>, StorageError> {
        use std::io::Read;
        match storage.read(path, offset).await? {
            Reader::File(mut f) => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).unwrap();
                Ok(buf)
            }
            Reader::Stream(_) => panic!("local reads are files"),
        }
    }

    async fn upload(
        storage: &LocalStorage,
        path: &str,
        mode: WriteMode,
        data: &[u8],
    ) -> Result<u64, StorageError> {
        let mut up = storage.write(path, mode).await?;
        up.write_all(data).await.unwrap();
        up.commit().await
    }

    async fn names(storage: &LocalStorage, path: &str) -> Vec<String> {
        let mut stream = storage.list(path).await.unwrap();
        let mut out = Vec::new();
        while let Some(entry) = stream.next().await {
            out.push(entry.unwrap().name);
        }
        out.sort();
        out
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect()
    }

    #[test]
    fn new_refuses_missing_and_non_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let err = LocalStorage::new(&tmp.path().join("missing")).unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::NotFound);
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        let err = LocalStorage::new(&tmp.path().join("file")).unwrap_err();
        assert_eq!(err.kind, StorageErrorKind::NotADirectory);
    }

    #[tokio::test]
    async fn real_location_is_canonical() {
        let (tmp, storage) = setup();
        let canonical = std::fs::canonicalize(tmp.path()).unwrap();
        assert_eq!(storage.real_location(""), canonical);
        assert_eq!(storage.real_location("a/b"), canonical.join("a/b"));
    }

    #[tokio::test]
    async fn basic_operations() {
        let (tmp, storage) = setup();
        storage.make_dir("d").await.unwrap();
        assert_eq!(storage.make_dir("d").await.unwrap_err().kind, StorageErrorKind::AlreadyExists);
        assert_eq!(upload(&storage, "d/f.txt", WriteMode::Replace, b"hello").await.unwrap(), 5);
        assert_eq!(std::fs::read(tmp.path().join("d/f.txt")).unwrap(), b"hello");
        assert_eq!(read_all(&storage, "d/f.txt", 0).await.unwrap(), b"hello");
        assert_eq!(read_all(&storage, "d/f.txt", 2).await.unwrap(), b"llo");
        assert_eq!(read_all(&storage, "d/f.txt", 100).await.unwrap(), b"");
        assert_eq!(storage.read("d", 0).await.unwrap_err().kind, StorageErrorKind::IsADirectory);
        assert_eq!(storage.read("nope", 0).await.unwrap_err().kind, StorageErrorKind::NotFound);

        let meta = storage.metadata("d/f.txt").await.unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.len, 5);
        assert!(meta.modified.is_some());
        assert!(storage.metadata("").await.unwrap().is_dir());
        assert!(storage.metadata("d").await.unwrap().is_dir());

        let mut stream = storage.list("d").await.unwrap();
        let entry = stream.next().await.unwrap().unwrap();
        assert!(stream.next().await.is_none());
        assert_eq!(entry.name, "f.txt");
        assert_eq!(entry.meta, meta);
        assert_eq!(names(&storage, "").await, ["d"]);
        assert_eq!(failure(storage.list("d/f.txt").await).kind, StorageErrorKind::NotADirectory);
        assert_eq!(failure(storage.list("missing").await).kind, StorageErrorKind::NotFound);

        storage.rename("d/f.txt", "g.txt").await.unwrap();
        assert_eq!(read_all(&storage, "g.txt", 0).await.unwrap(), b"hello");
        upload(&storage, "h.txt", WriteMode::CreateNew, b"other").await.unwrap();
        storage.rename("h.txt", "g.txt").await.unwrap();
        assert_eq!(read_all(&storage, "g.txt", 0).await.unwrap(), b"other");
        storage.rename("d", "e").await.unwrap();
        assert_eq!(names(&storage, "").await, ["e", "g.txt"]);

        assert_eq!(storage.remove_file("e").await.unwrap_err().kind, StorageErrorKind::IsADirectory);
        assert_eq!(storage.remove_dir("g.txt").await.unwrap_err().kind, StorageErrorKind::NotADirectory);
        upload(&storage, "e/x", WriteMode::Replace, b"").await.unwrap();
        assert_eq!(storage.remove_dir("e").await.unwrap_err().kind, StorageErrorKind::DirectoryNotEmpty);
        storage.remove_file("e/x").await.unwrap();
        storage.remove_dir("e").await.unwrap();
        storage.remove_file("g.txt").await.unwrap();
        assert!(names(&storage, "").await.is_empty());
        assert_eq!(storage.remove_file("g.txt").await.unwrap_err().kind, StorageErrorKind::NotFound);
    }

    #[tokio::test]
    async fn root_cannot_be_removed_or_renamed() {
        let (_tmp, storage) = setup();
        assert_eq!(storage.remove_dir("").await.unwrap_err().kind, StorageErrorKind::PermissionDenied);
        assert_eq!(storage.remove_file("").await.unwrap_err().kind, StorageErrorKind::PermissionDenied);
        assert_eq!(storage.rename("", "x").await.unwrap_err().kind, StorageErrorKind::PermissionDenied);
        assert_eq!(failure(storage.write("", WriteMode::Replace).await).kind, StorageErrorKind::IsADirectory);
        assert_eq!(storage.make_dir("").await.unwrap_err().kind, StorageErrorKind::AlreadyExists);
    }

    /// With `transfer.fsync` (the default) every kind of commit syncs the
    /// file and its directory: new files at the root and below, replacements.
    #[tokio::test]
    async fn durable_commits() {
        let (tmp, storage) = setup();
        storage.make_dir("d").await.unwrap();
        for (path, mode) in [
            ("f", WriteMode::Replace),
            ("d/f", WriteMode::Replace),
            ("d/f", WriteMode::Replace),
            ("d/g", WriteMode::CreateNew),
            ("d/g", WriteMode::Append),
            ("d/h", WriteMode::At(0)),
        ] {
            upload(&storage, path, mode, b"abc").await.unwrap_or_else(|e| panic!("{path} {mode:?}: {e}"));
        }
        assert_eq!(std::fs::read(tmp.path().join("d/g")).unwrap(), b"abcabc");
    }

    #[tokio::test]
    async fn write_modes() {
        let (tmp, storage) = setup();
        upload(&storage, "f", WriteMode::CreateNew, b"abc").await.unwrap();
        let err = failure(storage.write("f", WriteMode::CreateNew).await);
        assert_eq!(err.kind, StorageErrorKind::AlreadyExists);
        assert_eq!(upload(&storage, "f", WriteMode::Append, b"def").await.unwrap(), 6);
        assert_eq!(upload(&storage, "new", WriteMode::Append, b"xy").await.unwrap(), 2);
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"abcdef");

        storage.make_dir("dir").await.unwrap();
        for mode in [WriteMode::Replace, WriteMode::Append, WriteMode::At(0), WriteMode::CreateNew] {
            let err = failure(storage.write("dir", mode).await);
            let expected = if mode == WriteMode::CreateNew {
                StorageErrorKind::AlreadyExists
            } else {
                StorageErrorKind::IsADirectory
            };
            assert_eq!(err.kind, expected, "{mode:?}");
        }
    }

    #[tokio::test]
    async fn resume_at_offset() {
        let (tmp, storage) = setup();
        // A broken first upload leaves its partial content under the name.
        let mut up = storage.write("big", WriteMode::Replace).await.unwrap();
        up.write_all(b"0123").await.unwrap();
        up.flush().await.unwrap();
        drop(up);
        assert_eq!(std::fs::read(tmp.path().join("big")).unwrap(), b"0123");

        let size = storage.metadata("big").await.unwrap().len;
        assert_eq!(upload(&storage, "big", WriteMode::At(size), b"456789").await.unwrap(), 10);
        assert_eq!(std::fs::read(tmp.path().join("big")).unwrap(), b"0123456789");
        // Rewriting the middle keeps the tail.
        assert_eq!(upload(&storage, "big", WriteMode::At(2), b"ab").await.unwrap(), 10);
        assert_eq!(std::fs::read(tmp.path().join("big")).unwrap(), b"01ab456789");

        let err = failure(storage.write("big", WriteMode::At(11)).await);
        assert_eq!(err.kind, StorageErrorKind::Other);
        let err = failure(storage.write("missing", WriteMode::At(1)).await);
        assert_eq!(err.kind, StorageErrorKind::NotFound);
        assert_eq!(upload(&storage, "fresh", WriteMode::At(0), b"z").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn replace_keeps_old_content_until_commit() {
        let (tmp, storage) = setup();
        std::fs::write(tmp.path().join("f"), b"old content").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path().join("f"), std::fs::Permissions::from_mode(0o640)).unwrap();
        }

        let mut up = storage.write("f", WriteMode::Replace).await.unwrap();
        up.write_all(b"new").await.unwrap();
        up.flush().await.unwrap();
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"old content");
        assert_eq!(temp_files(tmp.path()).len(), 1);
        // The upload in progress is invisible.
        assert_eq!(names(&storage, "").await, ["f"]);
        drop(up);
        // Removal runs on the blocking pool.
        for _ in 0..200 {
            if temp_files(tmp.path()).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(temp_files(tmp.path()).is_empty());
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"old content");

        assert_eq!(upload(&storage, "f", WriteMode::Replace, b"new").await.unwrap(), 3);
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"new");
        assert!(temp_files(tmp.path()).is_empty());
        #[cfg(unix)]
        assert_eq!(storage.metadata("f").await.unwrap().mode, Some(0o640));
    }

    #[tokio::test]
    async fn refuses_bad_components() {
        let (_tmp, storage) = setup();
        storage.make_dir("a").await.unwrap();
        for bad in [
            "..",
            "a/..",
            "../x",
            "a/../a",
            ".",
            "a/.",
            "a//b",
            "/a",
            "a/",
            "a\0b",
            ".ferroftpd-upload.1.tmp",
        ] {
            let err = storage.metadata(bad).await.unwrap_err();
            assert_eq!(err.kind, StorageErrorKind::InvalidName, "{bad:?}");
            let err = failure(storage.write(bad, WriteMode::Replace).await);
            assert_eq!(err.kind, StorageErrorKind::InvalidName, "{bad:?}");
            assert!(storage.list(bad).await.is_err());
        }
    }

    #[tokio::test]
    async fn lists_many_entries() {
        let (tmp, storage) = setup();
        for i in 0..1000 {
            std::fs::write(tmp.path().join(format!("f{i:04}")), b"").unwrap();
        }
        let names = names(&storage, "").await;
        assert_eq!(names.len(), 1000);
        assert_eq!(names.first().map(String::as_str), Some("f0000"));
        assert_eq!(names.last().map(String::as_str), Some("f0999"));
    }

    #[tokio::test]
    async fn listing_hides_temporary_uploads() {
        let (tmp, storage) = setup();
        std::fs::write(tmp.path().join(".ferroftpd-upload.abc.tmp"), b"").unwrap();
        std::fs::write(tmp.path().join(".hidden"), b"").unwrap();
        assert_eq!(names(&storage, "").await, [".hidden"]);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn skips_names_that_are_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let (tmp, storage) = setup();
        let odd = std::ffi::OsStr::from_bytes(b"bad\xff");
        if std::fs::write(tmp.path().join(odd), b"").is_err() {
            return; // the file system insists on UTF-8 (e.g. APFS)
        }
        std::fs::write(tmp.path().join("good"), b"").unwrap();
        assert_eq!(names(&storage, "").await, ["good"]);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_inside_root_work() {
        use std::os::unix::fs::symlink;
        let (tmp, storage) = setup();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::create_dir_all(tmp.path().join("c")).unwrap();
        std::fs::write(tmp.path().join("c/data"), b"inside").unwrap();
        symlink("../../c/data", tmp.path().join("a/b/rel")).unwrap();
        symlink("c", tmp.path().join("cdir")).unwrap();

        assert_eq!(read_all(&storage, "a/b/rel", 0).await.unwrap(), b"inside");
        assert_eq!(read_all(&storage, "cdir/data", 0).await.unwrap(), b"inside");
        assert!(storage.metadata("cdir").await.unwrap().is_dir());
        assert_eq!(names(&storage, "cdir").await, ["data"]);

        let mut stream = storage.list("a/b").await.unwrap();
        let entry = stream.next().await.unwrap().unwrap();
        assert_eq!(entry.name, "rel");
        assert_eq!(entry.meta.kind, FileKind::File);
        assert_eq!(entry.meta.len, 6);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_out_of_root_fail() {
        use std::os::unix::fs::symlink;
        let outer = tempfile::tempdir().unwrap();
        std::fs::create_dir(outer.path().join("root")).unwrap();
        std::fs::write(outer.path().join("outside"), b"secret").unwrap();
        let storage = LocalStorage::new(&outer.path().join("root")).unwrap();
        let root = outer.path().join("root");
        symlink("/etc", root.join("etc")).unwrap();
        symlink(outer.path().join("outside"), root.join("abs")).unwrap();
        symlink("../outside", root.join("up")).unwrap();
        symlink("..", root.join("parent")).unwrap();
        symlink("missing", root.join("dangling")).unwrap();

        for path in ["etc/passwd", "etc/hostname", "abs", "up", "parent/outside"] {
            let err = read_all(&storage, path, 0).await.unwrap_err();
            assert_eq!(err.kind, StorageErrorKind::PermissionDenied, "{path}: {err}");
            assert!(storage.metadata(path).await.is_err(), "{path}");
        }
        assert!(storage.list("etc").await.is_err());
        assert!(storage.list("parent").await.is_err());
        for mode in [WriteMode::Replace, WriteMode::Append, WriteMode::At(0)] {
            assert!(storage.write("up", mode).await.is_err(), "{mode:?}");
            assert!(storage.write("parent/outside", mode).await.is_err(), "{mode:?}");
        }
        assert!(storage.make_dir("parent/newdir").await.is_err());
        assert!(storage.rename("up", "parent/moved").await.is_err());
        assert!(storage.set_mode("up", 0o777).await.is_err());
        assert!(storage.set_modified("up", SystemTime::UNIX_EPOCH).await.is_err());
        assert_eq!(std::fs::read(outer.path().join("outside")).unwrap(), b"secret");
        assert!(!outer.path().join("newdir").exists());

        let mut entries = Vec::new();
        let mut stream = storage.list("").await.unwrap();
        while let Some(entry) = stream.next().await {
            let entry = entry.unwrap();
            entries.push((entry.name, entry.meta.kind));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = ["abs", "dangling", "etc", "parent", "up"].map(|n| (n.to_string(), FileKind::Symlink));
        assert_eq!(entries, expected);

        // Removing the link itself is harmless.
        storage.remove_file("up").await.unwrap();
        assert!(outer.path().join("outside").exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn uploads_follow_links_inside_root() {
        use std::os::unix::fs::symlink;
        let (tmp, storage) = setup();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("data"), b"old").unwrap();
        symlink("../../data", root.join("a/b/link")).unwrap();
        symlink("created", root.join("dangling")).unwrap();

        assert_eq!(upload(&storage, "a/b/link", WriteMode::Replace, b"new!").await.unwrap(), 4);
        assert_eq!(std::fs::read(root.join("data")).unwrap(), b"new!");
        assert!(std::fs::symlink_metadata(root.join("a/b/link")).unwrap().file_type().is_symlink());
        assert!(temp_files(root).is_empty() && temp_files(&root.join("a/b")).is_empty());

        for mode in [WriteMode::Replace, WriteMode::Append, WriteMode::At(0)] {
            assert_eq!(upload(&storage, "dangling", mode, b"x").await.unwrap(), 1, "{mode:?}");
            assert_eq!(std::fs::read(root.join("created")).unwrap(), b"x");
            std::fs::remove_file(root.join("created")).unwrap();
        }
        assert_eq!(
            failure(storage.write("dangling", WriteMode::CreateNew).await).kind,
            StorageErrorKind::AlreadyExists
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn special_files_are_not_opened() {
        let (tmp, storage) = setup();
        let fifo = tmp.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.is_ok_and(|s| s.success()) {
            return;
        }
        assert_eq!(storage.read("fifo", 0).await.unwrap_err().kind, StorageErrorKind::PermissionDenied);
        let err = failure(storage.write("fifo", WriteMode::Append).await);
        assert_eq!(err.kind, StorageErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn metadata_changes() {
        let (_tmp, storage) = setup();
        upload(&storage, "f", WriteMode::Replace, b"x").await.unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        storage.set_modified("f", when).await.unwrap();
        assert_eq!(storage.metadata("f").await.unwrap().modified, Some(when));
        storage.make_dir("d").await.unwrap();
        if storage.set_modified("d", when).await.is_ok() {
            assert_eq!(storage.metadata("d").await.unwrap().modified, Some(when));
        }
        #[cfg(target_os = "linux")]
        assert_eq!(storage.metadata("d").await.unwrap().modified, Some(when));
        #[cfg(unix)]
        {
            storage.set_mode("f", 0o600).await.unwrap();
            let meta = storage.metadata("f").await.unwrap();
            assert_eq!(meta.mode, Some(0o600));
            assert_eq!(meta.nlink, 1);
            assert!(meta.unique.as_deref().is_some_and(|u| u.contains('U')));
            let err = storage.set_mode("f", 0o4755).await.unwrap_err();
            assert_eq!(err.kind, StorageErrorKind::PermissionDenied);
        }
        #[cfg(not(unix))]
        assert_eq!(storage.set_mode("f", 0o600).await.unwrap_err().kind, StorageErrorKind::Unsupported);
    }

    #[test]
    fn removes_stale_uploads() {
        let tmp = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(120);
        let make = |rel: &str, age: Option<SystemTime>| {
            let path = tmp.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let file = std::fs::File::create(&path).unwrap();
            if let Some(t) = age {
                file.set_modified(t).unwrap();
            }
        };
        make(".ferroftpd-upload.1.tmp", Some(old));
        make("a/b/.ferroftpd-upload.2.tmp", Some(old));
        make("a/.ferroftpd-upload.3.tmp", None);
        make("a/.ferroftpd-upload.4.keep", Some(old));
        make("a/b/regular", Some(old));

        assert_eq!(remove_stale_uploads(tmp.path()).unwrap(), 2);
        assert!(!tmp.path().join(".ferroftpd-upload.1.tmp").exists());
        assert!(!tmp.path().join("a/b/.ferroftpd-upload.2.tmp").exists());
        assert!(tmp.path().join("a/.ferroftpd-upload.3.tmp").exists());
        assert!(tmp.path().join("a/.ferroftpd-upload.4.keep").exists());
        assert!(tmp.path().join("a/b/regular").exists());
        assert!(remove_stale_uploads(&tmp.path().join("missing")).is_err());
    }
}
