//! Shared harness for the end-to-end tests: a real ferroftpd server on an
//! ephemeral 127.0.0.1 port with a throw-away file tree and user database,
//! a small raw FTP client for exact reply checks, and helpers to run outside
//! FTP clients (curl, lftp, python3) with deadlines.
//!
//! Every wait here is bounded: sockets have read timeouts, outside programs
//! are killed at their deadline, polling loops give up after a fixed time.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod admin;
pub mod daemon;
pub mod garage;
pub mod http;
pub mod postgres;
pub mod tls;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ferroftpd::auth::chain::build_chain;
use ferroftpd::auth::password::hash_password;
use ferroftpd::auth::userdb::{SqliteUserStore, UserRecord, UserStore};
use ferroftpd::config::Config;
use ferroftpd::server::{Server, Shared};
use ferroftpd::vfs::MountSpec;

/// The test user and its password.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";

/// Content of `pub/hello.txt` in the anonymous root.
pub const HELLO: &[u8] = b"Hello, anonymous world!\n";

/// Content of the file outside every root that no client may reach.
pub const SECRET: &[u8] = b"top secret: nobody may read this over FTP\n";

/// Content of `readme.txt` in the read-only mount.
pub const RO_README: &[u8] = b"read-only mount content\n";

/// Timeout for one reply on a control connection.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeout for connecting anywhere on 127.0.0.1.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

static TRACING: Once = Once::new();

/// Sends the server's logs to the test output (shown for failing tests);
/// the level comes from `RUST_LOG`, `info` by default.
pub fn init_tracing() {
    TRACING.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ =
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().try_init();
    });
}

/// The directories of one test server.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The temporary directory holding everything below.
    pub base: PathBuf,
    /// Anonymous users' `/` (contains `pub/hello.txt`).
    pub anon_root: PathBuf,
    /// alice's `/`.
    pub user_root: PathBuf,
    /// alice's read-only mount `/ro` (contains `readme.txt`).
    pub ro_dir: PathBuf,
    /// alice's writable mount `/share`.
    pub share_dir: PathBuf,
    /// A directory outside every root (contains `secret.txt`).
    pub outside: PathBuf,
    /// The SQLite user database.
    pub userdb: PathBuf,
}

impl Paths {
    fn create(base: &Path) -> Paths {
        let p = Paths {
            base: base.to_path_buf(),
            anon_root: base.join("anon"),
            user_root: base.join("user"),
            ro_dir: base.join("ro"),
            share_dir: base.join("share"),
            outside: base.join("outside"),
            userdb: base.join("users.db"),
        };
        for dir in [&p.anon_root, &p.user_root, &p.ro_dir, &p.share_dir, &p.outside] {
            std::fs::create_dir_all(dir).expect("create test directory");
        }
        std::fs::create_dir_all(p.anon_root.join("pub")).unwrap();
        std::fs::write(p.anon_root.join("pub/hello.txt"), HELLO).unwrap();
        std::fs::write(p.ro_dir.join("readme.txt"), RO_README).unwrap();
        std::fs::write(p.outside.join("secret.txt"), SECRET).unwrap();
        p
    }

    /// The real path of a file in alice's root (`rel` without leading `/`).
    pub fn user(&self, rel: &str) -> PathBuf {
        self.user_root.join(rel)
    }
}

type ConfigHook = Box<dyn FnOnce(&mut Config, &Paths)>;
type UserHook = Box<dyn FnOnce(&mut UserRecord)>;
type SetupHook = Box<dyn FnOnce(&Paths)>;

/// Builder-style overrides for [`TestServer`].
#[derive(Default)]
pub struct Builder {
    config_hooks: Vec<ConfigHook>,
    user_hooks: Vec<UserHook>,
    setup_hooks: Vec<SetupHook>,
}

impl Builder {
    /// Changes the configuration before the server starts.
    pub fn config(mut self, f: impl FnOnce(&mut Config) + 'static) -> Self {
        self.config_hooks.push(Box::new(move |c, _| f(c)));
        self
    }

    /// Changes alice's database record before the server starts.
    pub fn alice(mut self, f: impl FnOnce(&mut UserRecord) + 'static) -> Self {
        self.user_hooks.push(Box::new(f));
        self
    }

