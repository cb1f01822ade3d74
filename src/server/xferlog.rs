//! The transfer log: one line per finished upload or download, in the
//! standard `xferlog` format (as wu-ftpd, ProFTPD, vsftpd and pure-ftpd write
//! it, so existing log analysers read it) and/or as JSON lines with the same
//! facts.
//!
//! Sessions never write: they hand a [`Record`] to a bounded queue with a
//! non-blocking send, and one writer thread formats and appends. A slow or
//! full disk therefore never stalls a session; when the queue is full the
//! line is dropped and counted ([`TransferLog::dropped`]) and a warning is
//! logged, never silently lost. SIGHUP reopens the files (for logrotate).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use crate::config::schema::XferlogConfig;

/// The path that means standard error instead of a file.
pub const STDERR: &str = "-";

/// The facts of one finished transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When it ended.
    pub end: SystemTime,
    pub duration: Duration,
    pub remote: IpAddr,
    pub bytes: u64,
    /// The virtual path, as the user sees it.
    pub path: String,
    pub ascii: bool,
    /// Upload (`true`) or download.
    pub incoming: bool,
    pub anonymous: bool,
    pub user: String,
    /// The authentication module that admitted the user.
    pub module: &'static str,
    /// RETR, STOR, APPE or STOU.
    pub command: &'static str,
    /// All the data went through (and, for an upload, was committed).
    pub complete: bool,
}

impl Record {
    /// `current-time transfer-time remote-host file-size filename
    /// transfer-type special-action-flag direction access-mode username
    /// service-name authentication-method authenticated-user-id
    /// completion-status`, without the newline.
    pub fn xferlog_line(&self) -> String {
        let end: chrono::DateTime<chrono::Local> = self.end.into();
        // Whole seconds, at least 1, as wu-ftpd and vsftpd write them.
        let secs = self.duration.as_secs_f64().round().max(1.0) as u64;
        let filename: String =
            self.path.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect();
        let user: String =
            self.user.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect();
        format!(
            "{} {} {} {} {} {} _ {} {} {} ftp 0 * {}",
            end.format("%a %b %e %H:%M:%S %Y"),
            secs,
            self.remote,
            self.bytes,
            if filename.is_empty() { "_" } else { &filename },
            if self.ascii { 'a' } else { 'b' },
            if self.incoming { 'i' } else { 'o' },
            if self.anonymous { 'a' } else { 'r' },
            if user.is_empty() { "_" } else { &user },
            if self.complete { 'c' } else { 'i' },
        )
    }

    /// The same facts as one JSON object, without the newline.
    pub fn json_line(&self) -> String {
        let end: chrono::DateTime<chrono::Utc> = self.end.into();
        let mut s = String::with_capacity(256);
        s.push('{');
        let _ = write!(s, "\"time\":\"{}\"", end.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        let _ = write!(s, ",\"duration_seconds\":{:.3}", self.duration.as_secs_f64());
        let _ = write!(s, ",\"remote\":\"{}\"", self.remote);
        let _ = write!(s, ",\"bytes\":{}", self.bytes);
        s.push_str(",\"path\":");
        json_string(&mut s, &self.path);
        let _ = write!(s, ",\"type\":\"{}\"", if self.ascii { "ascii" } else { "binary" });
        let _ = write!(s, ",\"direction\":\"{}\"", if self.incoming { "upload" } else { "download" });
        s.push_str(",\"user\":");
        json_string(&mut s, &self.user);
        let _ = write!(s, ",\"anonymous\":{}", self.anonymous);
        s.push_str(",\"module\":");
        json_string(&mut s, self.module);
        let _ = write!(s, ",\"command\":\"{}\"", self.command);
        let _ = write!(s, ",\"status\":\"{}\"", if self.complete { "complete" } else { "incomplete" });
        s.push('}');
        s
    }
}

fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

enum Message {
    Line(Box<Record>),
    Reopen,
    /// Answered once every line queued before it is written.
    Sync(mpsc::SyncSender<()>),
}

/// The sessions' end of the transfer log. Off (a no-op) when no path is
/// configured.
#[derive(Debug, Default)]
pub struct TransferLog {
    queue: Option<SyncSender<Message>>,
    dropped: AtomicU64,
    written: std::sync::Arc<AtomicU64>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Line(_) => "Line",
            Message::Reopen => "Reopen",
            Message::Sync(_) => "Sync",
        })
    }
}

