//! Data-connection commands: REST, PASV, EPSV, PORT, EPRT and the transfers
//! RETR, STOR, APPE, STOU, LIST, NLST, MLSD.
//!
//! A handler checks everything it can before replying 150 (permissions, the
//! file, the data setup), then hands the loop a [`Transfer`]: a boxed future
//! owning the data connection and the file, polled beside the control
//! connection. Dropping it (ABOR, disconnect) closes both and discards an
//! unfinished replacement.
//!
//! Under PROT P every data connection, passive or active, is wrapped in TLS
//! with the server as the TLS server; when session reuse is required, one
//! that does not resume the control connection's session is refused (522).
//! RETR then uses the buffered copy loop (no sendfile through TLS).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::errors::{storage_reply, upload_storage_reply};
use super::facts::PermView;
use super::user::Ctx;
use super::{new_progress, BoxFuture, Outcome, Session};
use crate::data::channel::{self, ActiveRefusal};
use crate::data::copy::{self, TransferError};
use crate::data::throttle::{self, Limiter, Subject, Way};
use crate::data::{DataSetup, DataStream, Progress};
use crate::perm::Operation;
use crate::proto::{listing, EpsvArg, Reply, TransferType};
use crate::server::metrics::{self, TransferMeter};
use crate::tls::{DataTlsError, Direction, SessionTls};
use crate::vfs::path::split_parent;
use crate::vfs::{DirEntry, EntryStream, StorageErrorKind, Upload, WriteMode};

/// A transfer running beside the control loop.
pub(super) struct Transfer {
    pub future: BoxFuture<Finished>,
    pub progress: Arc<Progress>,
    pub command: &'static str,
    pub path: String,
    pub started: Instant,
    /// The upload replaces an existing file: commit only if the client is
    /// still there when the data ends.
    pub replaces_existing: bool,
    /// STOU's chosen name.
    pub unique_name: Option<String>,
    /// Bytes a download will send, for progress shown to administrators.
    pub size: Option<u64>,
    /// A new file counted by a quota: removed if the quota stops it.
    pub partial: Option<Partial>,
    /// Counts the transfer for a graceful shutdown, which waits for it.
    pub _drain: crate::server::drain::TransferToken,
    /// The file transfer as the metrics count it (`[metrics]` on).
    pub meter: Option<TransferMeter>,
}

/// A file an upload creates, to remove if the quota stops it midway.
pub(super) struct Partial {
    pub storage: Arc<dyn crate::vfs::Storage>,
    pub rel: String,
    pub usage: Arc<crate::vfs::quota::Usage>,
}

/// How a transfer ended.
pub(super) enum Finished {
    Sent(u64),
    Received(Box<dyn Upload>, u64),
    Listed(u64),
    NoConnection(OpenFailure),
    Failed(TransferError),
}

/// Why the data connection could not be opened.
pub(super) enum OpenFailure {
    Connect(io::Error),
    Tls(DataTlsError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreKind {
    Stor,
    Appe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListFormat {
    List,
    Nlst,
    Mlsd,
}

/// Opens the data connection the client asked for.
struct Connector {
    setup: DataSetup,
    peer: IpAddr,
    local: IpAddr,
    timeout: Duration,
    /// PROT P: the control connection's TLS session.
    tls: Option<SessionTls>,
    require_reuse: bool,
}

impl Connector {
    async fn open(mut self, direction: Direction) -> Result<DataStream, OpenFailure> {
        let stream = self.connect().await.map_err(OpenFailure::Connect)?;
        let _ = stream.set_nodelay(true);
        match self.tls {
            None => Ok(DataStream::Plain(stream)),
            Some(tls) => match tls.accept_data(stream, self.timeout, self.require_reuse, direction).await {
                Ok(stream) => Ok(DataStream::Tls(Box::new(stream))),
                Err(e) => Err(OpenFailure::Tls(e)),
            },
        }
    }

    async fn connect(&mut self) -> io::Result<TcpStream> {
        match std::mem::take(&mut self.setup) {
            DataSetup::Passive(listener) => listener.accept_from(self.peer, self.timeout).await,
            DataSetup::Active(addr) => channel::connect_active(addr, self.local, self.timeout).await,
            DataSetup::None => Err(io::Error::new(io::ErrorKind::NotConnected, "no data setup")),
        }
    }
}

impl Ctx<'_> {
    pub fn rest(&mut self, offset: u64) -> Reply {
        self.params.rest = offset;
        Reply::new(350, format!("Restarting at {offset}. Send STOR or RETR."))
    }

    fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.live.config.timeouts.data.max(1))
    }

