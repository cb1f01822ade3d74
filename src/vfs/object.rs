//! The object-store backend: any S3-compatible store (AWS S3, MinIO, Ceph
//! RGW, Garage) behind the [`Storage`] trait, through opendal's S3 service.
//!
//! A store is configured once (`[stores.NAME]`) and used as an account's
//! root or as a virtual directory, written `store:NAME/prefix`. Everything
//! below that prefix maps to object keys:
//!
//! - a file `a/b` is the object `prefix/a/b`; a directory `a` is the common
//!   prefix `prefix/a/` (objects below it), plus the empty marker object
//!   `prefix/a/` that MKD writes so an empty directory exists;
//! - RETR streams a ranged GET from the REST offset;
//! - STOR streams a multipart upload in parts of `part_size`: at most one
//!   part is buffered and one in flight, whatever the file size. The object
//!   appears only when CompleteMultipartUpload succeeds, which is when
//!   [`Upload::commit`] returns (so the 226 follows it); an upload dropped
//!   before that is aborted and leaves no object, and an existing object is
//!   replaced only on success;
//! - listings stream the store's paged listing with `/` as delimiter;
//! - RNFR/RNTO is a server-side copy then a delete (files only);
//! - what an object store cannot do (append, resume at an offset, set
//!   times or modes) fails with [`StorageErrorKind::Unsupported`] (502)
//!   and is absent from [`Capabilities`].
//!
//! No session state lives here: stores are opened once per configuration
//! ([`configure`]) and shared, so sessions that never touch a store pay
//! nothing for it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{StreamExt, TryStreamExt};
use futures_util::FutureExt;
use opendal::{EntryMode, ErrorKind as OdErrorKind, Operator};
use tokio::io::AsyncWrite;

use crate::config::StoreConfig;

use super::{
    Capabilities, DirEntry, EntryStream, FileKind, Metadata, Reader, Storage, StorageError, StorageErrorKind,
    Upload, WriteMode,
};

/// How a root or a mount names a store: `store:NAME` or `store:NAME/prefix`.
pub const SCHEME: &str = "store:";

/// Default size of one part of a multipart upload.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// S3's bounds on a part (the last part may be smaller).
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;

/// Keys fetched per listing request (the store's page size).
const LIST_PAGE: usize = 1000;

/// A store reference parsed from a root or a mount's real path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRef {
    pub store: String,
    /// Normalised key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl StoreRef {
    /// `store:NAME[/prefix]` → the store and its prefix; `None` for a path
    /// that names no store (a local directory). Errors describe a malformed
    /// reference.
    pub fn parse(real: &Path) -> Option<Result<StoreRef, String>> {
        let text = real.to_str()?;
        let rest = text.strip_prefix(SCHEME)?;
        let (store, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if store.is_empty()
            || !store.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Some(Err(format!(
                "`{}`: write store:NAME or store:NAME/prefix, NAME of letters, digits, `-`, `_` or `.`",
                text.escape_debug()
            )));
        }
        let mut parts = Vec::new();
        for part in prefix.split('/') {
            match part {
                "" | "." => {}
                ".." => return Some(Err(format!("`{}`: `..` in a store prefix", text.escape_debug()))),
                p if p.chars().any(char::is_control) => {
                    return Some(Err(format!(
                        "`{}`: control character in a store prefix",
                        text.escape_debug()
                    )))
                }
                p => parts.push(p),
            }
        }
        Some(Ok(StoreRef { store: store.to_string(), prefix: parts.join("/") }))
    }
}

/// True if `real` names a store rather than a local directory.
pub fn is_store_path(real: &Path) -> bool {
    real.to_str().is_some_and(|s| s.starts_with(SCHEME))
}

#[derive(Debug)]
struct OpenStore {
    config: StoreConfig,
    op: Operator,
}

type Stores = HashMap<String, Arc<OpenStore>>;

