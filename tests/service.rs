//! Running under a service manager, with the binary itself: inetd mode on a
//! TCP connection and on a socketpair, systemd socket activation
//! (`LISTEN_FDS`) with readiness notification (`NOTIFY_SOCKET`), the
//! graceful shutdown on SIGTERM (transfers drain, new logins refused, the
//! drain time bounded), and the transfer log reopened on a real SIGHUP.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::*;
use suppaftp::FtpStream;

const FILE_LEN: usize = 3 << 20;

/// A configuration file serving `root` to anonymous users (with an upload
/// directory), one passive port, and a transfer log; `extra` is appended.
fn write_config(dir: &Path, root: &Path, extra: &str) -> String {
    std::fs::create_dir_all(root.join("pub")).unwrap();
    std::fs::create_dir_all(root.join("incoming")).unwrap();
    std::fs::write(root.join("pub/file.bin"), random_bytes(FILE_LEN, 7)).unwrap();
    let port = free_passive_port();
    let config = dir.join("ferroftpd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\
             [auth]\nchain = [\"anonymous\"]\n\
             [anonymous]\nroot = \"{}\"\nupload_dirs = [\"/incoming\"]\n\
             [passive]\nport_range = [{port}, {port}]\n\
             [xferlog]\npath = \"{}\"\n\
             [ban]\nmax_failures = 0\n\
             {extra}\n",
            root.display(),
            dir.join("xferlog").display(),
        ),
    )
    .unwrap();
    config.display().to_string()
}

/// `ferroftpd serve --inetd` with `socket` as standard input and output.
fn spawn_inetd(dir: &Path, config: &str, socket: OwnedFd) -> Child {
    let stdout = socket.try_clone().expect("dup socket");
    Command::new(env!("CARGO_BIN_EXE_ferroftpd"))
        .args(["serve", "--inetd", "--config", config, "--log-level", "info"])
        .current_dir(dir)
        .stdin(Stdio::from(socket))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferroftpd serve --inetd")
}

/// Waits (bounded) for a child to exit and returns its stderr.
fn finish(mut child: Child, within: Duration) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferroftpd --inetd did not exit after the session");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    (status, log)
}

#[test]
fn inetd_mode_serves_one_tcp_connection() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let config = write_config(dir.path(), &root, "");
    // What inetd does: accept, then start the server on the connection.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let child = spawn_inetd(dir.path(), &config, OwnedFd::from(accepted));

    client.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut ftp = FtpStream::connect_with_stream(client).expect("greeting over inetd");
    ftp.login("anonymous", "guest@example.org").unwrap();
    let listing = ftp.list(Some("/pub")).unwrap();
    assert!(listing.iter().any(|l| l.ends_with(" file.bin")), "{listing:?}");
    let data = ftp.retr_as_buffer("/pub/file.bin").unwrap().into_inner();
    assert!(data == random_bytes(FILE_LEN, 7), "RETR over inetd returned other bytes");
    ftp.put_file("/incoming/up.txt", &mut Cursor::new(b"uploaded over inetd".to_vec())).unwrap();
    ftp.quit().unwrap();

    let (status, log) = finish(child, Duration::from_secs(20));
    assert!(status.success(), "exit {status}: {log}");
    assert_eq!(std::fs::read(root.join("incoming/up.txt")).unwrap(), b"uploaded over inetd");
    // The transfer log is written before the process exits.
    let xferlog = std::fs::read_to_string(dir.path().join("xferlog")).unwrap();
    assert_eq!(xferlog.lines().count(), 2, "{xferlog}");
    assert!(log.contains("127.0.0.1"), "the session's log names the client: {log}");
}

/// A raw FTP client on a Unix-domain socket.
struct UnixFtp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl UnixFtp {
    /// Sends a command and returns the final reply line.
    fn cmd(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.reply()
    }

    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "server closed the connection");
            // A final line is "ddd text"; continuation lines are "ddd-" or indented.
            if line.len() >= 4 && line.as_bytes()[3] == b' ' && line[..3].bytes().all(|b| b.is_ascii_digit())
            {
                return line.trim_end().to_string();
            }
        }
    }

    fn expect(&mut self, line: &str, code: &str) -> String {
        let reply = self.cmd(line);
        assert!(reply.starts_with(code), "`{line}` got `{reply}`, expected {code}");
        reply
    }

    /// EPSV, then `command`; returns the data and the final reply.
    fn download(&mut self, command: &str) -> (Vec<u8>, String) {
        let epsv = self.expect("EPSV", "229");
        let port: u16 = epsv
            .split("|||")
            .nth(1)
            .and_then(|r| r.trim_end_matches([')', '|']).parse().ok())
            .unwrap_or_else(|| panic!("malformed EPSV reply: {epsv}"));
        let data = connect_data(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        self.expect(command, "150");
        (read_all(data), self.reply())
    }
}