impl TransferLog {
    /// Opens the configured files (an error here stops the start) and
    /// starts the writer thread.
    pub fn start(config: &XferlogConfig) -> anyhow::Result<TransferLog> {
        let mut sinks = Vec::new();
        if let Some(path) = &config.path {
            sinks.push(Sink::open(path, Format::Xferlog)?);
        }
        if let Some(path) = &config.json_path {
            sinks.push(Sink::open(path, Format::Json)?);
        }
        if sinks.is_empty() {
            return Ok(TransferLog::default());
        }
        let (tx, rx) = mpsc::sync_channel::<Message>(config.queue.max(1));
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let counter = written.clone();
        std::thread::Builder::new()
            .name("ferroftpd-xferlog".into())
            .spawn(move || {
                // Ends when the last sender (the server's shared state) is gone.
                while let Ok(message) = rx.recv() {
                    match message {
                        Message::Line(record) => {
                            for sink in &mut sinks {
                                sink.write(&record);
                            }
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Message::Reopen => {
                            for sink in &mut sinks {
                                sink.reopen();
                            }
                        }
                        Message::Sync(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .context("cannot start the transfer log writer")?;
        Ok(TransferLog { queue: Some(tx), dropped: AtomicU64::new(0), written })
    }

    /// Queues a record without waiting; counts it as dropped when the queue
    /// is full.
    pub fn log(&self, record: Record) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(Message::Line(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(dropped = n, "transfer log queue full: line dropped");
            }
        }
    }

    /// Reopens the files (after logrotate renamed them).
    pub fn reopen(&self) {
        if let Some(queue) = &self.queue {
            // Blocking is fine here: called from the signal task, not a session.
            let _ = queue.send(Message::Reopen);
        }
    }

    /// Waits (at most `limit`, blocking the calling thread) until the lines
    /// queued so far are written: before the process exits.
    pub fn sync(&self, limit: Duration) {
        let Some(queue) = &self.queue else { return };
        let (done, written) = mpsc::sync_channel(1);
        if queue.send(Message::Sync(done)).is_ok() {
            let _ = written.recv_timeout(limit);
        }
    }

    /// Whether any log is configured.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Lines lost because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines handed to the files so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Xferlog,
    Json,
}

struct Sink {
    path: PathBuf,
    format: Format,
    /// `None`: standard error.
    file: Option<File>,
}

impl Sink {
    fn open(path: &Path, format: Format) -> anyhow::Result<Sink> {
        let file = if path == Path::new(STDERR) { None } else { Some(open_append(path)?) };
        Ok(Sink { path: path.to_path_buf(), format, file })
    }

    fn write(&mut self, record: &Record) {
        let mut line = match self.format {
            Format::Xferlog => record.xferlog_line(),
            Format::Json => record.json_line(),
        };
        line.push('\n');
        let result = match &mut self.file {
            Some(file) => file.write_all(line.as_bytes()),
            None => io::stderr().lock().write_all(line.as_bytes()),
        };
        if let Err(e) = result {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the transfer log");
        }
    }

    fn reopen(&mut self) {
        if self.file.is_none() {
            return;
        }
        match open_append(&self.path) {
            Ok(file) => self.file = Some(file),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot reopen the transfer log"),
        }
    }
}

fn open_append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open transfer log `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            end: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(2600),
            remote: "192.0.2.7".parse().unwrap(),
            bytes: 12345,
            path: "/pub/my file.txt".into(),
            ascii: false,
            incoming: false,
            anonymous: false,
            user: "alice".into(),
            module: "userdb",
            command: "RETR",
            complete: true,
        }
    }

    #[test]
    fn xferlog_fields() {
        let line = record().xferlog_line();
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 18, "{line}");
        assert_eq!(
            &f[5..],
            [
                "3",
                "192.0.2.7",
                "12345",
                "/pub/my_file.txt",
                "b",
                "_",
                "o",
                "r",
                "alice",
                "ftp",
                "0",
                "*",
                "c"
            ]
        );
    }

    #[test]
    fn json_escapes() {
        let mut r = record();
        r.path = "/a\"b\\c\n".into();
        let line = r.json_line();
        assert!(line.contains(r#""path":"/a\"b\\c\n""#), "{line}");
        assert!(line.contains(r#""time":"2023-11-14T22:13:20.000Z""#), "{line}");
        assert!(line.contains(r#""duration_seconds":2.600"#), "{line}");
    }
}