fn stores() -> &'static RwLock<Stores> {
    static STORES: std::sync::OnceLock<RwLock<Stores>> = std::sync::OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// opendal's HTTP client (built once, with the first operator of any kind)
/// uses rustls with the process's default provider: the server's, ring
/// (its own TLS configurations name it explicitly).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the opendal operator of the store `name` (no network traffic).
pub fn open_operator(name: &str, s: &StoreConfig) -> Result<Operator, StorageError> {
    install_crypto_provider();
    let mut builder = opendal::services::S3::default().bucket(&s.bucket).region(&s.region).root("/");
    if !s.endpoint.is_empty() {
        builder = builder.endpoint(&s.endpoint);
    }
    if !s.path_style {
        builder = builder.enable_virtual_host_style();
    }
    let key = s.access_key_id.clone().or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok());
    let secret = s.secret_access_key.clone().or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok());
    if let (Some(key), Some(secret)) = (&key, &secret) {
        builder = builder.access_key_id(key).secret_access_key(secret);
        if s.access_key_id.is_none() {
            if let Ok(token) = std::env::var("AWS_SESSION_TOKEN") {
                builder = builder.session_token(&token);
            }
        }
        // Credentials given: never look further (files, instance metadata).
        builder = builder.disable_config_load().disable_ec2_metadata();
    }
    let op = Operator::new(builder)
        .map_err(|e| map_err(name, e))?
        .layer(
            opendal::layers::TimeoutLayer::new()
                .with_timeout(Duration::from_secs(120))
                .with_io_timeout(Duration::from_secs(60)),
        )
        .layer(
            opendal::layers::RetryLayer::new()
                .with_jitter()
                .with_max_times(6)
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5)),
        )
        .finish();
    Ok(op)
}

/// Puts the configured stores in force (at start and on reload). Trees
/// already open keep the store they were opened with until their last
/// session ends.
pub fn configure(configured: &BTreeMap<String, StoreConfig>) -> Result<(), StorageError> {
    let mut open = Stores::new();
    for (name, s) in configured {
        let existing = stores().read().ok().and_then(|g| g.get(name).cloned());
        let store = match existing {
            Some(old) if old.config == *s => old,
            _ => Arc::new(OpenStore { config: s.clone(), op: open_operator(name, s)? }),
        };
        open.insert(name.clone(), store);
    }
    match stores().write() {
        Ok(mut guard) => *guard = open,
        Err(poisoned) => *poisoned.into_inner() = open,
    }
    Ok(())
}

/// The object-store backend for one `store:NAME/prefix`.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<str>,
    op: Operator,
    /// `""` or `prefix/`.
    prefix: String,
    part_size: usize,
}

impl ObjectStorage {
    /// Opens a configured store below `prefix`. No network traffic.
    pub fn open(r: &StoreRef) -> Result<ObjectStorage, StorageError> {
        let store = stores().read().ok().and_then(|g| g.get(&r.store).cloned()).ok_or_else(|| {
            StorageError::new(StorageErrorKind::NotFound, format!("store `{}` is not configured", r.store))
        })?;
        Ok(ObjectStorage::with_operator(
            &r.store,
            store.op.clone(),
            &r.prefix,
            store.config.part_size.bytes(),
        ))
    }