    pub fn pasv(&mut self) -> Reply {
        if self.params.epsv_all {
            return Reply::new(503, "PASV not allowed after EPSV ALL.");
        }
        let local_ip = self.local.ip().to_canonical();
        let advertised = match self.live.config.passive.advertised_address.unwrap_or(local_ip) {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => return Reply::new(425, "PASV needs IPv4; use EPSV."),
        };
        // Release this session's previous reservation first: with a small
        // range it may be the only free port.
        self.params.data = DataSetup::None;
        let listener = match self.shared.passive.bind(self.local.ip()) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "no passive port available");
                return Reply::new(425, "Cannot open passive connection.");
            }
        };
        let port = listener.port();
        self.params.data = DataSetup::Passive(listener);
        let o = advertised.octets();
        Reply::new(
            227,
            format!(
                "Entering Passive Mode ({},{},{},{},{},{}).",
                o[0],
                o[1],
                o[2],
                o[3],
                port >> 8,
                port & 0xff
            ),
        )
    }

    pub fn epsv(&mut self, arg: EpsvArg) -> Reply {
        let is_v4 = self.local.ip().to_canonical().is_ipv4();
        match arg {
            EpsvArg::All => {
                self.params.epsv_all = true;
                return Reply::new(200, "EPSV ALL ok.");
            }
            EpsvArg::Protocol(1) if !is_v4 => {
                return Reply::new(522, "Network protocol not supported, use (2)")
            }
            EpsvArg::Protocol(2) if is_v4 => {
                return Reply::new(522, "Network protocol not supported, use (1)")
            }
            _ => {}
        }
        self.params.data = DataSetup::None;
        match self.shared.passive.bind(self.local.ip()) {
            Ok(listener) => {
                let port = listener.port();
                self.params.data = DataSetup::Passive(listener);
                Reply::new(229, format!("Entering Extended Passive Mode (|||{port}|)"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "no passive port available");
                Reply::new(425, "Cannot open passive connection.")
            }
        }
    }

    pub fn port(&mut self, target: SocketAddr, extended: bool) -> Reply {
        if self.params.epsv_all {
            return Reply::new(503, "Only EPSV is allowed after EPSV ALL.");
        }
        match channel::check_active_target(target, self.peer.ip()) {
            Ok(()) => {
                self.params.data = DataSetup::Active(target);
                let verb = if extended { "EPRT" } else { "PORT" };
                Reply::new(200, format!("{verb} command successful. Consider using EPSV."))
            }
            Err(refusal) => {
                tracing::warn!(target = %target, ?refusal, "refused active data connection target (bounce protection)");
                match refusal {
                    ActiveRefusal::ForeignAddress => {
                        Reply::new(501, "Data connections only to your own address.")
                    }
                    ActiveRefusal::PrivilegedPort => {
                        Reply::new(501, "Data connections only to ports 1024 and above.")
                    }
                }
            }
        }
    }

    fn require_data_setup(&self) -> Result<(), Reply> {
        if self.data_tls.required && self.data_tls.session.is_none() {
            tracing::info!(user = %self.user.account.name, "transfer refused: data connections must be protected");
            return Err(Reply::new(521, "Data connections must be protected: send PBSZ 0 and PROT P first."));
        }
        match self.params.data {
            DataSetup::None => Err(Reply::new(425, "Use PORT, EPRT, PASV or EPSV first.")),
            _ => Ok(()),
        }
    }

    fn take_connector(&mut self) -> Connector {
        Connector {
            setup: std::mem::take(&mut self.params.data),
            peer: self.peer.ip(),
            local: self.local.ip(),
            timeout: self.data_timeout(),
            tls: self.data_tls.session.take(),
            require_reuse: self.data_tls.require_reuse,
        }
    }

    /// TYPE A conversion, buffer size and stall timeout for a transfer.
    fn copy_settings(&self, buffer: usize) -> (bool, usize, Duration) {
        (self.params.ty == TransferType::Ascii, buffer, self.data_timeout())
    }

    /// The bandwidth limiter of a transfer of this session: its user's
    /// bucket (the anonymous class's for anonymous users) and the server's,
    /// with the rates read from the configuration in force at every charge.
    fn limiter(&self, way: Way) -> Limiter {
        let account = &self.user.account;
        let key = if account.anonymous { throttle::ANONYMOUS_KEY } else { account.name.as_str() };
        let subject = Subject {
            anonymous: account.anonymous,
            groups: account.groups.clone(),
            own_download: account.shaping.download_rate,
            own_upload: account.shaping.upload_rate,
        };
        let shared = Arc::clone(self.shared);
        let rates = Box::new(move || {
            let live = shared.live();
            let cfg = &live.config.bandwidth;
            let server = match way {
                Way::Download => cfg.download.0,
                Way::Upload => cfg.upload.0,
            };
            [subject.rate(cfg, way), server]
        });
        Limiter::new(self.shared.throttle.user(key, way), self.shared.throttle.server(way), rates)
    }

    fn mode_name(&self) -> &'static str {
        match self.params.ty {
            TransferType::Ascii => "ASCII",
            TransferType::Image => "BINARY",
        }
    }

    pub async fn retr(&mut self, arg: &str) -> Result<Outcome, Reply> {
        let offset = std::mem::take(&mut self.params.rest);
        let vpath = self.vpath(arg)?;
        let resolved = self.authorize(Operation::Read, &vpath)?;
        let storage = resolved.mount.storage.clone();
        let rel = resolved.rel.to_string();
        let meta = storage.metadata(&rel).await.map_err(|e| storage_reply(&e))?;
        if !meta.is_file() {
            return Err(Reply::new(550, "Not a regular file."));
        }
        if offset > meta.len {
            return Err(Reply::new(554, "Restart offset beyond end of file."));
        }
        self.require_data_setup()?;
        let reader = storage.read(&rel, offset).await.map_err(|e| storage_reply(&e))?;
        let connector = self.take_connector();
        let progress = self.file_progress(metrics::Direction::Download);
        let (ascii, size, stall) = self.copy_settings(self.live.config.transfer.send_buffer);
        let limiter = self.limiter(Way::Download);
        let p = progress.clone();
        let future = Box::pin(async move {
            let sent = match connector.open(Direction::Download).await {
                Ok(DataStream::Plain(mut tcp)) => {
                    copy::send_file_plain(reader, &mut tcp, ascii, size, stall, &p, &limiter).await
                }
                Ok(mut tls) => copy::send_file(reader, &mut tls, ascii, size, stall, &p, &limiter).await,
                Err(e) => return Finished::NoConnection(e),
            };
            match sent {
                Ok(n) => Finished::Sent(n),
                Err(e) => Finished::Failed(e),
            }
        });
        let name = split_parent(&vpath).map_or("", |(_, n)| n);
        let reply = Reply::new(
            150,
            format!(
                "Opening {} mode data connection for {} ({} bytes).",
                self.mode_name(),
                name,
                meta.len - offset
            ),
        );
        let mut transfer = self.transfer("RETR", vpath, progress, future, false);
        transfer.size = Some(meta.len - offset);
        Ok(Outcome::Transfer(reply, Box::new(transfer)))
    }

    /// A file transfer's progress, feeding the metrics' byte counter.
    fn file_progress(&self, direction: metrics::Direction) -> Arc<Progress> {
        match &self.shared.metrics {
            Some(m) => Arc::new(Progress::counting(m.bytes_counter(direction))),
            None => new_progress(),
        }
    }

    fn transfer(
        &self,
        command: &'static str,
        path: String,
        progress: Arc<Progress>,
        future: BoxFuture<Finished>,
        replaces_existing: bool,
    ) -> Transfer {
        Transfer {
            future,
            progress,
            command,
            path,
            started: Instant::now(),
            replaces_existing,
            unique_name: None,
            size: None,
            partial: None,
            _drain: self.shared.drain.transfer_started(),
            meter: self
                .shared
                .metrics
                .as_ref()
                .zip(metrics::Direction::of_command(command))
                .map(|(m, direction)| TransferMeter::start(m, direction)),
        }
    }

    pub async fn store(&mut self, arg: &str, kind: StoreKind) -> Result<Outcome, Reply> {
        let offset = std::mem::take(&mut self.params.rest);
        let vpath = self.vpath(arg)?;
        self.require_data_setup()?;
        let resolved = self.user.vfs.resolve(&vpath).ok_or_else(super::errors::permission_denied)?;
        let existing_len = match resolved.mount.storage.metadata(resolved.rel).await {
            Ok(meta) if meta.is_dir() => return Err(Reply::new(550, "Is a directory.")),
            Ok(meta) => Some(meta.len),
            Err(e) if e.kind == StorageErrorKind::NotFound => None,
            Err(e) => return Err(storage_reply(&e)),
        };
        if kind == StoreKind::Stor && offset > existing_len.unwrap_or(0) {
            return Err(Reply::new(554, "Restart offset beyond end of file."));
        }
        let exists = existing_len.is_some();
        let (op, mode) = match kind {
            StoreKind::Appe if exists => (Operation::Append, WriteMode::Append),
            StoreKind::Appe => (Operation::Write, WriteMode::Append),
            StoreKind::Stor if offset > 0 => (Operation::Append, WriteMode::At(offset)),
            StoreKind::Stor if exists => (Operation::Overwrite, WriteMode::Replace),
            StoreKind::Stor => (Operation::Write, WriteMode::Replace),
        };
        let resolved = self.authorize(op, &vpath)?;
        let replaces = exists && mode == WriteMode::Replace;
        let usage = self.quota_counts(&resolved).cloned();
        if usage.is_some() && !exists {
            self.check_file_quota()?;
        }
        let upload =
            resolved.mount.storage.write(resolved.rel, mode).await.map_err(|e| upload_storage_reply(&e))?;
        // What an aborted upload leaves: a replacement or an upload to a
        // backend that cannot resume (an object store) leaves nothing, so
        // its charge is simply returned; a new local file keeps its part.
        let discarded_on_abort = replaces || !resolved.mount.storage.capabilities().resume_upload;
        let partial = match &usage {
            Some(usage) if !discarded_on_abort => Some(Partial {
                storage: resolved.mount.storage.clone(),
                rel: resolved.rel.to_string(),
                usage: usage.clone(),
            }),
            _ => None,
        };
        let upload = self.charged(upload, usage, existing_len, discarded_on_abort);
        let command = if kind == StoreKind::Appe { "APPE" } else { "STOR" };
        let (progress, future) = self.upload_future(upload);
        let reply = Reply::new(150, format!("Ok to send data ({} mode).", self.mode_name()));
        let mut transfer = self.transfer(command, vpath, progress, future, replaces);
        transfer.partial = partial;
        Ok(Outcome::Transfer(reply, Box::new(transfer)))
    }

    /// 552 if one more file would pass the user's file quota.
    fn check_file_quota(&self) -> Result<(), Reply> {
        if let (Some(usage), Some(max)) = (&self.user.quota, self.user.account.shaping.quota_files) {
            if usage.files() >= max {
                tracing::info!(user = %self.user.account.name, files = usage.files(), max, "upload refused: file quota");
                return Err(Reply::new(552, "Exceeded storage allocation (file quota)."));
            }
        }
        Ok(())
    }

    /// Wraps an upload so its bytes are charged to the user's quota.
    fn charged(
        &self,
        upload: Box<dyn Upload>,
        usage: Option<Arc<crate::vfs::quota::Usage>>,
        old_len: Option<u64>,
        discarded_on_abort: bool,
    ) -> Box<dyn Upload> {
        match usage {
            Some(usage) => Box::new(crate::vfs::quota::QuotaUpload::new(
                upload,
                usage,
                self.user.account.shaping.quota_bytes,
                old_len,
                discarded_on_abort,
            )),
            None => upload,
        }
    }

    fn upload_future(&mut self, mut upload: Box<dyn Upload>) -> (Arc<Progress>, BoxFuture<Finished>) {
        let connector = self.take_connector();
        let progress = self.file_progress(metrics::Direction::Upload);
        let (ascii, size, stall) = self.copy_settings(self.live.config.transfer.receive_buffer);
        let limiter = self.limiter(Way::Upload);
        let p = progress.clone();
        let future = Box::pin(async move {
            let mut socket = match connector.open(Direction::Upload).await {
                Ok(s) => s,
                Err(e) => return Finished::NoConnection(e),
            };
            match copy::receive_file(&mut socket, &mut upload, ascii, size, stall, &p, &limiter).await {
                Ok(n) => {
                    if socket.is_tls() {
                        // Answer the client's close_notify; a client that
                        // already closed makes this fail, which is fine.
                        let _ = tokio::time::timeout(Duration::from_secs(1), socket.shutdown()).await;
                    }
                    Finished::Received(upload, n)
                }
                Err(e) => Finished::Failed(e),
            }
        });
        (progress, future)
    }

    pub async fn stou(&mut self, hint: Option<&str>) -> Result<Outcome, Reply> {
        self.params.rest = 0;
        self.require_data_setup()?;
        let base = match hint {
            Some(h) => self.vpath(h)?,
            None => self.vpath("ftp.upload")?,
        };
        for attempt in 0..8u32 {
            let vpath = if attempt == 0 && hint.is_some() {
                base.clone()
            } else {
                format!("{base}.{:08x}", rand::random::<u32>())
            };
            let resolved = self.authorize(Operation::Write, &vpath)?;
            let usage = self.quota_counts(&resolved).cloned();
            if usage.is_some() {
                self.check_file_quota()?;
            }
            match resolved.mount.storage.write(resolved.rel, WriteMode::CreateNew).await {
                Ok(upload) => {
                    let name = split_parent(&vpath).map_or("", |(_, n)| n).to_string();
                    // As for STOR: only a backend that keeps a part keeps a partial file.
                    let discarded_on_abort = !resolved.mount.storage.capabilities().resume_upload;
                    let partial = usage.as_ref().filter(|_| !discarded_on_abort).map(|usage| Partial {
                        storage: resolved.mount.storage.clone(),
                        rel: resolved.rel.to_string(),
                        usage: usage.clone(),
                    });
                    let upload = self.charged(upload, usage, None, discarded_on_abort);
                    let (progress, future) = self.upload_future(upload);
                    let mut transfer = self.transfer("STOU", vpath, progress, future, false);
                    transfer.unique_name = Some(name.clone());
                    transfer.partial = partial;
                    return Ok(Outcome::Transfer(
                        Reply::new(150, format!("FILE: {name}")),
                        Box::new(transfer),
                    ));
                }
                Err(e) if e.kind == StorageErrorKind::AlreadyExists => continue,
                Err(e) => return Err(upload_storage_reply(&e)),
            }
        }
        Err(Reply::new(553, "Could not find a unique file name."))
    }

    pub async fn listing(&mut self, arg: Option<&str>, format: ListFormat) -> Result<Outcome, Reply> {
        let arg = arg.unwrap_or("");
        // `NLST *.txt` (mget) and `LIST dir/*.iso`: a pattern in the last component.
        let (dir_arg, pattern) = match arg.rsplit_once('/') {
            Some((dir, last)) if has_glob(last) && format != ListFormat::Mlsd => {
                (if dir.is_empty() { "/" } else { dir }, Some(last.to_string()))
            }
            None if has_glob(arg) && format != ListFormat::Mlsd => ("", Some(arg.to_string())),
            _ => (arg, None),
        };
        let vpath = self.vpath(dir_arg)?;
        let (source, read_only_mount) = self.listing_source(&vpath, format).await?;
        self.require_data_setup()?;
        let connector = self.take_connector();
        let job = ListingJob {
            format,
            view: self.perm_view(),
            dir: vpath.clone(),
            read_only_mount,
            pattern,
            now: SystemTime::now(),
            max_entries: None,
        };
        let progress = new_progress();
        let p = progress.clone();
        let stall = self.data_timeout();
        let future = Box::pin(async move {
            let mut socket = match connector.open(Direction::Download).await {
                Ok(s) => s,
                Err(e) => return Finished::NoConnection(e),
            };
            match job.run(source, &mut socket, stall, &p).await {
                Ok(n) => Finished::Listed(n),
                Err(e) => Finished::Failed(e),
            }
        });
        let command = match format {
            ListFormat::List => "LIST",
            ListFormat::Nlst => "NLST",
            ListFormat::Mlsd => "MLSD",
        };
        let reply = Reply::new(150, "Here comes the directory listing.");
        Ok(Outcome::Transfer(reply, Box::new(self.transfer(command, vpath, progress, future, false))))
    }
}

