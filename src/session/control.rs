//! The control connection: bounded line reading and reply writing.
//!
//! An idle session holds no read buffer: it waits for readability, then
//! reads into a small stack buffer and keeps only the bytes of an unfinished
//! line. A line longer than the limit is reported once and the rest of it
//! discarded up to the next LF, so a client cannot grow the server's memory.
//!
//! In TLS the same holds: the session waits for the TCP socket's
//! readability, then polls the TLS stream exactly once into the stack buffer
//! (rustls may also hold already decrypted bytes, so that poll comes first).
//! No buffer of the session's own lives across an await; what stays is
//! rustls's per-connection state.

use std::io;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proto::Reply;
use crate::tls::{ServerStream, SessionTls};

/// The control connection's transport.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<ServerStream>),
    /// A Unix-domain socket (inetd mode on a socketpair); never TLS.
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    /// Lost in a failed TLS handshake.
    Gone,
}

/// What the client sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A line without its CR LF.
    Line(Vec<u8>),
    /// A line over the limit (its bytes were dropped).
    TooLong,
    /// The client closed the connection.
    Closed,
}

#[derive(Debug)]
pub struct Control {
    stream: Stream,
    pending: Vec<u8>,
    /// Dropping the tail of an over-long line.
    discarding: bool,
    /// The client has closed its side; no more lines will come.
    eof: bool,
    write_timeout: Duration,
}

/// Takes bytes just read into the unfinished line; none means end of stream.
/// Always `Ok`: the shape of a read's result.
fn accept_bytes(
    pending: &mut Vec<u8>,
    discarding: &mut bool,
    eof: &mut bool,
    bytes: &[u8],
) -> io::Result<()> {
    if bytes.is_empty() {
        *eof = true;
    } else if !*discarding {
        pending.extend_from_slice(bytes);
    } else if let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
        *discarding = false;
        pending.extend_from_slice(&bytes[pos + 1..]);
    }
    Ok(())
}

impl Control {
    pub fn new(stream: TcpStream, write_timeout: Duration) -> Control {
        Control {
            stream: Stream::Plain(stream),
            pending: Vec::new(),
            discarding: false,
            eof: false,
            write_timeout,
        }
    }

    #[cfg(unix)]
    pub fn new_unix(stream: tokio::net::UnixStream, write_timeout: Duration) -> Control {
        Control {
            stream: Stream::Unix(stream),
            pending: Vec::new(),
            discarding: false,
            eof: false,
            write_timeout,
        }
    }

    /// Whether AUTH TLS can work here (not on a Unix-domain socket).
    pub fn can_start_tls(&self) -> bool {
        matches!(self.stream, Stream::Plain(_))
    }

    /// A control connection whose TLS handshake is done (implicit FTPS).
    pub fn new_tls(stream: ServerStream, write_timeout: Duration) -> Control {
        Control {
            stream: Stream::Tls(Box::new(stream)),
            pending: Vec::new(),
            discarding: false,
            eof: false,
            write_timeout,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Protocol version and cipher suite, for logs.
    pub fn tls_description(&self) -> Option<String> {
        match &self.stream {
            Stream::Tls(s) => Some(crate::tls::describe(s)),
            _ => None,
        }
    }

    /// Drops what the client sent after the command being answered and
    /// returns its length. After AUTH TLS, anything already read was sent
    /// in clear and must not be executed as if protected (the STARTTLS
    /// command-injection attack).
    pub fn discard_pending(&mut self) -> usize {
        self.discarding = false;
        std::mem::take(&mut self.pending).len()
    }

    /// Performs the TLS handshake on a plain control connection, with a
    /// time limit. On failure the connection is unusable and closed.
    pub async fn start_tls(&mut self, tls: &SessionTls, timeout: Duration) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the control connection is not plain"));
        };
        let stream = tls.accept_control(tcp, timeout).await?;
        self.stream = Stream::Tls(Box::new(stream));
        Ok(())
    }