    pub fn with_operator(name: &str, op: Operator, prefix: &str, part_size: u64) -> ObjectStorage {
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let part_size = usize::try_from(part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE)).unwrap_or(usize::MAX);
        ObjectStorage { store: Arc::from(name), op, prefix, part_size }
    }

    /// The object key of a file.
    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// The key prefix of a directory (`""` for the bucket's root).
    fn dir_key(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{rel}/", self.prefix)
        }
    }

    fn err(&self, e: opendal::Error) -> StorageError {
        map_err(&self.store, e)
    }

    /// The file at `rel`, if there is one.
    async fn file_meta(&self, rel: &str) -> Result<Option<Metadata>, StorageError> {
        if rel.is_empty() {
            return Ok(None);
        }
        match self.op.stat(&self.key(rel)).await {
            Ok(m) if m.mode() == EntryMode::FILE => Ok(Some(convert(&m, FileKind::File))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == OdErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Whether anything lives below the directory `rel` (its marker or any
    /// object), and whether something other than the marker does.
    async fn dir_state(&self, rel: &str) -> Result<(bool, bool), StorageError> {
        let dir = self.dir_key(rel);
        let mut lister = self.op.lister_with(&dir).limit(3).await.map_err(|e| self.err(e))?;
        let mut exists = false;
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(|e| self.err(e))?;
            exists = true;
            if entry.path() != dir {
                return Ok((true, true));
            }
        }
        Ok((exists, false))
    }

    async fn is_dir(&self, rel: &str) -> Result<bool, StorageError> {
        if rel.is_empty() {
            return Ok(true);
        }
        Ok(self.dir_state(rel).await?.0)
    }
}

fn dir_meta() -> Metadata {
    Metadata { kind: FileKind::Dir, len: 0, modified: None, mode: None, unique: None, nlink: 1 }
}

fn convert(m: &opendal::Metadata, kind: FileKind) -> Metadata {
    Metadata {
        kind,
        len: if kind == FileKind::File { m.content_length() } else { 0 },
        modified: m.last_modified().map(SystemTime::from),
        mode: None,
        unique: None,
        nlink: 1,
    }
}

/// The one mapping from opendal's errors to the storage error kinds.
pub fn map_err(store: &str, e: opendal::Error) -> StorageError {
    let kind = match e.kind() {
        OdErrorKind::NotFound => StorageErrorKind::NotFound,
        OdErrorKind::PermissionDenied => StorageErrorKind::PermissionDenied,
        OdErrorKind::AlreadyExists | OdErrorKind::ConditionNotMatch => StorageErrorKind::AlreadyExists,
        OdErrorKind::IsADirectory => StorageErrorKind::IsADirectory,
        OdErrorKind::NotADirectory => StorageErrorKind::NotADirectory,
        OdErrorKind::Unsupported => StorageErrorKind::Unsupported,
        _ => StorageErrorKind::Other,
    };
    StorageError::new(kind, format!("store {store}: {e}"))
}

fn unsupported(what: &str) -> StorageError {
    StorageError::new(StorageErrorKind::Unsupported, format!("{what}: not supported by an object store"))
}

#[async_trait]
impl Storage for ObjectStorage {
    /// Walks the recursive listing (no delimiter), a page at a time.
    async fn usage(&self) -> Result<(u64, u64), StorageError> {
        let mut lister = self.op.lister_with(&self.prefix).recursive(true).await.map_err(|e| self.err(e))?;
        let (mut bytes, mut files) = (0u64, 0u64);
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(|e| self.err(e))?;
            if entry.metadata().mode() == EntryMode::FILE && !entry.path().ends_with('/') {
                bytes = bytes.saturating_add(entry.metadata().content_length());
                files += 1;
            }
        }
        Ok((bytes, files))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { append: false, resume_upload: false, set_modified: false, set_mode: false }
    }

    fn real_location(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("{SCHEME}{}/{}", self.store, self.key(path)))
    }

    async fn metadata(&self, path: &str) -> Result<Metadata, StorageError> {
        if let Some(meta) = self.file_meta(path).await? {
            return Ok(meta);
        }
        if self.is_dir(path).await? {
            return Ok(dir_meta());
        }
        Err(StorageError::new(StorageErrorKind::NotFound, format!("{}: not found", self.key(path))))
    }

    async fn list(&self, path: &str) -> Result<EntryStream, StorageError> {
        if !path.is_empty() && !self.is_dir(path).await? {
            return Err(match self.file_meta(path).await? {
                Some(_) => {
                    StorageError::new(StorageErrorKind::NotADirectory, format!("{path}: not a directory"))
                }
                None => StorageError::new(StorageErrorKind::NotFound, format!("{path}: not found")),
            });
        }
        let dir = self.dir_key(path);
        let lister = self.op.lister_with(&dir).limit(LIST_PAGE).await.map_err(|e| self.err(e))?;
        let store = Arc::clone(&self.store);
        let entries = lister.map_err(move |e| map_err(&store, e)).try_filter_map(move |entry| {
            let name = entry.path().strip_prefix(dir.as_str()).unwrap_or("").trim_end_matches('/');
            let out = if name.is_empty() || name.contains('/') {
                None
            } else if entry.path().ends_with('/') || entry.metadata().mode() == EntryMode::DIR {
                Some(DirEntry { name: name.to_string(), meta: dir_meta() })
            } else {
                Some(DirEntry { name: name.to_string(), meta: convert(entry.metadata(), FileKind::File) })
            };
            futures_util::future::ready(Ok(out))
        });
        Ok(entries.boxed())
    }

    async fn read(&self, path: &str, offset: u64) -> Result<Reader, StorageError> {
        let Some(meta) = self.file_meta(path).await? else {
            return Err(if self.is_dir(path).await? {
                StorageError::new(StorageErrorKind::IsADirectory, format!("{path}: is a directory"))
            } else {
                StorageError::new(StorageErrorKind::NotFound, format!("{path}: not found"))
            });
        };
        let key = self.key(path);
        if offset >= meta.len {
            return Ok(Reader::Stream(Box::pin(tokio::io::empty())));
        }
        let reader = self.op.reader(&key).await.map_err(|e| self.err(e))?;
        // One streaming ranged GET from the offset to the size seen above.
        let stream = reader.into_bytes_stream(offset..meta.len).await.map_err(|e| self.err(e))?;
        Ok(Reader::Stream(Box::pin(tokio_util::io::StreamReader::new(stream))))
    }

    async fn write(&self, path: &str, mode: WriteMode) -> Result<Box<dyn Upload>, StorageError> {
        if path.is_empty() {
            return Err(StorageError::new(StorageErrorKind::IsADirectory, "/: is a directory"));
        }
        match mode {
            WriteMode::Replace | WriteMode::At(0) => {}
            WriteMode::CreateNew => {
                if self.file_meta(path).await?.is_some() {
                    return Err(StorageError::new(
                        StorageErrorKind::AlreadyExists,
                        format!("{path}: exists"),
                    ));
                }
            }
            WriteMode::Append => return Err(unsupported("append (APPE)")),
            WriteMode::At(_) => return Err(unsupported("resuming an upload (REST+STOR)")),
        }
        if self.is_dir(path).await? {
            return Err(StorageError::new(StorageErrorKind::IsADirectory, format!("{path}: is a directory")));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if self.file_meta(parent).await?.is_some() {
                return Err(StorageError::new(
                    StorageErrorKind::NotADirectory,
                    format!("{parent}: not a directory"),
                ));
            }
        }
        let writer = self
            .op
            .writer_with(&self.key(path))
            .chunk(self.part_size)
            .concurrent(1)
            .await
            .map_err(|e| self.err(e))?;
        Ok(Box::new(ObjectUpload {
            store: Arc::clone(&self.store),
            writer: Some(writer),
            buf: Vec::new(),
            part_size: self.part_size,
            pending: None,
            written: 0,
            multipart: false,
            done: false,
        }))
    }

    async fn make_dir(&self, path: &str) -> Result<(), StorageError> {
        if path.is_empty() || self.file_meta(path).await?.is_some() || self.is_dir(path).await? {
            return Err(StorageError::new(StorageErrorKind::AlreadyExists, format!("{path}: exists")));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !self.is_dir(parent).await? {
                return Err(StorageError::new(StorageErrorKind::NotFound, format!("{parent}: not found")));
            }
        }
        self.op.create_dir(&self.dir_key(path)).await.map_err(|e| self.err(e))
    }

    async fn remove_dir(&self, path: &str) -> Result<(), StorageError> {
        if path.is_empty() {
            return Err(StorageError::new(StorageErrorKind::PermissionDenied, "/: is the root"));
        }
        match self.dir_state(path).await? {
            (false, _) => Err(match self.file_meta(path).await? {
                Some(_) => {
                    StorageError::new(StorageErrorKind::NotADirectory, format!("{path}: not a directory"))
                }
                None => StorageError::new(StorageErrorKind::NotFound, format!("{path}: not found")),
            }),
            (true, true) => Err(StorageError::new(
                StorageErrorKind::DirectoryNotEmpty,
                format!("{path}: directory not empty"),
            )),
            (true, false) => self.op.delete(&self.dir_key(path)).await.map_err(|e| self.err(e)),
        }
    }

    async fn remove_file(&self, path: &str) -> Result<(), StorageError> {
        if self.file_meta(path).await?.is_none() {
            return Err(if self.is_dir(path).await? {
                StorageError::new(StorageErrorKind::IsADirectory, format!("{path}: is a directory"))
            } else {
                StorageError::new(StorageErrorKind::NotFound, format!("{path}: not found"))
            });
        }
        self.op.delete(&self.key(path)).await.map_err(|e| self.err(e))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        if from.is_empty() || to.is_empty() {
            return Err(StorageError::new(StorageErrorKind::PermissionDenied, "/: is the root"));
        }
        if self.file_meta(from).await?.is_none() {
            return Err(if self.is_dir(from).await? {
                // Every object below the prefix would have to be copied.
                unsupported("renaming a directory")
            } else {
                StorageError::new(StorageErrorKind::NotFound, format!("{from}: not found"))
            });
        }
        if from == to {
            return Ok(());
        }
        if self.is_dir(to).await? {
            return Err(StorageError::new(StorageErrorKind::IsADirectory, format!("{to}: is a directory")));
        }
        // Server-side copy, then delete: the source goes only once the copy exists.
        self.op.copy(&self.key(from), &self.key(to)).await.map_err(|e| self.err(e))?;
        self.op.delete(&self.key(from)).await.map_err(|e| self.err(e))
    }

    async fn set_modified(&self, _path: &str, _time: SystemTime) -> Result<(), StorageError> {
        Err(unsupported("setting a modification time (MFMT)"))
    }

    async fn set_mode(&self, _path: &str, _mode: u32) -> Result<(), StorageError> {
        Err(unsupported("setting permissions (SITE CHMOD)"))
    }
}

