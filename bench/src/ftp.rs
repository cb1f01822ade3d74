//! Just enough of an FTP client for the load generator: greeting, AUTH TLS,
//! USER/PASS, TYPE I, EPSV (PASV as fallback), RETR, STOR, LIST, MLSD, QUIT.
//! Every step
//! is bounded by a timeout and every reply is checked; nothing here panics
//! on what a server sends.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::pattern;

/// Longest reply line accepted.
const MAX_LINE: u64 = 8192;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 1000;
/// Buffer for data connections.
const DATA_BUF: usize = 256 * 1024;

/// A control connection, in clear (`TcpStream`) or after AUTH TLS.
pub struct Ctrl<S = TcpStream> {
    conn: BufReader<S>,
    line: String,
    step: Duration,
}

async fn bounded<T>(
    step: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match timeout(step, f).await {
        Ok(r) => r,
        Err(_) => bail!("{what}: no answer within {step:?}"),
    }
}

impl Ctrl {
    /// Connects and reads the 220 greeting.
    pub async fn connect(addr: SocketAddr, step: Duration) -> Result<Ctrl> {
        let stream = bounded(step, "connect", async { Ok(TcpStream::connect(addr).await?) }).await?;
        stream.set_nodelay(true)?;
        let mut c = Ctrl { conn: BufReader::with_capacity(1024, stream), line: String::new(), step };
        let (code, text) = c.reply().await?;
        if code != 220 {
            bail!("greeting: {code} {text}");
        }
        Ok(c)
    }

