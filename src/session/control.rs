//! The control connection: bounded line reading and reply writing.
//!
//! An idle session holds no read buffer: it waits for readability, then
//! reads into a small stack buffer and keeps only the bytes of an unfinished
//! line. A line longer than the limit is reported once and the rest of it
//! discarded up to the next LF, so a client cannot grow the server's memory.

use std::io;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::proto::Reply;

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
    stream: TcpStream,
    pending: Vec<u8>,
    /// Dropping the tail of an over-long line.
    discarding: bool,
    /// The client has closed its side; no more lines will come.
    eof: bool,
    write_timeout: Duration,
}

impl Control {
    pub fn new(stream: TcpStream, write_timeout: Duration) -> Control {
        Control { stream, pending: Vec::new(), discarding: false, eof: false, write_timeout }
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
            self.stream.readable().await?;
            let mut chunk = [0u8; 1024];
            match self.stream.try_read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    if !self.discarding {
                        self.pending.extend_from_slice(&chunk[..n]);
                    } else if let Some(pos) = chunk[..n].iter().position(|&b| b == b'\n') {
                        self.discarding = false;
                        self.pending.extend_from_slice(&chunk[pos + 1..n]);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
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
        match tokio::time::timeout(self.write_timeout, self.stream.write_all(wire.as_bytes())).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client does not read replies")),
        }
    }

    pub async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
    }
}