    /// Prepares files before the server starts.
    pub fn setup(mut self, f: impl FnOnce(&Paths) + 'static) -> Self {
        self.setup_hooks.push(Box::new(f));
        self
    }

    pub fn login_timeout(self, secs: u64) -> Self {
        self.config(move |c| c.timeouts.login = secs)
    }

    pub fn idle_timeout(self, secs: u64) -> Self {
        self.config(move |c| c.timeouts.idle = secs)
    }

    pub fn max_clients(self, n: u32) -> Self {
        self.config(move |c| c.limits.max_clients = n)
    }

    pub fn max_clients_per_ip(self, n: u32) -> Self {
        self.config(move |c| c.limits.max_clients_per_ip = n)
    }

    pub fn max_sessions_per_user(self, n: u32) -> Self {
        self.config(move |c| c.limits.max_sessions_per_user = n)
    }

    pub fn max_login_failures(self, n: u32) -> Self {
        self.config(move |c| c.limits.max_login_failures = n)
    }

    pub fn failed_login_delay_ms(self, ms: u64) -> Self {
        self.config(move |c| c.limits.failed_login_delay_ms = ms)
    }

    /// Turns FTPS on: a self-signed certificate for `localhost` and
    /// 127.0.0.1 is generated now (`cert.pem`/`key.pem` in the test
    /// directory, see [`TestServer::ca_file`]) and an implicit-TLS listener
    /// is opened on another ephemeral port. TLS stays optional unless the
    /// policy is changed with [`Builder::config`].
    pub fn tls(mut self) -> Self {
        self.config_hooks.push(Box::new(|c, paths| {
            let (cert, key) = tls::write_certificate(&paths.base);
            c.tls.certificate = Some(cert);
            c.tls.key = Some(key);
            c.tls.implicit_listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        }));
        self
    }

    pub fn start(self) -> TestServer {
        init_tracing();
        let dir = tempfile::Builder::new().prefix("ferroftpd-e2e-").tempdir().expect("create temp dir");
        let paths = Paths::create(dir.path());
        for hook in self.setup_hooks {
            hook(&paths);
        }

        let mut config = Config::default();
        config.server.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        config.server.banner = "ferroftpd e2e test server".to_string();
        config.auth.chain = vec!["anonymous".to_string(), "userdb".to_string()];
        config.anonymous.root = paths.anon_root.clone();
        config.anonymous.upload_dirs = Vec::new();
        config.userdb.path = paths.userdb.clone();
        config.limits.failed_login_delay_ms = 50;
        config.timeouts.data = 30;
        for hook in self.config_hooks {
            hook(&mut config, &paths);
        }

        let store = SqliteUserStore::open(&paths.userdb).expect("open user database");
        let hash = hash_password(PASSWORD).expect("hash password");
        let mut alice = UserRecord::new(USER, hash, paths.user_root.clone());
        alice.mounts = vec![
            MountSpec { virtual_path: "/ro".to_string(), real_path: paths.ro_dir.clone(), read_only: true },
            MountSpec {
                virtual_path: "/share".to_string(),
                real_path: paths.share_dir.clone(),
                read_only: false,
            },
        ];
        for hook in self.user_hooks {
            hook(&mut alice);
        }
        store.put(&alice).expect("store alice");

        let chain = build_chain(&config).expect("build the auth chain");
        type Bound = (SocketAddr, Option<SocketAddr>, Arc<Shared>);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<Bound, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ferroftpd-test-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    match Server::bind(config, chain).await {
                        Ok(server) => {
                            let addrs = server.local_addrs();
                            let Some(addr) = addrs.first().copied() else {
                                let _ = addr_tx.send(Err("server bound no address".into()));
                                return;
                            };
                            let implicit = server.implicit_tls_addrs().first().copied();
                            let _ = addr_tx.send(Ok((addr, implicit, server.shared())));
                            server
                                .run_until(async move {
                                    let _ = stop_rx.await;
                                })
                                .await;
                        }
                        Err(e) => {
                            let _ = addr_tx.send(Err(format!("{e:#}")));
                        }
                    }
                });
                // Sessions still running are cancelled; bounded.
                rt.shutdown_timeout(Duration::from_secs(5));
            })
            .expect("spawn server thread");
        let (addr, implicit_addr, shared) = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(bound)) => bound,
            Ok(Err(e)) => panic!("test server failed to start: {e}"),
            Err(e) => panic!("test server did not report its address within 30 s: {e}"),
        };
        TestServer {
            addr,
            port: addr.port(),
            implicit_addr,
            paths,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

/// A running server; stopped (and its files removed) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub port: u16,
    /// The implicit-TLS listener (with [`Builder::tls`]).
    pub implicit_addr: Option<SocketAddr>,
    pub paths: Paths,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A server with the default test configuration.
    pub fn start() -> TestServer {
        Builder::default().start()
    }

    /// A raw control connection, greeting read (and checked to be 220).
    pub fn connect(&self) -> Ftp {
        Ftp::connect(self.addr)
    }

    /// A raw control connection logged in as alice.
    pub fn login(&self) -> Ftp {
        let mut ftp = self.connect();
        ftp.login(USER, PASSWORD);
        ftp
    }

    /// `ftp://alice:secret@127.0.0.1:PORT/` followed by `path` (no leading `/`).
    pub fn url(&self, path: &str) -> String {
        format!("ftp://{USER}:{PASSWORD}@127.0.0.1:{}/{}", self.port, path)
    }

    /// `ftp://127.0.0.1:PORT/path` (anonymous).
    pub fn anon_url(&self, path: &str) -> String {
        format!("ftp://127.0.0.1:{}/{}", self.port, path)
    }

    /// The state the server's sessions share (limits, bans).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The certificate written by [`Builder::tls`], to trust in clients.
    pub fn ca_file(&self) -> PathBuf {
        self.paths.base.join("cert.pem")
    }

    /// Reloads the configuration as SIGHUP does (this server's is built in
    /// code, so reload re-reads what it names: the certificate files).
    pub fn reload(&self) -> anyhow::Result<()> {
        self.shared.reload()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // The runtime shuts down with a timeout, so this join is bounded.
            let _ = thread.join();
        }
    }
}