impl Ctx<'_> {
    /// What a listing of `vpath` reads: a directory's entries with the
    /// virtual directories grafted into it, or a single file. Checks `list`
    /// on a directory and `stat` on a file.
    async fn listing_source(&self, vpath: &str, format: ListFormat) -> Result<(Source, bool), Reply> {
        let resolved = self.user.vfs.resolve(vpath).ok_or_else(super::errors::permission_denied)?;
        let read_only_mount = resolved.mount.read_only;
        let meta = resolved.mount.storage.metadata(resolved.rel).await.map_err(|e| storage_reply(&e))?;
        if !meta.is_dir() {
            if format == ListFormat::Mlsd {
                return Err(Reply::new(501, "Not a directory; use MLST."));
            }
            self.authorize(Operation::Stat, vpath)?;
            let name = split_parent(vpath).map_or("", |(_, n)| n).to_string();
            return Ok((Source::File(DirEntry { name, meta }), read_only_mount));
        }
        let resolved = self.authorize(Operation::List, vpath)?;
        let entries = resolved.mount.storage.list(resolved.rel).await.map_err(|e| storage_reply(&e))?;
        let mut mounts = Vec::new();
        for name in self.user.vfs.mount_points_in(vpath) {
            let child = child_path(vpath, name);
            if let Some(m) = self.user.vfs.resolve(&child) {
                if let Ok(meta) = m.mount.storage.metadata(m.rel).await {
                    mounts.push((
                        DirEntry { name: name.to_string(), meta },
                        m.real_location(),
                        m.mount.read_only,
                    ));
                }
            }
        }
        Ok((Source::Dir { entries, mounts, real: resolved.real_location() }, read_only_mount))
    }

    /// STAT with a path: the `ls -l` listing over the control connection
    /// (213 for a file, 212 for a directory), capped so the reply stays small.
    pub async fn stat_path(&self, arg: &str) -> Result<Reply, Reply> {
        const MAX_ENTRIES: usize = 1000;
        let vpath = self.vpath(arg)?;
        let (source, read_only_mount) = self.listing_source(&vpath, ListFormat::List).await?;
        let code = if matches!(source, Source::Dir { .. }) { 212 } else { 213 };
        let job = ListingJob {
            format: ListFormat::List,
            view: self.perm_view(),
            dir: vpath.clone(),
            read_only_mount,
            pattern: None,
            now: SystemTime::now(),
            max_entries: Some(MAX_ENTRIES),
        };
        let mut out = Vec::new();
        let timeout = self.data_timeout();
        job.run(source, &mut out, timeout, &Progress::default()).await.map_err(|e| match e {
            TransferError::Storage(e) => storage_reply(&e),
            _ => Reply::new(451, "Local error in processing."),
        })?;
        let listing = String::from_utf8_lossy(&out);
        let mut text = format!("Status of {vpath}:\n");
        for line in listing.lines() {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("End of status");
        Ok(Reply::new(code, text))
    }
}