#[test]
fn inetd_mode_serves_a_socketpair_with_passive_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // TLS configured (not required): AUTH TLS must still be refused here.
    let (cert, key) = common::tls::write_certificate(dir.path());
    let tls = format!("[tls]\ncertificate = \"{}\"\nkey = \"{}\"\n", cert.display(), key.display());
    let config = write_config(dir.path(), &root, &tls);
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = spawn_inetd(dir.path(), &config, OwnedFd::from(theirs));
    ours.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut ftp = UnixFtp { reader: BufReader::new(ours.try_clone().unwrap()), writer: ours };

    let greeting = ftp.reply();
    assert!(greeting.starts_with("220"), "{greeting}");
    ftp.expect("USER anonymous", "331");
    ftp.expect("PASS guest@example.org", "230");
    // No TLS on a Unix-domain control connection, and it says so.
    ftp.expect("AUTH TLS", "431");
    let (listing, done) = ftp.download("LIST /pub");
    assert!(done.starts_with("226"), "{done}");
    assert!(String::from_utf8_lossy(&listing).contains("file.bin"));
    let (data, done) = ftp.download("RETR /pub/file.bin");
    assert!(done.starts_with("226"), "{done}");
    assert!(data == random_bytes(FILE_LEN, 7), "RETR over a socketpair returned other bytes");
    ftp.expect("QUIT", "221");

    let (status, log) = finish(child, Duration::from_secs(20));
    assert!(status.success(), "exit {status}: {log}");
}

#[test]
fn inetd_mode_refuses_a_terminal_or_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let config = write_config(dir.path(), &root, "");
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_ferroftpd"))
            .args(["serve", "--inetd", "--config", &config])
            .stdin(Stdio::null()),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("standard input is not a socket"), "{err}");
}

/// A notification socket as systemd provides (`NOTIFY_SOCKET`).
struct NotifySocket {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        NotifySocket { socket, path }
    }

    /// Reads messages until one contains `wanted` (bounded).
    fn wait_for(&self, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let mut buf = [0u8; 4096];
            let Ok(n) = self.socket.recv(&mut buf) else { break };
            let message = String::from_utf8_lossy(&buf[..n]).to_string();
            if message.lines().any(|l| l == wanted) {
                return message;
            }
            seen.push(message);
        }
        panic!("no {wanted} notification; got {seen:?}");
    }
}

