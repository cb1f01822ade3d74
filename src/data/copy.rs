//! Transfer loops. A buffer of the configured size is allocated when a
//! transfer starts and freed when it ends, so idle sessions hold none.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ascii;
use super::throttle::{Limiter, GRANT};
use crate::vfs::{Reader, StorageError, Upload};

/// Bytes moved so far, readable by STAT while the transfer runs.
#[derive(Debug, Default)]
pub struct Progress {
    bytes: AtomicU64,
    /// A process-wide counter fed as the bytes move (the metrics' bytes by
    /// direction), so a scrape sees a running transfer's progress.
    tally: Option<prometheus::IntCounter>,
}

impl Progress {
    /// Progress that also adds to `tally`.
    pub fn counting(tally: prometheus::IntCounter) -> Progress {
        Progress { bytes: AtomicU64::new(0), tally: Some(tally) }
    }

    pub fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(tally) = &self.tally {
            // One relaxed atomic add, like the line above.
            tally.inc_by(n);
        }
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Why a transfer stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The data connection failed or the client closed it early (426).
    #[error("data connection: {0}")]
    Network(io::Error),
    /// The data connection stalled longer than the data timeout (426).
    #[error("data connection stalled")]
    Stalled,
    /// Reading or writing the file failed (451, or 552 when full).
    #[error("storage: {0}")]
    Storage(StorageError),
}

async fn timed<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, TransferError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(TransferError::Network(e)),
        Err(_) => Err(TransferError::Stalled),
    }
}

/// Sends a file to the data connection; returns the bytes sent on the wire.
///
/// Two buffers of the configured size: the next chunk is read from storage
/// while the current one is written (and, in TLS, encrypted), so neither
/// the blocking-pool round trip of a file read nor the socket waits for the
/// other. This is the path of every TLS download.
///
/// Under a bandwidth limit each chunk is written in pieces of at most
/// [`GRANT`] bytes, each after the limiter lets it go.
pub async fn send_file<W: AsyncWrite + Unpin>(
    reader: Reader,
    socket: &mut W,
    ascii_mode: bool,
    buffer_size: usize,
    stall: Duration,
    progress: &Progress,
    limiter: &Limiter,
) -> Result<u64, TransferError> {
    let mut source: std::pin::Pin<Box<dyn AsyncRead + Send>> = match reader {
        Reader::File(file) => Box::pin(tokio::fs::File::from_std(file)),
        Reader::Stream(stream) => stream,
    };
    let size = buffer_size.max(512);
    let mut current = vec![0u8; size];
    let mut next = vec![0u8; size];
    let mut converted = Vec::new();
    let mut prev_cr = false;
    let mut total = 0u64;
    let mut n = source.read(&mut current).await.map_err(|e| TransferError::Storage(e.into()))?;
    while n > 0 {
        let chunk = if ascii_mode {
            ascii::to_network(&current[..n], &mut prev_cr, &mut converted);
            &converted[..]
        } else {
            &current[..n]
        };
        let write = async {
            for piece in chunk.chunks(GRANT) {
                limiter.pace(piece.len()).await;
                timed(stall, socket.write_all(piece)).await?;
                progress.add(piece.len() as u64);
            }
            Ok::<(), TransferError>(())
        };
        let (read, written) = tokio::join!(source.read(&mut next), write);
        written?;
        total += chunk.len() as u64;
        n = read.map_err(|e| TransferError::Storage(e.into()))?;
        std::mem::swap(&mut current, &mut next);
    }
    timed(stall, socket.flush()).await?;
    timed(stall, socket.shutdown()).await?;
    Ok(total)
}

/// Sends a file over a plain TCP data connection: zero-copy (`sendfile`)
/// for binary transfers of local files on Linux, the buffered loop otherwise.
pub async fn send_file_plain(
    reader: Reader,
    socket: &mut tokio::net::TcpStream,
    ascii_mode: bool,
    buffer_size: usize,
    stall: Duration,
    progress: &Progress,
    limiter: &Limiter,
) -> Result<u64, TransferError> {
    #[cfg(target_os = "linux")]
    if let (Reader::File(file), false) = (&reader, ascii_mode) {
        let sent = zero_copy::send(file, socket, stall, progress, limiter).await?;
        timed(stall, socket.shutdown()).await?;
        return Ok(sent);
    }
    send_file(reader, socket, ascii_mode, buffer_size, stall, progress, limiter).await
}

#[cfg(target_os = "linux")]
mod zero_copy {
    use std::io::{self, Seek};
    use std::time::Duration;

    use tokio::io::Interest;
    use tokio::net::TcpStream;

    use super::{Limiter, Progress, TransferError, GRANT};

    /// Bytes per `sendfile` call: large enough to keep the socket full,
    /// small enough that one call never holds a worker long.
    const CHUNK: usize = 1 << 20;

