//! Connection and session limits: client counts, per-user sessions, login
//! and idle timeouts, failed-login counting and delay, over-long command
//! lines (answered 500 without growing the server's memory).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;

/// Connects and expects a 421 refusal followed by the server closing.
fn expect_refused(server: &TestServer, what: &str) {
    let mut ftp = Ftp::connect_any(server.addr);
    assert_eq!(ftp.greeting.code, 421, "{what}: expected 421, got `{}`", ftp.greeting);
    ftp.closed_within(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{what}: refused but not closed: {e}"));
}

/// Retries (bounded) until a connection is admitted: the server frees a slot
/// only after the previous session has fully ended.
fn connect_when_admitted(server: &TestServer) -> Ftp {
    let mut admitted = None;
    let ok = wait_until(Duration::from_secs(10), || {
        let ftp = Ftp::connect_any(server.addr);
        if ftp.greeting.code == 220 {
            admitted = Some(ftp);
            true
        } else {
            false
        }
    });
    assert!(ok, "no connection admitted 10 s after a slot was freed");
    admitted.unwrap()
}

#[test]
fn max_clients_refuses_the_third_connection() {
    let server = TestServer::builder().max_clients(2).start();
    let mut first = server.connect();
    let mut second = server.connect();
    expect_refused(&server, "third connection with max_clients = 2");
    // The first two still work, logged in or not.
    first.login(USER, PASSWORD);
    first.expect("NOOP", 200);
    assert_eq!(first.listing("NLST").lines().count(), 2);
    second.expect("NOOP", 200);
    second.login("anonymous", "x");
    second.expect("PWD", 257);
    expect_refused(&server, "still full");
    // Closing one frees a slot.
    first.expect("QUIT", 221);
    first.closed_within(Duration::from_secs(5)).unwrap();
    let mut third = connect_when_admitted(&server);
    third.login(USER, PASSWORD);
    third.expect("NOOP", 200);
    second.expect("NOOP", 200);
}

#[test]
fn max_clients_per_ip_refuses_the_third_connection_from_one_address() {
    let server = TestServer::builder().max_clients_per_ip(2).start();
    let mut first = server.connect();
    let mut second = server.connect();
    expect_refused(&server, "third connection from 127.0.0.1 with max_clients_per_ip = 2");
    first.login(USER, PASSWORD);
    first.expect("NOOP", 200);
    second.login(USER, PASSWORD);
    second.expect("NOOP", 200);
    // A client that just disconnects (no QUIT) frees its slot too.
    drop(first);
    let mut third = connect_when_admitted(&server);
    third.expect("NOOP", 200);
}

#[test]
fn max_sessions_per_user_from_the_configuration() {
    let server = TestServer::builder().max_sessions_per_user(1).start();
    let mut first = server.login();
    let mut second = server.connect();
    second.expect("USER alice", 331);
    let r = second.cmd("PASS secret");
    assert_eq!(r.code, 421, "second alice session with max_sessions_per_user = 1: {r}");
    second.closed_within(Duration::from_secs(5)).expect("refused session is closed");
    // Other accounts are not affected.
    let mut anon = server.connect();
    anon.login("anonymous", "x");
    anon.expect("NOOP", 200);
    first.expect("NOOP", 200);
    // Logging out (REIN) frees the session.
    first.expect("REIN", 220);
    let mut third = server.connect();
    let logged_in = wait_until(Duration::from_secs(10), || {
        third.expect("USER alice", 331);
        let r = third.cmd("PASS secret");
        if r.code == 421 {
            third = server.connect();
        }
        r.code == 230
    });
    assert!(logged_in, "alice could not log in again after her only session logged out");
    third.expect("NOOP", 200);
}

#[test]
fn max_sessions_of_the_account_overrides_the_default() {
    let server = TestServer::builder().max_sessions_per_user(1).alice(|a| a.max_sessions = Some(2)).start();
    let mut a = server.login();
    let mut b = server.login();
    let mut c = server.connect();
    c.expect("USER alice", 331);
    let r = c.cmd("PASS secret");
    assert_eq!(r.code, 421, "third alice session with her max_sessions = 2: {r}");
    a.expect("NOOP", 200);
    b.expect("NOOP", 200);
}

#[test]
fn login_timeout_closes_with_421_even_if_the_client_is_busy() {
    let server = TestServer::builder().login_timeout(1).idle_timeout(60).start();
    // Silent client.
    let start = Instant::now();
    let mut silent = server.connect();
    silent.set_read_timeout(Duration::from_secs(10));
    let r = silent.read_reply();
    let waited = start.elapsed();
    assert_eq!(r.code, 421, "{r}");
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(6), "after {waited:?}");
    silent.closed_within(Duration::from_secs(5)).expect("closed after the login timeout");

    // A client that keeps sending commands without logging in.
    let start = Instant::now();
    let mut busy = server.connect();
    let mut got_421 = false;
    for _ in 0..40 {
        match busy.try_send_bytes(b"NOOP\r\n") {
            Ok(()) => {}
            Err(_) => break,
        }
        match busy.try_read_reply() {
            Ok(Some(r)) if r.code == 421 => {
                got_421 = true;
                break;
            }
            Ok(Some(r)) => assert_eq!(r.code, 200, "{r}"),
            Ok(None) | Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(200)); // pacing: the client stays busy
    }
    let waited = start.elapsed();
    assert!(got_421, "no 421 for a client that never logs in (after {waited:?})");
    assert!(waited < Duration::from_secs(6), "login timeout extended by commands: {waited:?}");

    // Once logged in, the login timeout no longer applies.
    let mut ftp = server.login();
    std::thread::sleep(Duration::from_millis(1800)); // the time passing is what is tested
    ftp.expect("NOOP", 200);
}