    /// AUTH TLS, the handshake (certificate checked against the
    /// connector's roots, name `127.0.0.1`), then PBSZ 0 and PROT P.
    pub async fn start_tls(mut self, tls: &TlsConnector) -> Result<Ctrl<TlsStream<TcpStream>>> {
        self.expect("AUTH TLS", &[234]).await?;
        if !self.conn.buffer().is_empty() {
            bail!("AUTH TLS: clear text after the 234 reply");
        }
        let step = self.step;
        let tcp = self.conn.into_inner();
        let name = rustls_pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let stream = bounded(step, "TLS handshake", async { Ok(tls.connect(name, tcp).await?) }).await?;
        let mut c = Ctrl { conn: BufReader::with_capacity(1024, stream), line: String::new(), step };
        c.expect("PBSZ 0", &[200]).await?;
        c.expect("PROT P", &[200]).await?;
        Ok(c)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ctrl<S> {
    /// Reads one (possibly multi-line) reply: its code and last line.
    pub async fn reply(&mut self) -> Result<(u16, String)> {
        let step = self.step;
        let conn = &mut self.conn;
        let line = &mut self.line;
        bounded(step, "reply", async move {
            let mut first: Option<u16> = None;
            for _ in 0..MAX_REPLY_LINES {
                line.clear();
                let n = (&mut *conn).take(MAX_LINE).read_line(line).await?;
                if n == 0 {
                    bail!("connection closed by server");
                }
                let text = line.trim_end();
                let code = text.get(..3).and_then(|c| c.parse::<u16>().ok());
                let sep = text.as_bytes().get(3).copied();
                match (first, code) {
                    (None, Some(c)) if sep == Some(b'-') => first = Some(c),
                    (None, Some(c)) => return Ok((c, text.to_string())),
                    (None, None) => bail!("not a reply: {text:?}"),
                    (Some(f), Some(c)) if c == f && sep != Some(b'-') => {
                        return Ok((c, text.to_string()));
                    }
                    (Some(_), _) => {}
                }
            }
            bail!("reply longer than {MAX_REPLY_LINES} lines")
        })
        .await
    }

    /// Sends a command and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Result<(u16, String)> {
        let step = self.step;
        let conn = self.conn.get_mut();
        // One write, so the command leaves in one segment (with TCP_NODELAY
        // two writes would make every server wake up twice per command).
        let wire = format!("{line}\r\n");
        bounded(step, "send", async {
            conn.write_all(wire.as_bytes()).await?;
            Ok(())
        })
        .await?;
        self.reply().await
    }

    /// Sends a command and requires a reply code in `ok`.
    pub async fn expect(&mut self, line: &str, ok: &[u16]) -> Result<String> {
        let (code, text) = self.cmd(line).await?;
        if !ok.contains(&code) {
            let shown = if line.starts_with("PASS ") { "PASS ****" } else { line };
            bail!("{shown}: {text}");
        }
        Ok(text)
    }

    pub async fn login(&mut self, user: &str, pass: &str) -> Result<()> {
        let (code, text) = self.cmd(&format!("USER {user}")).await?;
        match code {
            230 => Ok(()),
            331 | 332 => self.expect(&format!("PASS {pass}"), &[230]).await.map(drop),
            _ => bail!("USER {user}: {text}"),
        }
    }

    pub async fn quit(mut self) -> Result<()> {
        self.expect("QUIT", &[221]).await?;
        Ok(())
    }

    /// The bare connection, for holding a session open without reading.
    pub fn into_stream(self) -> S {
        self.conn.into_inner()
    }

    /// Asks for a passive data address (EPSV, else PASV) and connects to it.
    async fn data(&mut self, server: SocketAddr) -> Result<TcpStream> {
        let (code, text) = self.cmd("EPSV").await?;
        let addr = if code == 229 {
            let port = text
                .split('|')
                .nth(3)
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| anyhow!("EPSV: cannot parse {text:?}"))?;
            SocketAddr::new(server.ip(), port)
        } else {
            let text = self.expect("PASV", &[227]).await?;
            let inner = text
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(i, _)| i)
                .unwrap_or_else(|| text.get(4..).unwrap_or(""));
            let n: Vec<u16> = inner.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if n.len() != 6 {
                bail!("PASV: cannot parse {text:?}");
            }
            SocketAddr::new(server.ip(), n[4] * 256 + n[5])
        };
        let s = bounded(self.step, "data connect", async { Ok(TcpStream::connect(addr).await?) }).await?;
        Ok(s)
    }

    /// Downloads `path`, checking every byte against the pattern and the
    /// length against `size`. Returns the bytes received.
    pub async fn retr_verify(
        &mut self,
        server: SocketAddr,
        path: &str,
        size: u64,
        block: &[u8],
        total: Duration,
    ) -> Result<u64> {
        let mut data = self.data(server).await?;
        self.expect(&format!("RETR {path}"), &[125, 150]).await?;
        let got = timeout(total, async {
            let mut buf = vec![0u8; DATA_BUF];
            let mut off = 0u64;
            loop {
                let n = data.read(&mut buf).await.context("data read")?;
                if n == 0 {
                    break;
                }
                let chunk = buf.get(..n).ok_or_else(|| anyhow!("bad read length"))?;
                if !pattern::matches(block, off, chunk) {
                    bail!("RETR {path}: wrong bytes near offset {off}");
                }
                off += n as u64;
            }
            Ok::<u64, anyhow::Error>(off)
        })
        .await
        .map_err(|_| anyhow!("RETR {path}: not done within {total:?}"))??;
        drop(data);
        let (code, text) = self.reply().await?;
        if code != 226 && code != 250 {
            bail!("RETR {path}: {text}");
        }
        if got != size {
            bail!("RETR {path}: {got} bytes, expected {size}");
        }
        Ok(got)
    }

    /// Uploads `size` bytes of the pattern as `path`.
    pub async fn stor(
        &mut self,
        server: SocketAddr,
        path: &str,
        size: u64,
        block: &[u8],
        total: Duration,
    ) -> Result<()> {
        let mut data = self.data(server).await?;
        self.expect(&format!("STOR {path}"), &[125, 150]).await?;
        timeout(total, async {
            let mut off = 0u64;
            while off < size {
                let s = pattern::slice_at(block, off, (size - off).min(DATA_BUF as u64));
                data.write_all(s).await.context("data write")?;
                off += s.len() as u64;
            }
            data.shutdown().await.context("data shutdown")?;
            Ok::<(), anyhow::Error>(())
        })
        .await
        .map_err(|_| anyhow!("STOR {path}: not done within {total:?}"))??;
        drop(data);
        let (code, text) = self.reply().await?;
        if code != 226 && code != 250 {
            bail!("STOR {path}: {text}");
        }
        Ok(())
    }

    /// Runs LIST or MLSD on `path`; returns the number of lines received.
    pub async fn listing(
        &mut self,
        server: SocketAddr,
        verb: &str,
        path: &str,
        total: Duration,
    ) -> Result<usize> {
        let mut data = self.data(server).await?;
        self.expect(&format!("{verb} {path}"), &[125, 150]).await?;
        let lines = timeout(total, async {
            let mut buf = vec![0u8; 64 * 1024];
            let mut lines = 0usize;
            loop {
                let n = data.read(&mut buf).await.context("data read")?;
                if n == 0 {
                    break;
                }
                lines += buf.get(..n).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
            }
            Ok::<usize, anyhow::Error>(lines)
        })
        .await
        .map_err(|_| anyhow!("{verb} {path}: not done within {total:?}"))??;
        drop(data);
        let (code, text) = self.reply().await?;
        if code != 226 && code != 250 {
            bail!("{verb} {path}: {text}");
        }
        Ok(lines)
    }
}