/// One reply: code and its text lines (the first without the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Every line as received, without CR LF.
    pub lines: Vec<String>,
}

impl Reply {
    /// All lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The text after the code on the last line.
    pub fn message(&self) -> &str {
        self.lines.last().map(|l| l.get(4..).unwrap_or("")).unwrap_or("")
    }

    pub fn is_error(&self) -> bool {
        self.code >= 400
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// A raw FTP control connection, for checking exact replies. Every read
/// times out after [`REPLY_TIMEOUT`] with a panic naming what was expected.
pub struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub greeting: Reply,
}

impl Ftp {
    /// Connects and reads the greeting, which must be 220.
    pub fn connect(addr: SocketAddr) -> Ftp {
        let ftp = Ftp::connect_any(addr);
        assert_eq!(ftp.greeting.code, 220, "greeting: {}", ftp.greeting);
        ftp
    }

    /// Connects and reads the first reply, whatever it is (421 when refused).
    pub fn connect_any(addr: SocketAddr) -> Ftp {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        Ftp::over(stream)
    }

    /// Connects from another loopback address (e.g. 127.0.0.2) and reads the
    /// first reply, whatever it is.
    pub fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> Ftp {
        assert!(source.is_loopback(), "only loopback sources");
        Ftp::over(connect_from(source, addr))
    }

    /// A client on an already connected stream; reads the first reply.
    pub fn over(stream: TcpStream) -> Ftp {
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().unwrap();
        let mut ftp =
            Ftp { reader: BufReader::new(stream), writer, greeting: Reply { code: 0, lines: Vec::new() } };
        ftp.greeting = ftp.read_reply();
        ftp
    }