    /// Sends from the file's current position to its end, straight from the
    /// page cache to the socket, waiting for writability between calls so a
    /// slow client never blocks a worker. Under a bandwidth limit each call
    /// sends at most one [`GRANT`] and is paced by the limiter, still
    /// zero-copy; the limit is looked at before every call, so one set by a
    /// reload applies at once.
    pub async fn send(
        file: &std::fs::File,
        socket: &TcpStream,
        stall: Duration,
        progress: &Progress,
        limiter: &Limiter,
    ) -> Result<u64, TransferError> {
        let start = (&*file).stream_position().map_err(|e| TransferError::Storage(e.into()))?;
        let mut offset = i64::try_from(start)
            .map_err(|_| TransferError::Storage(io::Error::from(io::ErrorKind::InvalidInput).into()))?;
        let mut total = 0u64;
        loop {
            match tokio::time::timeout(stall, socket.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(TransferError::Network(e)),
                Err(_) => return Err(TransferError::Stalled),
            }
            let count = if limiter.limited() { GRANT } else { CHUNK };
            let sent = socket.try_io(Interest::WRITABLE, || {
                nix::sys::sendfile::sendfile(socket, file, Some(&mut offset), count).map_err(io::Error::from)
            });
            match sent {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    total += n as u64;
                    progress.add(n as u64);
                    limiter.pace(n).await;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if is_network_error(&e) => return Err(TransferError::Network(e)),
                Err(e) => return Err(TransferError::Storage(e.into())),
            }
        }
    }

    fn is_network_error(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::TimedOut
        )
    }
}

/// Receives the data connection into an upload until the client closes it;
/// returns the bytes written to storage. The caller commits the upload.
///
/// A socket read returns whatever has arrived (often 64 KiB or less), so
/// each buffer is filled before it goes to storage: one storage write per
/// buffer, not per packet (each local write is a hop to the blocking pool).
/// Two buffers: the next one fills from the network while the previous one
/// is written. Under a bandwidth limit the socket is read in pieces of at
/// most [`GRANT`] bytes, each paced by the limiter (TCP flow control then
/// slows the sender).
pub async fn receive_file<R: AsyncRead + Unpin>(
    socket: &mut R,
    upload: &mut Box<dyn Upload>,
    ascii_mode: bool,
    buffer_size: usize,
    stall: Duration,
    progress: &Progress,
    limiter: &Limiter,
) -> Result<u64, TransferError> {
    let size = buffer_size.max(512);
    let mut current = vec![0u8; size];
    let mut next = vec![0u8; size];
    let mut converted = Vec::new();
    let mut pending_cr = false;
    let mut total = 0u64;
    let mut n = fill(socket, &mut current, stall, progress, limiter).await?;
    while n > 0 {
        let chunk = if ascii_mode {
            ascii::from_network(&current[..n], &mut pending_cr, &mut converted);
            &converted[..]
        } else {
            &current[..n]
        };
        let (written, filled) = tokio::join!(upload.write_all(chunk), async {
            if n < size {
                Ok(0) // the last fill stopped at the end of the data
            } else {
                fill(socket, &mut next, stall, progress, limiter).await
            }
        });
        written.map_err(|e| TransferError::Storage(e.into()))?;
        total += chunk.len() as u64;
        n = filled?;
        std::mem::swap(&mut current, &mut next);
    }
    if ascii_mode {
        ascii::from_network_finish(pending_cr, &mut converted);
        upload.write_all(&converted).await.map_err(|e| TransferError::Storage(e.into()))?;
        total += converted.len() as u64;
    }
    upload.flush().await.map_err(|e| TransferError::Storage(e.into()))?;
    Ok(total)
}

/// Reads until `buf` is full or the peer closes; returns the bytes read
/// (fewer than `buf.len()` only at the end of the data).
async fn fill<R: AsyncRead + Unpin>(
    socket: &mut R,
    buf: &mut [u8],
    stall: Duration,
    progress: &Progress,
    limiter: &Limiter,
) -> Result<usize, TransferError> {
    let mut filled = 0;
    while filled < buf.len() {
        let end = if limiter.limited() { buf.len().min(filled + GRANT) } else { buf.len() };
        let n = timed(stall, socket.read(&mut buf[filled..end])).await?;
        if n == 0 {
            break;
        }
        limiter.pace(n).await;
        progress.add(n as u64);
        filled += n;
    }
    Ok(filled)
}

/// Writes listing bytes to the data connection with the stall timeout.
pub async fn send_bytes<W: AsyncWrite + Unpin>(
    socket: &mut W,
    bytes: &[u8],
    stall: Duration,
) -> Result<(), TransferError> {
    timed(stall, socket.write_all(bytes)).await
}

/// Ends a listing: flush and close our side.
pub async fn finish<W: AsyncWrite + Unpin>(socket: &mut W, stall: Duration) -> Result<(), TransferError> {
    timed(stall, socket.flush()).await?;
    timed(stall, socket.shutdown()).await
}