#[test]
fn idle_timeout_closes_with_421_and_activity_resets_it() {
    let server = TestServer::builder().idle_timeout(1).start();
    let mut active = server.login();
    // Commands every 400 ms keep the session alive past the 1 s limit.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(400)); // pacing: activity below the limit
        active.expect("NOOP", 200);
    }
    let start = Instant::now();
    active.set_read_timeout(Duration::from_secs(10));
    let r = active.read_reply();
    let waited = start.elapsed();
    assert_eq!(r.code, 421, "{r}");
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(6), "after {waited:?}");
    active.closed_within(Duration::from_secs(5)).expect("closed after the idle timeout");
}

#[test]
fn idle_timeout_does_not_interrupt_a_slow_transfer() {
    let server = TestServer::builder().idle_timeout(1).start();
    // Big enough that the server is still sending after the slow phase
    // (socket buffers on loopback hold several MB).
    let content = random_bytes(40 * 1024 * 1024, 41);
    std::fs::write(server.paths.user("big.bin"), &content).unwrap();
    let mut ftp = server.login();
    let addr = ftp.epsv();
    let mut data = connect_data(addr);
    ftp.expect("RETR big.bin", 150);
    // Read slowly: the transfer lasts well over the idle limit.
    let mut got = Vec::with_capacity(content.len());
    let start = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    while start.elapsed() < Duration::from_millis(2500) {
        let n = data.read(&mut buf).unwrap();
        assert!(n > 0, "the data connection ended early (after {} bytes)", got.len());
        got.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(100)); // a slow reader
    }
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), content.len());
    assert!(got == content, "content");
    ftp.expect_final(226);
    ftp.expect("NOOP", 200);
}

#[test]
fn failed_logins_close_the_connection_after_the_limit() {
    let server = TestServer::builder().max_login_failures(3).start();
    let mut ftp = server.connect();
    for attempt in 1..=2 {
        ftp.expect("USER alice", 331);
        let r = ftp.cmd("PASS wrong");
        assert_eq!(r.code, 530, "failed login {attempt}: {r}");
    }
    ftp.expect("USER nobody", 331);
    let r = ftp.cmd("PASS wrong");
    assert_eq!(r.code, 421, "third failed login with max_login_failures = 3: {r}");
    ftp.closed_within(Duration::from_secs(5)).expect("closed after too many failed logins");

    // A success resets nothing for others: a new connection starts afresh.
    let mut again = server.connect();
    again.expect("USER alice", 331);
    again.expect("PASS wrong", 530);
    again.login(USER, PASSWORD);
    again.expect("NOOP", 200);
}

