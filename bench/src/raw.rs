//! The ceiling: the same bytes copied over plain TCP on loopback, with no
//! protocol. A child process (`bench raw-server`) sends a file with
//! sendfile(2) or writes what it receives to a file; the benchmark's client
//! side reads and verifies exactly as it does for FTP.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pattern;

/// Serves forever (until killed): one thread per connection. A connection
/// sends `RETR NAME\n` (file → socket) or `STOR NAME\n` (socket → file,
/// then `OK\n` once written).
pub fn serve(port: u16, root: &Path) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).context("raw-server bind")?;
    println!("ready");
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            if let Err(e) = handle(conn, &root) {
                eprintln!("raw-server: {e:#}");
            }
        });
    }
    Ok(())
}

fn safe_join(root: &Path, name: &str) -> Result<PathBuf> {
    let rel = Path::new(name);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("bad name {name:?}");
    }
    Ok(root.join(rel))
}

fn handle(mut conn: TcpStream, root: &Path) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(600)))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 512 {
        conn.read_exact(&mut byte)?;
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    let line = String::from_utf8(line)?;
    match line.split_once(' ') {
        Some(("RETR", name)) => {
            let f = File::open(safe_join(root, name)?)?;
            let mut left = f.metadata()?.len();
            while left > 0 {
                let chunk = left.min(1 << 30) as usize;
                // SAFETY: both descriptors are open for the duration of the call.
                let n =
                    unsafe { libc::sendfile(conn.as_raw_fd(), f.as_raw_fd(), std::ptr::null_mut(), chunk) };
                if n <= 0 {
                    bail!("sendfile: {}", std::io::Error::last_os_error());
                }
                left -= n as u64;
            }
            Ok(())
        }
        Some(("STOR", name)) => {
            let mut f = File::create(safe_join(root, name)?)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                f.write_all(&buf[..n])?;
            }
            conn.write_all(b"OK\n")?;
            Ok(())
        }
        _ => bail!("bad request {line:?}"),
    }
}

/// Client side of a raw download: every byte checked against the pattern.
pub async fn retr(addr: std::net::SocketAddr, name: &str, size: u64, block: &[u8]) -> Result<u64> {
    let mut s = tokio::net::TcpStream::connect(addr).await.context("raw connect")?;
    s.write_all(format!("RETR {name}\n").as_bytes()).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    loop {
        let n = s.read(&mut buf).await.context("raw read")?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).ok_or_else(|| anyhow!("bad read length"))?;
        if !pattern::matches(block, off, chunk) {
            bail!("raw RETR {name}: wrong bytes near offset {off}");
        }
        off += n as u64;
    }
    if off != size {
        bail!("raw RETR {name}: {off} bytes, expected {size}");
    }
    Ok(off)
}

/// Client side of a raw upload of `size` pattern bytes.
pub async fn stor(addr: std::net::SocketAddr, name: &str, size: u64, block: &[u8]) -> Result<()> {
    let mut s = tokio::net::TcpStream::connect(addr).await.context("raw connect")?;
    s.write_all(format!("STOR {name}\n").as_bytes()).await?;
    let mut off = 0u64;
    while off < size {
        let chunk = pattern::slice_at(block, off, (size - off).min(256 * 1024));
        s.write_all(chunk).await.context("raw write")?;
        off += chunk.len() as u64;
    }
    s.shutdown().await?;
    let mut ok = [0u8; 3];
    s.read_exact(&mut ok).await.context("raw STOR: no acknowledgement")?;
    if &ok != b"OK\n" {
        bail!("raw STOR {name}: bad acknowledgement");
    }
    Ok(())
}
