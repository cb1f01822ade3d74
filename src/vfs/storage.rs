//! The `Storage` trait: what a backend (local disk today, an object store
//! later) must offer the session code.
//!
//! Object-safe (`Arc<dyn Storage>`) so backends are chosen at run time;
//! listings are streams so a directory of 100,000 entries is never held in
//! memory; nothing assumes POSIX: a backend says what it cannot do through
//! [`Capabilities`] and [`StorageErrorKind::Unsupported`].

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite};

/// What kind of object a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    /// A symbolic link that could not be followed inside the root (dangling or
    /// pointing outside): listed, but never opened.
    Symlink,
}

/// Facts about one file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub kind: FileKind,
    pub len: u64,
    pub modified: Option<SystemTime>,
    /// Unix permission bits where the backend has them.
    pub mode: Option<u32>,
    /// A stable identifier (e.g. device and inode) for MLSx `unique`.
    pub unique: Option<String>,
    pub nlink: u64,
}

impl Metadata {
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub meta: Metadata,
}

/// A listing, produced lazily.
pub type EntryStream = BoxStream<'static, Result<DirEntry, StorageError>>;

/// An open file to download from.
pub enum Reader {
    /// A local file positioned at the requested offset: lets the data channel
    /// use zero-copy (`sendfile`) where the platform has it.
    File(std::fs::File),
    /// Any other byte source.
    Stream(Pin<Box<dyn AsyncRead + Send>>),
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reader::File(file) => f.debug_tuple("File").field(file).finish(),
            Reader::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// How an upload writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// STOR: create, or replace an existing file only when the upload
    /// commits (the old content stays intact until then).
    Replace,
    /// STOU: create; fail with `AlreadyExists` if the name is taken.
    CreateNew,
    /// APPE: append to the file, creating it if missing.
    Append,
    /// REST n + STOR: write from byte `n` of the existing file (resume).
    At(u64),
}

/// An upload in progress. Bytes written are not guaranteed to be visible
/// until [`Upload::commit`]; dropping it without commit aborts it (a
/// replacement is discarded and the old file stays; a new file's partial
/// content may stay so the client can resume it).
#[async_trait]
pub trait Upload: AsyncWrite + Send + Unpin {
    /// Flushes and makes the upload visible under its name. Returns the final
    /// size of the file.
    async fn commit(self: Box<Self>) -> Result<u64, StorageError>;
}

/// What a backend can do, so FEAT and replies advertise only what works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub append: bool,
    pub resume_upload: bool,
    pub set_modified: bool,
    pub set_mode: bool,
}

/// Backend-independent error kinds; the session maps them to reply codes in
/// one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    NotFound,
    PermissionDenied,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// Disk or quota full.
    NoSpace,
    /// The name is not acceptable to the backend (NUL, too long, reserved).
    InvalidName,
    /// The backend cannot do this at all.
    Unsupported,
    Other,
}

#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> StorageError {
        StorageError { kind, message: message.into() }
    }
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> StorageError {
        use io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => StorageErrorKind::NotFound,
            K::PermissionDenied => StorageErrorKind::PermissionDenied,
            K::AlreadyExists => StorageErrorKind::AlreadyExists,
            K::NotADirectory => StorageErrorKind::NotADirectory,
            K::IsADirectory => StorageErrorKind::IsADirectory,
            K::DirectoryNotEmpty => StorageErrorKind::DirectoryNotEmpty,
            K::StorageFull | K::QuotaExceeded => StorageErrorKind::NoSpace,
            K::InvalidInput | K::InvalidFilename => StorageErrorKind::InvalidName,
            K::Unsupported => StorageErrorKind::Unsupported,
            _ => match e.raw_os_error() {
                #[cfg(unix)]
                Some(code) if code == libc_enospc() => StorageErrorKind::NoSpace,
                _ => StorageErrorKind::Other,
            },
        };
        StorageError { kind, message: e.to_string() }
    }
}

#[cfg(unix)]
const fn libc_enospc() -> i32 {
    28
}

/// A storage backend. Paths are relative to the backend's root, normalised
/// by [`crate::vfs::normalize`]: `""` is the root, otherwise `a/b/c` with no
/// empty, `.` or `..` components. Backends must still refuse to resolve
/// anything outside their root.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    fn capabilities(&self) -> Capabilities;

    /// Where `path` lives in the real world (a path on disk, a URL), for
    /// permission rules and log lines.
    fn real_location(&self, path: &str) -> PathBuf;

    async fn metadata(&self, path: &str) -> Result<Metadata, StorageError>;

    /// Entries of a directory, excluding `.` and `..`, in no particular order.
    async fn list(&self, path: &str) -> Result<EntryStream, StorageError>;

    /// Opens a file for download from `offset`.
    async fn read(&self, path: &str, offset: u64) -> Result<Reader, StorageError>;

    async fn write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn Upload>, StorageError>;

    async fn make_dir(&self, path: &str) -> Result<(), StorageError>;

    /// Removes an empty directory.
    async fn remove_dir(&self, path: &str) -> Result<(), StorageError>;

    async fn remove_file(&self, path: &str) -> Result<(), StorageError>;

    /// Renames within this backend, replacing a file at `to`.
    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError>;

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<(), StorageError>;

    async fn set_mode(&self, path: &str, mode: u32) -> Result<(), StorageError>;

    /// Bytes and files in the whole tree under this backend's root, for
    /// quotas (counted once per user, at the first login).
    async fn usage(&self) -> Result<(u64, u64), StorageError>;
}