    /// Waits for the next line. Cancel-safe: bytes already read stay in the
    /// session, so it can be raced against a transfer in `select!`.
    pub async fn next(&mut self, max_len: usize) -> io::Result<Incoming> {
        loop {
            if let Some(incoming) = self.take_line(max_len) {
                return Ok(incoming);
            }
            if self.eof {
                return Ok(Incoming::Closed);
            }
            self.fill().await?;
        }
    }

    fn take_line(&mut self, max_len: usize) -> Option<Incoming> {
        if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
            if self.pending.is_empty() {
                // Release a buffer grown by a long line.
                self.pending = Vec::new();
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if std::mem::take(&mut self.discarding) {
                return self.take_line(max_len);
            }
            if line.len() > max_len {
                return Some(Incoming::TooLong);
            }
            return Some(Incoming::Line(line));
        }
        if self.pending.len() > max_len {
            self.pending = Vec::new();
            if !self.discarding {
                self.discarding = true;
                return Some(Incoming::TooLong);
            }
        }
        None
    }

    /// Reads what is available, waiting for readability first so no buffer is
    /// held while idle.
    async fn fill(&mut self) -> io::Result<()> {
        loop {
            if let Some(result) = self.read_now() {
                return result;
            }
            match &self.stream {
                Stream::Plain(tcp) => tcp.readable().await?,
                Stream::Tls(tls) => tls.get_ref().0.readable().await?,
                #[cfg(unix)]
                Stream::Unix(unix) => unix.readable().await?,
                Stream::Gone => return Ok(()),
            }
        }
    }

    /// One read attempt that never waits; `None` when nothing is there yet.
    /// Not async on purpose: its stack buffer must not become part of the
    /// session's future, which every idle session carries.
    fn read_now(&mut self) -> Option<io::Result<()>> {
        let Control { stream, pending, discarding, eof, .. } = self;
        let mut chunk = [0u8; 1024];
        let read = match stream {
            Stream::Plain(tcp) => match tcp.try_read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                other => other,
            },
            // rustls may hold decrypted bytes already, so poll it first; the
            // caller then waits for the socket.
            Stream::Tls(tls) => match tls.read(&mut chunk).now_or_never()? {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    tracing::debug!("client closed the TLS control connection without close_notify");
                    Ok(0)
                }
                other => other,
            },
            #[cfg(unix)]
            Stream::Unix(unix) => match unix.try_read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                other => other,
            },
            Stream::Gone => Ok(0),
        };
        Some(read.and_then(|n| accept_bytes(pending, discarding, eof, &chunk[..n])))
    }

    /// True if the client has closed the connection, waiting at most `wait`
    /// for the news. Used before replacing a file with an upload: a client
    /// killed mid-transfer closes both connections, and its data EOF must not
    /// be taken for the end of the file.
    pub async fn peer_closed(&mut self, wait: Duration) -> bool {
        if self.eof {
            return true;
        }
        match tokio::time::timeout(wait, self.fill()).await {
            Ok(Ok(())) => self.eof,
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }

    pub async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        let wire = reply.to_wire();
        let write = async {
            match &mut self.stream {
                Stream::Plain(tcp) => tcp.write_all(wire.as_bytes()).await,
                Stream::Tls(tls) => {
                    tls.write_all(wire.as_bytes()).await?;
                    tls.flush().await
                }
                #[cfg(unix)]
                Stream::Unix(unix) => unix.write_all(wire.as_bytes()).await,
                Stream::Gone => Err(io::Error::from(io::ErrorKind::NotConnected)),
            }
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client does not read replies")),
        }
    }

    /// Closes the connection (sending close_notify in TLS), bounded in time.
    pub async fn shutdown(&mut self) {
        let close = async {
            match &mut self.stream {
                Stream::Plain(tcp) => tcp.shutdown().await,
                Stream::Tls(tls) => tls.shutdown().await,
                #[cfg(unix)]
                Stream::Unix(unix) => unix.shutdown().await,
                Stream::Gone => Ok(()),
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
    }
}