type PartFuture = BoxFuture<'static, (opendal::Writer, opendal::Result<()>)>;

/// A multipart upload in progress: bytes gather in one part-sized buffer;
/// a full buffer is handed to the store while the next one fills, so at
/// most one part is buffered and one in flight.
struct ObjectUpload {
    store: Arc<str>,
    /// `None` while a part is in flight (the future owns it).
    writer: Option<opendal::Writer>,
    /// The part being filled: grows with the data up to `part_size`, so a
    /// small file never costs a whole part.
    buf: Vec<u8>,
    part_size: usize,
    pending: Option<PartFuture>,
    written: u64,
    /// A part has been sent: the file is large, later parts are allocated whole.
    multipart: bool,
    /// Committed: nothing to abort.
    done: bool,
}

impl ObjectUpload {
    /// Waits for the part in flight, if any.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(fut) = self.pending.as_mut() {
            let (writer, result) = std::task::ready!(fut.as_mut().poll(cx));
            self.pending = None;
            self.writer = Some(writer);
            if let Err(e) = result {
                return Poll::Ready(Err(to_io(&self.store, e)));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn send_part(&mut self) -> std::io::Result<()> {
        let Some(mut writer) = self.writer.take() else {
            return Err(std::io::Error::other("upload writer lost"));
        };
        let part = Bytes::from(std::mem::take(&mut self.buf));
        self.multipart = true;
        self.pending = Some(
            async move {
                let r = writer.write(part).await;
                (writer, r)
            }
            .boxed(),
        );
        Ok(())
    }
}

fn to_io(store: &str, e: opendal::Error) -> std::io::Error {
    let err = map_err(store, e);
    let kind = match err.kind {
        StorageErrorKind::NoSpace => std::io::ErrorKind::StorageFull,
        StorageErrorKind::PermissionDenied => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, err.message)
}

impl AsyncWrite for ObjectUpload {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= this.part_size {
            std::task::ready!(this.poll_pending(cx))?;
            this.send_part()?;
        }
        let n = data.len().min(this.part_size - this.buf.len());
        if this.buf.capacity() - this.buf.len() < n {
            // Exact growth, doubling from 64 KiB, never past one part; after
            // the first part, whole parts at once.
            let want = if this.multipart {
                this.part_size
            } else {
                (this.buf.capacity() * 2).max(64 << 10).max(this.buf.len() + n).min(this.part_size)
            };
            this.buf.reserve_exact(want - this.buf.len());
        }
        this.buf.extend_from_slice(&data[..n]);
        this.written += n as u64;
        // Drive the part in flight without waiting for it.
        if this.pending.is_some() {
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Bytes are durable only at commit; flushing waits for the part in flight.
        self.get_mut().poll_pending(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[async_trait]
impl Upload for ObjectUpload {
    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let store = Arc::clone(&self.store);
        std::future::poll_fn(|cx| self.poll_pending(cx)).await.map_err(StorageError::from)?;
        let Some(mut writer) = self.writer.take() else {
            return Err(StorageError::new(StorageErrorKind::Other, "upload writer lost"));
        };
        let last = Bytes::from(std::mem::take(&mut self.buf));
        let result = async {
            if !last.is_empty() {
                writer.write(last).await?;
            }
            writer.close().await
        }
        .await;
        match result {
            Ok(_) => {
                self.done = true;
                Ok(self.written)
            }
            Err(e) => {
                // Put it back so dropping the upload aborts it.
                self.writer = Some(writer);
                Err(map_err(&store, e))
            }
        }
    }
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let pending = self.pending.take();
        let writer = self.writer.take();
        let store = Arc::clone(&self.store);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Abort the multipart upload: the store drops its parts and no object
        // appears (an existing one stays as it was).
        runtime.spawn(async move {
            let writer = match (pending, writer) {
                (Some(fut), _) => Some(fut.await.0),
                (None, w) => w,
            };
            if let Some(mut writer) = writer {
                if let Err(e) = writer.abort().await {
                    tracing::warn!(store = %store, error = %e, "cannot abort an unfinished multipart upload");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refs_parse() {
        let p = |s: &str| StoreRef::parse(Path::new(s));
        assert_eq!(p("/srv/ftp"), None);
        assert_eq!(p("store:s3"), Some(Ok(StoreRef { store: "s3".into(), prefix: String::new() })));
        assert_eq!(p("store:s3/"), Some(Ok(StoreRef { store: "s3".into(), prefix: String::new() })));
        assert_eq!(
            p("store:a.b-c_d//x/./y/"),
            Some(Ok(StoreRef { store: "a.b-c_d".into(), prefix: "x/y".into() }))
        );
        assert!(matches!(p("store:"), Some(Err(_))));
        assert!(matches!(p("store:/x"), Some(Err(_))));
        assert!(matches!(p("store:a b/x"), Some(Err(_))));
        assert!(matches!(p("store:s3/../x"), Some(Err(_))));
        assert!(matches!(p("store:s3/a\nb"), Some(Err(_))));
        assert!(is_store_path(Path::new("store:x")));
        assert!(!is_store_path(Path::new("/store:x")));
    }

    #[test]
    fn errors_map_to_kinds() {
        let e = |k| map_err("s", opendal::Error::new(k, "x")).kind;
        assert_eq!(e(OdErrorKind::NotFound), StorageErrorKind::NotFound);
        assert_eq!(e(OdErrorKind::PermissionDenied), StorageErrorKind::PermissionDenied);
        assert_eq!(e(OdErrorKind::Unsupported), StorageErrorKind::Unsupported);
        assert_eq!(e(OdErrorKind::ConditionNotMatch), StorageErrorKind::AlreadyExists);
        assert_eq!(e(OdErrorKind::Unexpected), StorageErrorKind::Other);
    }

    fn stores_named(name: &str) -> BTreeMap<String, StoreConfig> {
        let config = StoreConfig {
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "b".into(),
            region: "garage".into(),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..StoreConfig::default()
        };
        BTreeMap::from([(name.to_string(), config)])
    }

    #[tokio::test]
    async fn stores_open_by_name_and_refuse_what_objects_cannot_do() {
        configure(&stores_named("unit-a")).unwrap();
        let missing = ObjectStorage::open(&StoreRef { store: "nope".into(), prefix: String::new() });
        assert_eq!(missing.unwrap_err().kind, StorageErrorKind::NotFound);
        let s = ObjectStorage::open(&StoreRef { store: "unit-a".into(), prefix: "p/q".into() }).unwrap();
        assert_eq!(s.real_location("a/b"), PathBuf::from("store:unit-a/p/q/a/b"));
        assert_eq!(s.key("a"), "p/q/a");
        assert_eq!(s.dir_key("a"), "p/q/a/");
        assert_eq!(s.dir_key(""), "p/q/");
        let caps = s.capabilities();
        assert!(!caps.append && !caps.resume_upload && !caps.set_modified && !caps.set_mode);
        // Refused before any request (the endpoint is unreachable).
        assert_eq!(s.write("f", WriteMode::Append).await.err().unwrap().kind, StorageErrorKind::Unsupported);
        assert_eq!(s.write("f", WriteMode::At(5)).await.err().unwrap().kind, StorageErrorKind::Unsupported);
        assert_eq!(s.set_mode("f", 0o644).await.unwrap_err().kind, StorageErrorKind::Unsupported);
        assert_eq!(
            s.set_modified("f", SystemTime::UNIX_EPOCH).await.unwrap_err().kind,
            StorageErrorKind::Unsupported
        );
    }

    #[test]
    fn part_size_is_clamped_to_what_s3_accepts() {
        let op = open_operator("unit-b", &stores_named("unit-b")["unit-b"]).unwrap();
        assert_eq!(ObjectStorage::with_operator("x", op.clone(), "", 1).part_size as u64, MIN_PART_SIZE);
        assert_eq!(ObjectStorage::with_operator("x", op, "", 16 << 20).part_size, 16 << 20);
    }

    /// A storage on opendal's in-memory service (no network).
    fn memory() -> ObjectStorage {
        install_crypto_provider();
        let op = Operator::new(opendal::services::Memory::default()).unwrap().finish();
        ObjectStorage::with_operator("mem", op, "p", MIN_PART_SIZE)
    }

    async fn put(s: &ObjectStorage, path: &str, data: &[u8]) -> Result<u64, StorageError> {
        use tokio::io::AsyncWriteExt;
        let mut up = s.write(path, WriteMode::Replace).await?;
        up.write_all(data).await.map_err(StorageError::from)?;
        up.commit().await
    }

    async fn get(s: &ObjectStorage, path: &str, offset: u64) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let Reader::Stream(mut r) = s.read(path, offset).await.unwrap() else { panic!("not a stream") };
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn uploads_appear_on_commit_in_parts_and_read_from_an_offset() {
        let s = memory();
        let big: Vec<u8> = (0..(2 * MIN_PART_SIZE + 12345)).map(|i| (i % 251) as u8).collect();
        assert_eq!(put(&s, "d/big", &big).await.unwrap(), big.len() as u64);
        assert_eq!(s.metadata("d/big").await.unwrap().len, big.len() as u64);
        assert!(get(&s, "d/big", 0).await == big);
        assert!(get(&s, "d/big", 1_000_000).await == big[1_000_000..]);
        assert!(get(&s, "d/big", big.len() as u64).await.is_empty());
        assert!(s.metadata("d").await.unwrap().is_dir(), "a prefix is a directory");

        // Dropped before commit: nothing appears, an existing object stays.
        put(&s, "keep", b"old").await.unwrap();
        for name in ["keep", "new"] {
            use tokio::io::AsyncWriteExt;
            let mut up = s.write(name, WriteMode::Replace).await.unwrap();
            up.write_all(&big).await.unwrap();
            drop(up);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get(&s, "keep", 0).await, b"old");
        assert_eq!(s.metadata("new").await.unwrap_err().kind, StorageErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_small_upload_does_not_hold_a_whole_part() {
        let s = memory();
        let mut up = ObjectUpload {
            store: Arc::from("mem"),
            writer: Some(s.op.writer(&s.key("small")).await.unwrap()),
            buf: Vec::new(),
            part_size: 64 << 20,
            pending: None,
            written: 0,
            multipart: false,
            done: false,
        };
        use tokio::io::AsyncWriteExt;
        up.write_all(&[7u8; 1000]).await.unwrap();
        assert!(up.buf.capacity() <= 64 << 10, "{} bytes held for 1000", up.buf.capacity());
        up.write_all(&vec![7u8; 3 << 20]).await.unwrap();
        assert!(up.buf.capacity() <= 8 << 20, "{} bytes held for 3 MiB", up.buf.capacity());
        assert_eq!(Box::new(up).commit().await.unwrap(), 1000 + (3 << 20));
        assert_eq!(s.metadata("small").await.unwrap().len, 1000 + (3 << 20));
    }

    #[tokio::test]
    async fn directories_are_prefixes_with_markers() {
        let s = memory();
        s.make_dir("a").await.unwrap();
        assert_eq!(s.make_dir("a").await.unwrap_err().kind, StorageErrorKind::AlreadyExists);
        assert_eq!(s.make_dir("x/y").await.unwrap_err().kind, StorageErrorKind::NotFound);
        put(&s, "a/f", b"1").await.unwrap();
        put(&s, "top", b"22").await.unwrap();
        assert_eq!(s.remove_dir("a").await.unwrap_err().kind, StorageErrorKind::DirectoryNotEmpty);
        let mut names: Vec<(String, bool, u64)> = s
            .list("")
            .await
            .unwrap()
            .map(|e| e.map(|e| (e.name, e.meta.is_dir(), e.meta.len)))
            .try_collect()
            .await
            .unwrap();
        names.sort();
        assert_eq!(names, [("a".to_string(), true, 0), ("top".to_string(), false, 2)]);
        assert_eq!(s.list("top").await.err().unwrap().kind, StorageErrorKind::NotADirectory);
        assert_eq!(s.list("nope").await.err().unwrap().kind, StorageErrorKind::NotFound);
        // (Rename is a server-side copy, which the in-memory service lacks:
        // tests/object_store.rs covers it on Garage.)
        assert_eq!(s.rename("a", "b").await.unwrap_err().kind, StorageErrorKind::Unsupported);
        assert_eq!(s.remove_file("a").await.unwrap_err().kind, StorageErrorKind::IsADirectory);
        s.remove_file("a/f").await.unwrap();
        assert_eq!(s.metadata("a/f").await.unwrap_err().kind, StorageErrorKind::NotFound);
        s.remove_dir("a").await.unwrap();
        assert_eq!(s.metadata("a").await.unwrap_err().kind, StorageErrorKind::NotFound);
        assert_eq!(s.remove_file("a").await.unwrap_err().kind, StorageErrorKind::NotFound);
        assert_eq!(
            s.write("top", WriteMode::CreateNew).await.err().unwrap().kind,
            StorageErrorKind::AlreadyExists
        );
    }
}
