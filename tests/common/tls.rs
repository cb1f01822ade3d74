//! FTPS helpers for the end-to-end tests: the test certificate (made with
//! the library function behind `ferroftpd cert self-signed`), rustls client
//! configurations that trust it, and a raw FTPS control connection for exact
//! reply checks, with data connections that do or do not resume the control
//! connection's TLS session.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{Reply, CONNECT_TIMEOUT, REPLY_TIMEOUT};

/// The name clients check the certificate against.
pub const HOST: &str = "localhost";

/// Writes a fresh self-signed pair for `localhost` and 127.0.0.1 into
/// `dir` (`cert.pem`, `key.pem`) and returns their paths.
pub fn write_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let pair = ferroftpd::tls::self_signed(&[HOST.to_string(), "127.0.0.1".to_string()], 2)
        .expect("generate the test certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &pair.cert_pem).expect("write cert.pem");
    std::fs::write(&key, &pair.key_pem).expect("write key.pem");
    (cert, key)
}

/// A client configuration trusting `ca` (TLS 1.2 and 1.3), with rustls's
/// default in-memory resumption store: data connections made with the same
/// configuration resume the control connection's session.
pub fn client_config(ca: &Path) -> Arc<ClientConfig> {
    client_config_versions(ca, &[&rustls::version::TLS13, &rustls::version::TLS12])
}