#[test]
fn failed_logins_are_delayed() {
    let server = TestServer::builder().failed_login_delay_ms(600).start();
    let mut ftp = server.connect();
    ftp.expect("USER alice", 331);
    let start = Instant::now();
    ftp.expect("PASS wrong", 530);
    let failed = start.elapsed();
    assert!(failed >= Duration::from_millis(550), "failed login answered after {failed:?}, delay is 600 ms");
    ftp.expect("USER alice", 331);
    let start = Instant::now();
    ftp.expect("PASS secret", 230);
    let ok = start.elapsed();
    assert!(ok < failed, "a successful login ({ok:?}) should not carry the failure delay ({failed:?})");
}

#[test]
fn over_long_command_lines_get_500_and_the_session_goes_on() {
    let server = TestServer::start();
    let mut ftp = server.connect();

    // Before login.
    let line = format!("USER {}\r\n", "a".repeat(100 * 1024));
    ftp.send_bytes(line.as_bytes());
    let r = ftp.read_reply();
    assert_eq!(r.code, 500, "100 KB command line: {r}");
    // Exactly one reply for the long line: the next one answers NOOP.
    ftp.expect("NOOP", 200);
    ftp.login(USER, PASSWORD);

    // After login, a long path.
    let line = format!("RETR {}\r\n", "b/".repeat(50 * 1024));
    ftp.send_bytes(line.as_bytes());
    let r = ftp.read_reply();
    assert_eq!(r.code, 500, "100 KB command line: {r}");
    ftp.expect("PWD", 257);
    // A line just under the default limit (2048) is parsed normally.
    let name = "c".repeat(200);
    ftp.expect(&format!("MKD {name}"), 257);
    assert!(server.paths.user(&name).is_dir());
    ftp.expect("NOOP", 200);
}

#[test]
fn an_endless_command_line_does_not_grow_the_server() {
    // A process of its own, so the memory measured is the server's alone
    // (the tests beside it in this process log in with argon2 hashes).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let config = dir.path().join("ferroftpd.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = [\"127.0.0.1:0\"]\n[auth]\nchain = [\"anonymous\"]\n[anonymous]\nroot = \"{}\"\n", root.display()),
    )
    .unwrap();
    let daemon = common::daemon::Daemon::start(dir.path(), &config.display().to_string());
    let pid = daemon.pid().to_string();
    let mut ftp = Ftp::connect(daemon.addr);
    ftp.login("anonymous", "guest@example.org");
    let chunk = vec![b'A'; 1024 * 1024];
    let baseline = rss_of(&pid);
    // 64 MB without a line end: the server must discard, not buffer.
    ftp.send_bytes(b"NOOP ");
    let mut sent = 0usize;
    let mut replies_closed = false;
    for _ in 0..64 {
        if ftp.try_send_bytes(&chunk).is_err() {
            replies_closed = true; // closing such a client is acceptable too
            break;
        }
        sent += chunk.len();
    }
    let during = rss_of(&pid);
    let growth = during.saturating_sub(baseline);
    assert!(
        // Buffering the line would grow by the full 64 MB.
        growth < 16 * 1024 * 1024,
        "the process grew by {} MB while the client sent {} MB without a line end",
        growth / (1024 * 1024),
        sent / (1024 * 1024)
    );
    if replies_closed {
        eprintln!("the server closed the connection after {} MB without a line end", sent >> 20);
        return;
    }
    ftp.send_bytes(b"\r\n");
    let r = ftp.read_reply();
    assert_eq!(r.code, 500, "endless line: {r}");
    ftp.expect("NOOP", 200);
    ftp.expect("PWD", 257);
}
