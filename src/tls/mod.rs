//! FTPS (RFC 4217): the rustls server configuration, certificate loading,
//! self-signed certificates for testing, and the per-session resumption
//! store that ties data connections to their control connection.
//!
//! # Why data connections must resume the control connection's session
//!
//! A passive data port is announced in clear text (or guessed), and the
//! address check in `data::channel` does not help against a thief behind
//! the same NAT. vsftpd's answer, `require_ssl_reuse`, is kept here: a data
//! connection is accepted only if its TLS handshake *resumes* the session of
//! the control connection, which only the client that holds the control
//! connection's secrets can do.
//!
//! rustls has no notion of "the session of that other connection", so each
//! TLS control connection gets its own copy of the server configuration whose
//! resumption store ([`SessionCache`]) holds only that connection's sessions,
//! and no stateless ticketer (a ticketer's key would be shared by everyone).
//! Data handshakes use the same store, so a ticket or session ID from any
//! other connection is simply unknown and the handshake is a full one, which
//! [`accept_data`] refuses when reuse is required.
//!
//! Sessions that *data* connections create (TLS 1.3 sends new tickets after
//! every handshake; a TLS 1.2 full handshake creates a session ID) are
//! staged and join the store only if that data connection itself resumed. A
//! thief who completes a full handshake on a data port therefore gains no
//! ticket that a later data connection could resume. Entries are not
//! consumed on use: clients such as lftp (GnuTLS) and curl (OpenSSL) resume
//! every data connection from the control connection's ticket, and with
//! 0-RTT disabled a repeated resumption replays nothing.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::StoresServerSessions;
use rustls::{HandshakeKind, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A TLS stream over TCP, as the server sees it.
pub type ServerStream = TlsStream<TcpStream>;

/// Protocol version and cipher suite of an established stream, for logs.
pub fn describe(stream: &ServerStream) -> String {
    let conn = stream.get_ref().1;
    let version = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
    let suite = conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default();
    format!("{version} {suite}")
}

/// Why a certificate or key cannot be used; phrased for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// The server's TLS settings built from the certificate and key files:
/// TLS 1.2 and 1.3 only, ring provider, no client certificates. Rebuilt on
/// reload, so a new certificate applies to the next connection.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    base: Arc<ServerConfig>,
}

impl TlsSetup {
    /// Loads a PEM certificate chain (leaf first) and its PEM private key
    /// (PKCS#8, PKCS#1 or SEC1) and checks that they belong together.
    pub fn load(certificate: &Path, key: &Path) -> Result<TlsSetup, TlsError> {
        let chain = read_chain(certificate)?;
        let key_path = key;
        let key = read_key(key_path)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                TlsError(format!(
                    "{} and {}: {}",
                    certificate.display(),
                    key_path.display(),
                    describe_rustls_error(&e)
                ))
            })?;
        Ok(TlsSetup { base: Arc::new(config) })
    }

    /// An acceptor for the web admin's HTTPS (HTTP/1.1, session tickets
    /// as rustls does by default).
    pub fn http_acceptor(&self) -> TlsAcceptor {
        let mut config = (*self.base).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }

    /// A fresh configuration for one control connection, with its own
    /// resumption store (see the module documentation).
    pub fn for_session(&self) -> SessionTls {
        let cache = Arc::new(SessionCache::default());
        let mut config = (*self.base).clone();
        config.session_storage = cache.clone();
        config.ticketer = Arc::new(NoTickets);
        config.send_tls13_tickets = CONTROL_TICKETS;
        SessionTls { config: Arc::new(config), cache }
    }
}

fn describe_rustls_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InconsistentKeys(_) => "the private key does not belong to the certificate".into(),
        other => other.to_string(),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path, "certificate")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: not a PEM certificate file ({e})", path.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate in it (expected a PEM block \"-----BEGIN CERTIFICATE-----\")",
            path.display()
        )));
    }
    // Parse the leaf now, so a broken file is reported at check-config.
    rustls::server::ParsedCertificate::try_from(&chain[0])
        .map_err(|e| TlsError(format!("{}: the first certificate cannot be parsed: {e}", path.display())))?;
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError(format!(
            "{}: no private key in it (expected a PEM block such as \"-----BEGIN PRIVATE KEY-----\")",
            path.display()
        )),
        e => TlsError(format!("{}: not a PEM private key file ({e})", path.display())),
    })
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{}: cannot read the {what}: {e}", path.display())))
}

/// Tells rustls to issue no stateless tickets: every resumption goes
/// through the session's own store.
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// The TLS state of one control connection: its configuration and the
/// resumption store its data connections resume from.
#[derive(Debug, Clone)]
pub struct SessionTls {
    config: Arc<ServerConfig>,
    cache: Arc<SessionCache>,
}