/// Like [`client_config`] for the given protocol versions only.
pub fn client_config_versions(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA file") {
        roots.add(cert.expect("CA certificate")).expect("trust CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A copy of `config` that never resumes (a stranger's client, or one that
/// ignores session reuse).
pub fn without_resumption(config: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut fresh = (**config).clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    Arc::new(fresh)
}

/// A TLS client stream over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Opens TCP to `addr` and completes a TLS handshake as client of `HOST`.
pub fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    assert!(addr.ip().is_loopback(), "refusing to connect to non-loopback {addr}");
    let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    tls_over(tcp, config)
}

/// Completes a TLS client handshake over an open TCP connection.
pub fn tls_over(mut tcp: TcpStream, config: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    tcp.set_read_timeout(Some(REPLY_TIMEOUT))?;
    tcp.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let name = ServerName::try_from(HOST).expect("server name");
    let mut conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// Reads a TLS data connection to its end; a missing close_notify is an
/// error here (the server must send one).
pub fn read_to_end(stream: &mut TlsStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

/// A download's data (or the data connection's error) and final reply.
pub type DataAndReply = (io::Result<Vec<u8>>, Reply);

/// A raw FTPS control connection.
pub struct TlsFtp {
    stream: TlsStream,
    buf: Vec<u8>,
    /// The configuration of the control connection; data connections that
    /// use it resume the control connection's session.
    pub config: Arc<ClientConfig>,
    pub greeting: Reply,
}

impl TlsFtp {
    /// Explicit FTPS: greeting in clear, `AUTH TLS`, `234`, handshake.
    pub fn explicit(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsFtp {
        let mut plain = super::Ftp::connect(addr);
        let greeting = plain.greeting.clone();
        plain.expect("AUTH TLS", 234);
        let tcp = plain.into_tcp();
        let stream = tls_over(tcp, config).expect("TLS handshake on the control connection");
        TlsFtp { stream, buf: Vec::new(), config: config.clone(), greeting }
    }

    /// Continues a plain connection whose `AUTH TLS` was just answered 234.
    pub fn explicit_from(plain: super::Ftp, config: &Arc<ClientConfig>) -> TlsFtp {
        let greeting = plain.greeting.clone();
        let stream = tls_over(plain.into_tcp(), config).expect("TLS handshake on the control connection");
        TlsFtp { stream, buf: Vec::new(), config: config.clone(), greeting }
    }

    /// Implicit FTPS: handshake first, then the greeting.
    pub fn implicit(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsFtp {
        let stream = tls_connect(addr, config).expect("implicit TLS handshake");
        let mut ftp = TlsFtp {
            stream,
            buf: Vec::new(),
            config: config.clone(),
            greeting: Reply { code: 0, lines: Vec::new() },
        };
        ftp.greeting = ftp.read_reply();
        assert_eq!(ftp.greeting.code, 220, "greeting: {}", ftp.greeting);
        ftp
    }

    pub fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .and_then(|()| self.stream.flush())
            .unwrap_or_else(|e| panic!("cannot send `{line}`: {e}"));
    }

    fn read_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return String::from_utf8(line)
                    .map(Some)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one reply; `Ok(None)` if the server closed the connection.
    pub fn try_read_reply(&mut self) -> io::Result<Option<Reply>> {
        let Some(first) = self.read_line()? else { return Ok(None) };
        let code = super::parse_code(&first).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("malformed reply {first:?}"))
        })?;
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            for _ in 0..100_000 {
                let line = self.read_line()?.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "closed in a multi-line reply")
                })?;
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Ok(Some(Reply { code, lines }))
    }

    pub fn read_reply(&mut self) -> Reply {
        match self.try_read_reply() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("server closed the control connection instead of replying"),
            Err(e) => panic!("no reply from the server: {e}"),
        }
    }

    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.read_reply()
    }

    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "`{line}` got `{reply}`, expected {code}");
        reply
    }

    pub fn login(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// PBSZ 0 and PROT P.
    pub fn protect_data(&mut self) {
        self.expect("PBSZ 0", 200);
        self.expect("PROT P", 200);
    }

    pub fn epsv(&mut self) -> SocketAddr {
        let reply = self.expect("EPSV", 229);
        let text = reply.text();
        let port = text
            .split_once("(|||")
            .and_then(|(_, rest)| rest.split_once("|)"))
            .and_then(|(port, _)| port.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("malformed EPSV reply: {text}"));
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// A download command over EPSV with a TLS data connection made with
    /// `data_config`: the first reply, and if it was 150 the data (or the
    /// data connection's error) and the final reply.
    pub fn download_with(
        &mut self,
        command: &str,
        data_config: &Arc<ClientConfig>,
    ) -> (Reply, Option<DataAndReply>) {
        let addr = self.epsv();
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).expect("connect data");
        let first = self.cmd(command);
        if first.code >= 200 {
            return (first, None);
        }
        let data = tls_over(tcp, data_config).and_then(|mut s| read_to_end(&mut s));
        let last = self.read_reply();
        (first, Some((data, last)))
    }

    /// RETR/LIST/MLSD over a resumed TLS data connection; must succeed.
    pub fn download(&mut self, command: &str) -> Vec<u8> {
        let config = self.config.clone();
        let (first, rest) = self.download_with(command, &config);
        assert_eq!(first.code, 150, "`{command}` got `{first}`");
        let (data, last) = rest.expect("data");
        assert_eq!(last.code, 226, "`{command}` final reply `{last}`");
        data.unwrap_or_else(|e| panic!("`{command}` data connection: {e}"))
    }

    /// STOR/APPE over a resumed TLS data connection; returns the final reply.
    pub fn upload(&mut self, command: &str, content: &[u8]) -> Reply {
        self.upload_with(command, content, true)
    }

    /// Like [`TlsFtp::upload`]; without `close_notify` the client just
    /// closes TCP after the data, as some clients do.
    pub fn upload_with(&mut self, command: &str, content: &[u8], close_notify: bool) -> Reply {
        let addr = self.epsv();
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).expect("connect data");
        let first = self.cmd(command);
        assert_eq!(first.code, 150, "`{command}` got `{first}`");
        let mut data = tls_over(tcp, &self.config.clone()).expect("TLS data connection");
        data.write_all(content).expect("send upload");
        if close_notify {
            data.conn.send_close_notify();
        }
        data.flush().expect("flush upload");
        let _ = data.sock.shutdown(std::net::Shutdown::Write);
        drop(data);
        self.read_reply()
    }

    /// Sends raw bytes on the TLS control connection.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).and_then(|()| self.stream.flush()).expect("send");
    }

    /// Waits up to `within` for the server to close the connection.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let _ = self.stream.sock.set_read_timeout(Some(within));
        matches!(self.try_read_reply(), Ok(None) | Err(_))
    }
}