    /// Over a connected stream: the first reply, or `None` if the server
    /// (or a balancer in front of it) closed the connection first.
    pub fn try_over(stream: TcpStream) -> Option<Ftp> {
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).ok()?;
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().ok()?;
        let mut ftp =
            Ftp { reader: BufReader::new(stream), writer, greeting: Reply { code: 0, lines: Vec::new() } };
        ftp.greeting = ftp.try_read_reply().ok()??;
        Some(ftp)
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.writer.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Sends one command line (CR LF appended).
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes());
    }

    /// Sends raw bytes as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap_or_else(|e| panic!("cannot send on control connection: {e}"));
    }

    /// Sends raw bytes; an error (server closed) is returned, not a panic.
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads one reply; `Ok(None)` if the server closed the connection first.
    pub fn try_read_reply(&mut self) -> io::Result<Option<Reply>> {
        let first = match self.read_line()? {
            Some(l) => l,
            None => return Ok(None),
        };
        let code = parse_code(&first).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("malformed reply line {first:?}"))
        })?;
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            // Bounded by the read timeout and by this line count.
            for _ in 0..100_000 {
                let line = self.read_line()?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside a multi-line reply",
                    )
                })?;
                let done = line.starts_with(&end) || line == code.to_string();
                lines.push(line);
                if done {
                    return Ok(Some(Reply { code, lines }));
                }
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, "endless multi-line reply"));
        }
        Ok(Some(Reply { code, lines }))
    }

    fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        let n = (&mut self.reader).take(1 << 20).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "reply line without LF"));
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        String::from_utf8(buf).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Reads one reply, panicking on timeout or a closed connection.
    pub fn read_reply(&mut self) -> Reply {
        match self.try_read_reply() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("server closed the control connection instead of replying"),
            Err(e) => panic!("no reply from the server: {e}"),
        }
    }

    /// Reads the replies to an ABOR sent during a transfer: 426 then 226, or
    /// 226 alone when the transfer had just ended (RFC 959).
    pub fn expect_abort_replies(&mut self, what: &str) {
        let first = self.read_reply();
        match first.code {
            426 => {
                let second = self.read_reply();
                assert_eq!(second.code, 226, "{what}: after 426: {second}");
            }
            226 => {}
            _ => panic!("{what}: ABOR got {first} (expected 426 then 226, or 226)"),
        }
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.read_reply()
    }

    /// Sends a command and checks the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "`{line}` got `{reply}`, expected {code}");
        reply
    }

    /// Reads the next reply and checks its code (e.g. a transfer's 226).
    pub fn expect_final(&mut self, code: u16) -> Reply {
        let reply = self.read_reply();
        assert_eq!(reply.code, code, "got `{reply}`, expected {code}");
        reply
    }

    /// USER + PASS, expecting 331 then 230.
    pub fn login(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// True if the server closes the connection (EOF or reset) within
    /// `within`, discarding anything it still sends. Replies read on the
    /// way are returned in the error for diagnosis.
    pub fn closed_within(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("still open after {within:?}; read {seen:?}"));
            }
            self.writer.set_read_timeout(Some(left)).unwrap();
            let mut buf = [0u8; 4096];
            match self.reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => seen.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(format!("still open after {within:?}; read {seen:?}"))
                }
                Err(_) => return Ok(()), // reset
            }
        }
    }

    /// EPSV: opens a passive data address (127.0.0.1 and the given port).
    pub fn epsv(&mut self) -> SocketAddr {
        let reply = self.expect("EPSV", 229);
        let text = reply.text();
        let inner = text
            .split_once("(|||")
            .and_then(|(_, rest)| rest.split_once("|)"))
            .map(|(port, _)| port)
            .unwrap_or_else(|| panic!("malformed EPSV reply: {text}"));
        let port: u16 = inner.parse().unwrap_or_else(|_| panic!("bad EPSV port in {text}"));
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// PASV: the address the server advertises.
    pub fn pasv(&mut self) -> SocketAddr {
        let reply = self.expect("PASV", 227);
        parse_pasv(&reply.text()).unwrap_or_else(|| panic!("malformed PASV reply: {reply}"))
    }

    /// Runs a download-type command (RETR, LIST, NLST, MLSD) over EPSV and
    /// returns the final reply and the data; the preliminary reply must be 150.
    pub fn download(&mut self, command: &str) -> (Reply, Vec<u8>) {
        let addr = self.epsv();
        let data = connect_data(addr);
        let reply = self.cmd(command);
        assert_eq!(reply.code, 150, "`{command}` got `{reply}`, expected 150");
        let bytes = read_all(data);
        (self.read_reply(), bytes)
    }

    /// Like [`Ftp::download`] but the command may fail: returns the first
    /// reply and, if it was 1xx, the data and the final reply.
    pub fn try_download(&mut self, command: &str) -> (Reply, Option<(Vec<u8>, Reply)>) {
        let addr = self.epsv();
        let data = connect_data(addr);
        let first = self.cmd(command);
        if first.code >= 200 {
            return (first, None);
        }
        let bytes = read_all(data);
        let last = self.read_reply();
        (first, Some((bytes, last)))
    }

    /// RETR over EPSV; the transfer must succeed (150, then 226).
    pub fn retr(&mut self, path: &str) -> Vec<u8> {
        let (reply, data) = self.download(&format!("RETR {path}"));
        assert_eq!(reply.code, 226, "RETR {path}: final reply `{reply}`");
        data
    }

    /// A listing command's text over EPSV (must succeed).
    pub fn listing(&mut self, command: &str) -> String {
        let (reply, data) = self.download(command);
        assert_eq!(reply.code, 226, "{command}: final reply `{reply}`");
        String::from_utf8(data).expect("listing is UTF-8")
    }

    /// Runs an upload-type command (STOR, APPE, STOU) over EPSV; returns the
    /// preliminary and the final reply. The preliminary must be 150.
    pub fn upload(&mut self, command: &str, content: &[u8]) -> (Reply, Reply) {
        let addr = self.epsv();
        let mut data = connect_data(addr);
        let first = self.cmd(command);
        assert_eq!(first.code, 150, "`{command}` got `{first}`, expected 150");
        data.write_all(content).expect("send upload data");
        data.shutdown(Shutdown::Write).ok();
        drop(data);
        (first, self.read_reply())
    }

    /// Like [`Ftp::upload`] but the command may be refused: returns the first
    /// reply, and the final one if data was sent.
    pub fn try_upload(&mut self, command: &str, content: &[u8]) -> (Reply, Option<Reply>) {
        let addr = self.epsv();
        let mut data = connect_data(addr);
        let first = self.cmd(command);
        if first.code >= 200 {
            return (first, None);
        }
        let _ = data.write_all(content);
        data.shutdown(Shutdown::Write).ok();
        drop(data);
        (first, Some(self.read_reply()))
    }

    /// STOR over EPSV; must end with 226.
    pub fn stor(&mut self, path: &str, content: &[u8]) {
        let (_, last) = self.upload(&format!("STOR {path}"), content);
        assert_eq!(last.code, 226, "STOR {path}: final reply `{last}`");
    }

    /// The local address of the control connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().unwrap()
    }

    /// Another handle on the control connection, e.g. to write from a
    /// second thread while this one reads.
    pub fn stream_clone(&self) -> TcpStream {
        self.writer.try_clone().expect("clone the control connection")
    }

    /// Closes the writing half (the client's EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.writer.shutdown(Shutdown::Write);
    }

    /// The TCP connection, e.g. to start TLS on it after `234`. Nothing
    /// may be buffered unread.
    pub fn into_tcp(self) -> TcpStream {
        assert!(self.reader.buffer().is_empty(), "unread bytes after the last reply");
        self.writer
    }
}