#[test]
fn socket_activation_and_readiness_notification() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // The service manager's socket. Its address is also the configured
    // listener: binding it again would fail, so it must be adopted.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = write_config(dir.path(), &root, "").replace("127.0.0.1:0", &addr.to_string());
    let notify = NotifySocket::bind(dir.path());
    let fd = listener.as_raw_fd();
    let mut command = Command::new("/bin/sh");
    // LISTEN_PID must be the server's own pid: the shell's, kept by exec.
    command
        .args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=ftp exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ferroftpd"))
        .args(["serve", "--config", &config])
        .env("NOTIFY_SOCKET", &notify.path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: dup2 and fcntl are async-signal-safe; they put the listener
    // at fd 3 (the first socket-activation descriptor) without
    // close-on-exec (dup2 onto itself would keep the flag: cleared then).
    unsafe {
        command.pre_exec(move || {
            let result = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if result < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("start ferroftpd under a fake service manager");
    drop(listener);
    let ready = notify.wait_for("READY=1");
    assert!(ready.contains("STATUS="), "{ready}");

    let mut ftp = Ftp::connect(addr);
    ftp.login("anonymous", "guest@example.org");
    assert!(ftp.listing("NLST /pub").contains("file.bin"));
    ftp.expect("QUIT", 221);

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-s", "TERM", &pid]).status().unwrap().success());
    notify.wait_for("STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "exit {status}: {log}");
    assert!(log.contains("socket activation"), "{log}");
}

/// Starts a RETR of the 3 MiB file at 1 MiB/s (about 3 s) on a raw client.
fn start_slow_download(daemon: &Daemon) -> (Ftp, std::thread::JoinHandle<Vec<u8>>) {
    let mut ftp = Ftp::connect(daemon.addr);
    ftp.login("anonymous", "guest@example.org");
    let data = connect_data(ftp.epsv());
    ftp.expect("RETR /pub/file.bin", 150);
    let reader = std::thread::spawn(move || read_all(data));
    (ftp, reader)
}

#[test]
fn sigterm_lets_running_transfers_finish_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let config = write_config(dir.path(), &root, "[bandwidth]\ndownload = \"1 MiB/s\"\n");
    let mut daemon = Daemon::start(dir.path(), &config);
    let mut idle = Ftp::connect(daemon.addr);
    idle.login("anonymous", "guest@example.org");
    let mut not_logged_in = Ftp::connect(daemon.addr);
    let (mut ftp, reader) = start_slow_download(&daemon);
    std::thread::sleep(Duration::from_millis(300));

    daemon.signal("TERM");
    // The listener closes at once.
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect(daemon.addr).is_err()),
        "still accepting connections after SIGTERM"
    );
    // Sessions get 421 at their next command; a login above all.
    assert_eq!(not_logged_in.cmd("USER anonymous").code, 421);
    assert_eq!(idle.cmd("NOOP").code, 421);
    // The running download completes, then its session is closed.
    let data = reader.join().unwrap();
    assert_eq!(data.len(), FILE_LEN, "the download was cut off");
    assert!(data == random_bytes(FILE_LEN, 7));
    assert_eq!(ftp.read_reply().code, 226);
    assert_eq!(ftp.read_reply().code, 421);
    let status = daemon.wait_exit(Duration::from_secs(30)).expect("exit after the drain");
    assert!(status.success(), "exit {status}: {}", daemon.log_text());
    assert!(daemon.logged("all transfers finished"), "{}", daemon.log_text());
    let xferlog = std::fs::read_to_string(dir.path().join("xferlog")).unwrap();
    assert_eq!(xferlog.lines().count(), 1, "the drained transfer is logged: {xferlog}");
}

#[test]
fn sigterm_drain_is_bounded_by_timeouts_drain() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // 3 MiB at 64 KiB/s would take 48 s; the drain gives it 1 s.
    let extra = "[bandwidth]\ndownload = \"64 KiB/s\"\n[timeouts]\ndrain = 1\n";
    let config = write_config(dir.path(), &root, extra);
    let mut daemon = Daemon::start(dir.path(), &config);
    let (_ftp, reader) = start_slow_download(&daemon);
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(20)).expect("exit after the drain time");
    let took = signalled.elapsed();
    assert!(status.success(), "exit {status}: {}", daemon.log_text());
    assert!(took < Duration::from_secs(10), "drain of 1 s took {took:?}");
    assert!(daemon.logged("cutting off running transfers"), "{}", daemon.log_text());
    let data = reader.join().unwrap();
    assert!(data.len() < FILE_LEN, "the transfer cannot have finished");
}

#[test]
fn sighup_reopens_the_transfer_log_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let config = write_config(dir.path(), &root, "");
    let daemon = Daemon::start(dir.path(), &config);
    let xferlog = dir.path().join("xferlog");
    let rotated = dir.path().join("xferlog.1");
    let lines = |path: &Path| std::fs::read_to_string(path).unwrap_or_default().lines().count();

    let mut ftp = Ftp::connect(daemon.addr);
    ftp.login("anonymous", "guest@example.org");
    ftp.retr("/pub/file.bin");
    assert!(wait_until(Duration::from_secs(10), || lines(&xferlog) == 1));
    // logrotate: rename, then signal.
    std::fs::rename(&xferlog, &rotated).unwrap();
    daemon.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || daemon.logged("configuration reloaded")),
        "{}",
        daemon.log_text()
    );
    ftp.retr("/pub/file.bin");
    assert!(wait_until(Duration::from_secs(10), || lines(&xferlog) == 1), "no line in the new file");
    assert_eq!(lines(&rotated), 1, "the rotated file got a line after the reopen");
    ftp.expect("QUIT", 221);
}