fn child_path(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// What a listing reads.
enum Source {
    Dir { entries: EntryStream, mounts: Vec<(DirEntry, PathBuf, bool)>, real: PathBuf },
    File(DirEntry),
}

/// Formats a listing as it streams, in chunks, never holding it whole.
struct ListingJob {
    format: ListFormat,
    view: PermView,
    dir: String,
    read_only_mount: bool,
    pattern: Option<String>,
    now: SystemTime,
    /// Stop after this many entries (STAT over the control connection).
    max_entries: Option<usize>,
}

impl ListingJob {
    async fn run<W: tokio::io::AsyncWrite + Unpin>(
        self,
        source: Source,
        socket: &mut W,
        stall: Duration,
        progress: &Progress,
    ) -> Result<u64, TransferError> {
        const CHUNK: usize = 32 * 1024;
        let mut buf = Vec::with_capacity(CHUNK + 512);
        let mut sent = 0u64;
        let mut count = 0usize;
        match source {
            Source::File(entry) => {
                let real = PathBuf::new();
                self.format_entry(&entry, &self.dir, &real, self.read_only_mount, &mut buf);
            }
            Source::Dir { mut entries, mounts, real } => {
                for (entry, real, read_only) in &mounts {
                    let vpath = child_path(&self.dir, &entry.name);
                    self.push_entry(entry, &vpath, real, *read_only, &mut buf);
                }
                while let Some(item) = entries.next().await {
                    count += 1;
                    if self.max_entries.is_some_and(|max| count > max) {
                        buf.extend_from_slice(b"... (truncated; use LIST for the rest)\r\n");
                        break;
                    }
                    let entry = match item {
                        Ok(entry) => entry,
                        Err(e) => return Err(TransferError::Storage(e)),
                    };
                    if mounts.iter().any(|(m, _, _)| m.name == entry.name) {
                        continue; // shadowed by a virtual directory
                    }
                    let vpath = child_path(&self.dir, &entry.name);
                    self.push_entry(&entry, &vpath, &real.join(&entry.name), self.read_only_mount, &mut buf);
                    if buf.len() >= CHUNK {
                        copy::send_bytes(socket, &buf, stall).await?;
                        sent += buf.len() as u64;
                        progress.add(buf.len() as u64);
                        buf.clear();
                    }
                }
            }
        }
        copy::send_bytes(socket, &buf, stall).await?;
        sent += buf.len() as u64;
        progress.add(buf.len() as u64);
        copy::finish(socket, stall).await?;
        Ok(sent)
    }

    /// Adds an entry unless filtered out by the pattern or by the user's
    /// right to see it.
    fn push_entry(
        &self,
        entry: &DirEntry,
        vpath: &str,
        real: &std::path::Path,
        read_only: bool,
        buf: &mut Vec<u8>,
    ) {
        if let Some(pattern) = &self.pattern {
            if !crate::vfs::path::glob_match(pattern, &entry.name) {
                return;
            }
        }
        if !self.view.allows(Operation::Stat, vpath, real, read_only) {
            return;
        }
        self.format_entry(entry, vpath, real, read_only, buf);
    }

    fn format_entry(
        &self,
        entry: &DirEntry,
        vpath: &str,
        real: &std::path::Path,
        read_only: bool,
        buf: &mut Vec<u8>,
    ) {
        let line = match self.format {
            ListFormat::List => listing::list_line(entry, self.now),
            ListFormat::Nlst => entry.name.clone(),
            ListFormat::Mlsd => {
                let perm = self.view.perm_fact(vpath, real, read_only, entry.meta.is_dir());
                listing::mlsx_line(&entry.name, &entry.meta, &perm, None)
            }
        };
        buf.extend_from_slice(line.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
}

impl Session {
    /// The transfer log's record for a file transfer, filled in when it
    /// ends (`None`: log off, or a listing, which is not a transfer there).
    fn xferlog_record(&self, t: &Transfer) -> Option<crate::server::xferlog::Record> {
        if !self.shared.xferlog.enabled() || !matches!(t.command, "RETR" | "STOR" | "APPE" | "STOU") {
            return None;
        }
        let (user, anonymous, module) = match &self.user {
            Some(u) => (u.account.name.clone(), u.account.anonymous, u.account.module),
            None => (String::new(), false, ""),
        };
        Some(crate::server::xferlog::Record {
            end: SystemTime::now(),
            duration: Duration::ZERO,
            remote: self.peer.ip(),
            bytes: 0,
            path: t.path.clone(),
            ascii: self.params.ty == TransferType::Ascii,
            incoming: t.command != "RETR",
            anonymous,
            user,
            module,
            command: t.command,
            complete: false,
        })
    }

    /// Logs a finished transfer and chooses the final reply; commits uploads.
    pub(super) async fn finish_transfer(&mut self, mut t: Transfer, done: Finished) -> Reply {
        let user = self.user.as_ref().map(|u| u.account.name.clone()).unwrap_or_default();
        let ms = t.started.elapsed().as_millis() as u64;
        let record = self.xferlog_record(&t);
        let shared = self.shared.clone();
        let mut meter = t.meter.take();
        let mut log = |result: &str, bytes: u64| {
            tracing::info!(user = %user, command = t.command, path = %t.path, bytes, ms, result, "transfer");
            if let Some(meter) = meter.take() {
                meter.finish(match result {
                    "ok" => metrics::Outcome::Complete,
                    "discarded: client vanished" => metrics::Outcome::Aborted,
                    _ => metrics::Outcome::Failed,
                });
            }
            if let Some(mut r) = record.clone() {
                (r.end, r.duration, r.bytes, r.complete) =
                    (SystemTime::now(), t.started.elapsed(), bytes, result == "ok");
                shared.xferlog.log(r);
            }
        };
        match done {
            Finished::Sent(n) => {
                log("ok", n);
                Reply::new(226, "Transfer complete.")
            }
            Finished::Listed(n) => {
                tracing::debug!(user = %user, command = t.command, path = %t.path, bytes = n, "listing sent");
                Reply::new(226, "Directory send OK.")
            }
            Finished::Received(upload, n) => {
                if t.replaces_existing && self.control.peer_closed(Duration::from_millis(50)).await {
                    log("discarded: client vanished", n);
                    drop(upload);
                    return Reply::new(426, "Connection closed; upload discarded.");
                }
                match upload.commit().await {
                    Ok(size) => {
                        log("ok", size);
                        match &t.unique_name {
                            Some(name) => {
                                Reply::new(226, format!("Transfer complete (unique file name: {name})."))
                            }
                            None => Reply::new(226, "Transfer complete."),
                        }
                    }
                    Err(e) => {
                        log("commit failed", n);
                        tracing::warn!(error = %e, "upload commit failed");
                        upload_storage_reply(&e)
                    }
                }
            }
            Finished::NoConnection(OpenFailure::Connect(e)) => {
                log("no data connection", 0);
                tracing::info!(error = %e, "data connection failed");
                Reply::new(425, "Can't open data connection.")
            }
            Finished::NoConnection(OpenFailure::Tls(e @ DataTlsError::Handshake(_))) => {
                log("no data connection", 0);
                tracing::info!(error = %e, "data connection refused");
                Reply::new(425, "TLS negotiation on the data connection failed.")
            }
            Finished::NoConnection(OpenFailure::Tls(e @ DataTlsError::NotResumed(_))) => {
                log("no data connection", 0);
                tracing::warn!(error = %e, "data connection refused: possible theft of the data connection, or a client that does not resume TLS sessions");
                Reply::new(522, "TLS session of data connection not resumed.")
            }
            Finished::Failed(TransferError::Storage(e)) if e.kind == StorageErrorKind::NoSpace => {
                log("storage full or quota exceeded", t.progress.bytes());
                tracing::warn!(error = %e, "upload stopped: no space");
                if let Some(p) = &t.partial {
                    // A new file stopped midway is removed, not left half-written.
                    let size = p.storage.metadata(&p.rel).await.map(|m| m.len).unwrap_or(0);
                    match p.storage.remove_file(&p.rel).await {
                        Ok(()) => p.usage.removed(size),
                        Err(e) => tracing::warn!(error = %e, path = %t.path, "cannot remove partial upload"),
                    }
                }
                upload_storage_reply(&e)
            }
            Finished::Failed(TransferError::Storage(e)) => {
                log("storage error", t.progress.bytes());
                tracing::warn!(error = %e, "transfer failed");
                upload_storage_reply(&e)
            }
            Finished::Failed(e) => {
                log("data connection lost", t.progress.bytes());
                tracing::info!(error = %e, "transfer interrupted");
                Reply::new(426, "Connection closed; transfer aborted.")
            }
        }
    }
}