impl SessionTls {
    /// Performs the server side of the control connection's handshake
    /// (after `234` for AUTH TLS, or at once on an implicit-TLS port).
    pub async fn accept_control(&self, tcp: TcpStream, timeout: Duration) -> io::Result<ServerStream> {
        let acceptor = TlsAcceptor::from(self.config.clone());
        let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
        };
        // Sessions stored from now on come from data connections.
        self.cache.seal();
        Ok(stream)
    }

    /// Wraps a data connection in TLS (the server is the TLS server in both
    /// passive and active mode). With `require_reuse`, a handshake that does
    /// not resume this control connection's session is refused.
    pub async fn accept_data(
        &self,
        tcp: TcpStream,
        timeout: Duration,
        require_reuse: bool,
        direction: Direction,
    ) -> Result<ServerStream, DataTlsError> {
        let staging = Arc::new(StagingStore { cache: self.cache.clone(), staged: Mutex::default() });
        let mut config = (*self.config).clone();
        config.session_storage = staging.clone();
        config.send_tls13_tickets = match direction {
            Direction::Download => DOWNLOAD_TICKETS,
            Direction::Upload => 0,
        };
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(DataTlsError::Handshake(e)),
            Err(_) => {
                return Err(DataTlsError::Handshake(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                )))
            }
        };
        let kind = stream.get_ref().1.handshake_kind();
        let resumed = kind == Some(HandshakeKind::Resumed);
        tracing::debug!(tls = describe(&stream), handshake = ?kind, "data connection TLS established");
        if resumed {
            staging.commit();
        }
        if require_reuse && !resumed {
            return Err(DataTlsError::NotResumed(kind));
        }
        Ok(stream)
    }
}

/// Which way a data connection's bytes go, as seen by the client.
///
/// TLS 1.3 tickets are sent by the server right after the handshake. A
/// client that uploads never reads its data connection, closes it with the
/// tickets unread, and the kernel then answers with a reset that can
/// destroy the end of the upload. So upload connections get no tickets;
/// downloads, read to the end, do (rustls clients need them to resume the
/// next connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Download,
    Upload,
}

/// Why a data connection's TLS was refused.
#[derive(Debug)]
pub enum DataTlsError {
    /// The handshake failed or timed out.
    Handshake(io::Error),
    /// The handshake did not resume the control connection's session.
    NotResumed(Option<HandshakeKind>),
}

impl fmt::Display for DataTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataTlsError::Handshake(e) => write!(f, "TLS handshake on the data connection failed: {e}"),
            DataTlsError::NotResumed(kind) => write!(
                f,
                "TLS session of the data connection not resumed from the control connection ({kind:?} handshake)"
            ),
        }
    }
}

impl std::error::Error for DataTlsError {}

/// TLS 1.3 tickets sent after the control handshake. OpenSSL (curl),
/// GnuTLS (lftp) and Python resume every data connection from one ticket;
/// rustls clients use each ticket once, so a few more let them open that
/// many upload connections (which send none, see [`Direction`]) in a row.
const CONTROL_TICKETS: usize = 4;
/// TLS 1.3 tickets sent after a download data connection's handshake.
const DOWNLOAD_TICKETS: usize = 2;
/// Sessions the control handshake created, kept for the whole session.
const PINNED_MAX: usize = CONTROL_TICKETS;
/// Sessions created by resumed data connections, most recent kept.
const RECENT_MAX: usize = 8;

type Entry = (Vec<u8>, Vec<u8>);