pub fn parse_code(line: &str) -> Option<u16> {
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match line.as_bytes().get(3) {
        None | Some(b' ') | Some(b'-') => code.parse().ok(),
        _ => None,
    }
}

/// Parses `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
pub fn parse_pasv(text: &str) -> Option<SocketAddr> {
    let start = text.find('(')?;
    let end = text[start..].find(')')? + start;
    let nums: Vec<u16> =
        text[start + 1..end].split(',').map(|n| n.trim().parse().ok()).collect::<Option<_>>()?;
    if nums.len() != 6 || nums.iter().any(|&n| n > 255) {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8);
    Some(SocketAddr::from((ip, nums[4] * 256 + nums[5])))
}

/// A TCP connection from `source` (another loopback address, such as
/// 127.0.0.2) to `to`.
pub fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap_or_else(|e| panic!("bind {source}: {e}"));
    socket.connect_timeout(&to.into(), CONNECT_TIMEOUT).unwrap_or_else(|e| panic!("connect to {to}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream
}

/// Raises this process's soft limit on open files to the hard limit and
/// returns it (tests that hold thousands of sockets).
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Open file descriptors of this process (the in-process server's and the
/// test's own).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd").count()
}

/// A free port on 127.0.0.1 (free when asked; another program may take it).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A free port below Linux's ephemeral range (32768 and up), for a passive
/// range of one port: a port from the ephemeral range can be taken at any
/// moment by another test's outgoing connection.
pub fn free_passive_port() -> u16 {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (0..12_000u16)
        .map(|i| 20_000 + (start - 20_000 + i) % 12_000)
        .find(|&p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok())
        .expect("a free port between 20000 and 32000")
}

/// `len` consecutive free ports below Linux's ephemeral range (see
/// [`free_passive_port`]), for a passive range of several ports; `after`
/// skips ranges starting at or below it, so two ranges found one after the
/// other do not overlap.
pub fn free_passive_range(len: u16, after: u16) -> [u16; 2] {
    let start = 20_000 + ((std::process::id() % 1_000) as u16) * 10;
    (0..1_200u16)
        .map(|i| 20_000 + (start - 20_000 + i * 10) % 12_000)
        .filter(|&first| first > after)
        .find(|&first| (first..first + len).all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()))
        .map(|first| [first, first + len - 1])
        .expect("free ports between 20000 and 32000")
}