/// The resumption store of one control connection: a handful of entries,
/// a few hundred bytes each. Lookups do not consume entries (see the module
/// documentation).
#[derive(Debug, Default)]
pub struct SessionCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// From the control connection's handshake: never evicted, since some
    /// clients resume every data connection from these.
    pinned: Vec<Entry>,
    /// From resumed data connections, oldest first.
    recent: VecDeque<Entry>,
    /// The control handshake is over.
    sealed: bool,
}

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn seal(&self) {
        self.lock().sealed = true;
    }

    fn insert(&self, key: Vec<u8>, value: Vec<u8>) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(slot) = inner.pinned.iter_mut().chain(inner.recent.iter_mut()).find(|(k, _)| *k == key) {
            slot.1 = value;
            return;
        }
        if !inner.sealed && inner.pinned.len() < PINNED_MAX {
            inner.pinned.push((key, value));
            return;
        }
        inner.recent.push_back((key, value));
        while inner.recent.len() > RECENT_MAX {
            inner.recent.pop_front();
        }
    }

    fn find(&self, key: &[u8]) -> Option<Vec<u8>> {
        let inner = self.lock();
        inner.pinned.iter().chain(inner.recent.iter()).find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// Number of sessions held (for tests).
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.pinned.len() + inner.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.insert(key, value);
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.find(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.find(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// The store a data connection's handshake sees: lookups go to the
/// session's cache, new sessions wait until the handshake proved to be a
/// resumption.
#[derive(Debug)]
struct StagingStore {
    cache: Arc<SessionCache>,
    staged: Mutex<Vec<Entry>>,
}

impl StagingStore {
    fn commit(&self) {
        let staged = match self.staged.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for (key, value) in staged {
            self.cache.insert(key, value);
        }
    }
}

impl StoresServerSessions for StagingStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut staged = match self.staged.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if staged.len() < PINNED_MAX {
            staged.push((key, value));
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.find(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.find(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// A certificate and its private key in PEM.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates a self-signed certificate (ECDSA P-256) for `hosts` (DNS names
/// or IP addresses, the first one also the common name), valid from
/// yesterday for `days` days. For testing: clients must be told to trust it
/// (curl `--cacert`, lftp `ssl:ca-file`).
pub fn self_signed(hosts: &[String], days: u32) -> Result<SelfSigned, TlsError> {
    use chrono::Datelike as _;
    let first = hosts.first().ok_or_else(|| TlsError("at least one host name is needed".into()))?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())
        .map_err(|e| TlsError(format!("invalid host name: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, first.as_str());
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "ferroftpd self-signed");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = chrono::Utc::now();
    let from = now - chrono::Duration::days(1);
    let until = now + chrono::Duration::days(i64::from(days.max(1)));
    let ymd = |d: chrono::DateTime<chrono::Utc>| {
        // Months and days always fit in u8.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = ymd(from);
    params.not_after = ymd(until);
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError(format!("key generation failed: {e}")))?;
    let cert =
        params.self_signed(&key).map_err(|e| TlsError(format!("certificate generation failed: {e}")))?;
    Ok(SelfSigned { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let pair = self_signed(&["localhost".into(), "127.0.0.1".into()], 30).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &pair.cert_pem).unwrap();
        std::fs::write(&key, &pair.key_pem).unwrap();
        (cert, key)
    }

    #[test]
    fn self_signed_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path());
        TlsSetup::load(&cert, &key).unwrap();
    }

    #[test]
    fn mismatched_missing_and_garbage_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_pair(dir.path());
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let (_, other_key) = write_pair(&other);
        let e = TlsSetup::load(&cert, &other_key).unwrap_err().0;
        assert!(e.contains("does not belong to the certificate"), "{e}");

        let e = TlsSetup::load(&dir.path().join("nope.pem"), &other_key).unwrap_err().0;
        assert!(e.contains("nope.pem: cannot read the certificate"), "{e}");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        let e = TlsSetup::load(&junk, &other_key).unwrap_err().0;
        assert!(e.contains("junk.pem: no certificate"), "{e}");
        let e = TlsSetup::load(&cert, &junk).unwrap_err().0;
        assert!(e.contains("junk.pem: no private key"), "{e}");
        // A key where the certificate belongs.
        let e = TlsSetup::load(&other_key, &other_key).unwrap_err().0;
        assert!(e.contains("no certificate"), "{e}");
    }

    #[test]
    fn cache_pins_control_sessions_and_bounds_the_rest() {
        let cache = SessionCache::default();
        cache.put(b"control".to_vec(), b"c".to_vec());
        cache.seal();
        for i in 0..20u8 {
            cache.put(vec![i], vec![i]);
        }
        assert_eq!(cache.len(), 1 + RECENT_MAX);
        // Lookups do not consume.
        assert_eq!(cache.take(b"control"), Some(b"c".to_vec()));
        assert_eq!(cache.take(b"control"), Some(b"c".to_vec()));
        assert_eq!(cache.get(&[19]), Some(vec![19]));
        assert_eq!(cache.get(&[0]), None);
    }

    #[test]
    fn staged_sessions_join_only_on_commit() {
        let cache = Arc::new(SessionCache::default());
        cache.seal();
        let full = StagingStore { cache: cache.clone(), staged: Mutex::default() };
        full.put(b"thief".to_vec(), b"t".to_vec());
        drop(full);
        assert!(cache.get(b"thief").is_none());
        let resumed = StagingStore { cache: cache.clone(), staged: Mutex::default() };
        resumed.put(b"client".to_vec(), b"x".to_vec());
        resumed.commit();
        assert_eq!(cache.get(b"client"), Some(b"x".to_vec()));
    }
}