/// Connects a data connection to a passive address (must be 127.0.0.1).
pub fn connect_data(addr: SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback(), "refusing to connect to non-loopback {addr}");
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot open data connection to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads a data connection to EOF (bounded by its read timeout).
pub fn read_all(mut data: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    data.read_to_end(&mut out).expect("read data connection");
    out
}

/// A listener for active-mode transfers, on 127.0.0.1.
pub struct ActiveListener {
    listener: TcpListener,
}

impl ActiveListener {
    pub fn bind() -> ActiveListener {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind active listener");
        listener.set_nonblocking(true).unwrap();
        ActiveListener { listener }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// `PORT h1,h2,h3,h4,p1,p2` for this listener.
    pub fn port_arg(&self) -> String {
        let port = self.addr().port();
        format!("127,0,0,1,{},{}", port >> 8, port & 0xff)
    }

    /// `EPRT |1|127.0.0.1|port|` for this listener.
    pub fn eprt_arg(&self) -> String {
        format!("|1|127.0.0.1|{}|", self.addr().port())
    }

    /// Waits for the server's connection (at most `within`).
    pub fn accept(&self, within: Duration) -> TcpStream {
        let deadline = Instant::now() + within;
        loop {
            match self.listener.accept() {
                Ok((s, from)) => {
                    assert!(from.ip().is_loopback(), "active connection from {from}");
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
                    return s;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "server did not connect for the active transfer");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept failed: {e}"),
            }
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for tens of MB.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Panics with a clear message if a program the test needs is not on PATH.
/// Tests never skip silently: .ci/run installs every program they use.
pub fn require_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return candidate;
            }
        }
    }
    panic!(
        "required test program `{name}` is not installed or not on PATH; \
         install it (e.g. `apt-get install {name}`; .ci/run does this) — this test does not skip"
    );
}

/// Runs a program to completion, killing it at `deadline` (then panicking).
/// Standard input is empty; output is captured.
pub fn run(cmd: &mut Command, deadline: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + deadline;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break status,
            None if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                let out = out_thread.join().unwrap_or_default();
                let err = err_thread.join().unwrap_or_default();
                panic!(
                    "{what} did not finish within {deadline:?}; killed.\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    Output { status, stdout, stderr }
}

/// Formats a finished program's output for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Polls `cond` every 20 ms until it holds or `within` passes; returns
/// whether it held.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file's modification time.
pub fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names in a real directory, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file below `root` (relative paths, sorted) with its content;
/// directories are listed with `None`.
pub fn tree(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                out.push((rel, None));
                walk(root, &path, out);
            } else {
                out.push((rel, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Current resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    rss_of("self")
}

/// Resident memory of process `pid` (`"self"` for this one), in bytes.
pub fn rss_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().expect("VmRSS number");
            return kb * 1024;
        }
    }
    panic!("no VmRSS in /proc/self/status");
}

/// The `haproxy` program, or `None` (with a message) to skip outside CI.
pub fn haproxy_program() -> Option<PathBuf> {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is not installed (apt-get install haproxy; .ci/run does this): required in CI"
        );
        eprintln!("SKIPPED: haproxy is not installed (apt-get install haproxy)");
    }
    found
}

/// Runs the ferroftpd binary in `dir` with `args`, feeding `stdin`.
pub fn run_cli(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferroftpd"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferroftpd");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for ferroftpd")
}
