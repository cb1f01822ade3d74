//! Resource exhaustion: slow and silent clients are closed by timeouts, a
//! command flood is slowed then cut off, passive ports come back on every
//! path (ABOR, disconnect, timeouts, a second PASV). (tests/storm.rs
//! checks that storms leave no file descriptor and no memory behind.)

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// Writes `bytes` one at a time, `gap` apart, until the server closes or
/// `stop` passes (a background "slowloris").
fn drip(mut stream: TcpStream, bytes: &'static [u8], gap: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for b in bytes.iter().cycle().take(200) {
            if stream.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(gap);
        }
    })
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a reply line");
    line.trim_end().to_string()
}

#[test]
fn a_client_sending_one_byte_at_a_time_is_closed_by_the_login_timeout() {
    let server = TestServer::builder().login_timeout(2).idle_timeout(60).start();
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert!(read_line(&mut reader).starts_with("220 "));
    let start = Instant::now();
    let dripper = drip(stream, b"USER alice", Duration::from_millis(300));
    assert_eq!(read_line(&mut reader), "421 Timeout: closing control connection.");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6), "after {waited:?}");
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "more after the 421: {rest:?}");
    dripper.join().unwrap();
}

#[test]
fn a_logged_in_client_dripping_a_line_is_closed_by_the_idle_timeout() {
    let server = TestServer::builder().idle_timeout(2).start();
    let mut ftp = server.login();
    let stream = ftp.stream_clone();
    let start = Instant::now();
    let dripper = drip(stream, b"NOOP", Duration::from_millis(300));
    ftp.set_read_timeout(Duration::from_secs(15));
    let r = ftp.read_reply();
    assert_eq!((r.code, r.message()), (421, "Timeout: closing control connection."));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6), "after {waited:?}");
    ftp.closed_within(Duration::from_secs(5)).unwrap();
    dripper.join().unwrap();
}

/// A server whose passive range is one port, so "the port came back" is
/// "another EPSV gets it".
fn one_port_server(data_timeout: u64) -> (TestServer, u16) {
    let port = free_passive_port();
    let server = TestServer::builder()
        .config(move |c| {
            c.passive.port_range = [port, port];
            c.timeouts.data = data_timeout;
            c.timeouts.idle = 2;
        })
        .setup(|p| std::fs::write(p.user("big.bin"), random_bytes(48 * 1024 * 1024, 81)).unwrap())
        .start();
    (server, port)
}

fn epsv_port(ftp: &mut Ftp) -> Result<u16, Reply> {
    let r = ftp.cmd("EPSV");
    if r.code != 229 {
        return Err(r);
    }
    let text = r.message();
    let port = text.split("|||").nth(1).and_then(|t| t.split('|').next()).unwrap();
    Ok(port.parse().unwrap())
}

/// Waits (bounded) until a new session's EPSV gets `port`.
fn port_comes_back(server: &TestServer, port: u16, what: &str) {
    let mut ftp = server.login();
    let back = wait_until(Duration::from_secs(10), || epsv_port(&mut ftp) == Ok(port));
    assert!(back, "{what}: the passive port was not released");
    ftp.expect("ABOR", 225);
}

#[test]
fn a_data_connection_never_read_is_closed_by_the_data_timeout() {
    let (server, port) = one_port_server(1);
    let mut ftp = server.login();
    assert_eq!(epsv_port(&mut ftp), Ok(port));
    let data = connect_data(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    ftp.expect("RETR big.bin", 150);
    let start = Instant::now();
    let r = ftp.read_reply();
    assert_eq!((r.code, r.message()), (426, "Connection closed; transfer aborted."));
    assert!(start.elapsed() < Duration::from_secs(10), "stalled transfer ended after {:?}", start.elapsed());
    drop(data);
    // The session goes on, and the port serves the next transfer.
    assert_eq!(epsv_port(&mut ftp), Ok(port));
    ftp.expect("ABOR", 225);
    assert_eq!(ftp.retr("/ro/readme.txt"), RO_README);
}

#[test]
fn passive_ports_are_released_on_every_path() {
    let (server, port) = one_port_server(1);
    let mut holder = server.login();
    assert_eq!(epsv_port(&mut holder), Ok(port));
    // Taken: another session cannot have it.
    let mut other = server.login();
    let r = epsv_port(&mut other).unwrap_err();
    assert_eq!((r.code, r.message()), (425, "Cannot open passive connection."));
    // A second EPSV of the holder gets the same port back.
    assert_eq!(epsv_port(&mut holder), Ok(port), "second EPSV");
    // ABOR.
    holder.expect("ABOR", 225);
    assert_eq!(epsv_port(&mut other), Ok(port), "after ABOR");
    // Disconnect without QUIT.
    drop(other);
    port_comes_back(&server, port, "disconnect");
    // The data timeout: RETR with nobody connecting.
    assert_eq!(epsv_port(&mut holder), Ok(port));
    holder.expect("RETR /ro/readme.txt", 150);
    let r = holder.read_reply();
    assert_eq!((r.code, r.message()), (425, "Can't open data connection."));
    port_comes_back(&server, port, "data timeout");
    // The idle timeout with a port reserved.
    assert_eq!(epsv_port(&mut holder), Ok(port));
    holder.set_read_timeout(Duration::from_secs(10));
    assert_eq!(holder.read_reply().code, 421);
    port_comes_back(&server, port, "idle timeout");
    // ABOR of a running transfer.
    let mut ftp = server.login();
    assert_eq!(epsv_port(&mut ftp), Ok(port));
    let mut data = connect_data(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    ftp.expect("RETR big.bin", 150);
    let mut first = [0u8; 4096];
    data.read_exact(&mut first).unwrap();
    ftp.send("ABOR");
    let r = ftp.read_reply();
    assert!(r.code == 426 || r.code == 226, "{r}");
    if r.code == 426 {
        ftp.expect_final(226);
    }
    drop(data);
    port_comes_back(&server, port, "ABOR during a transfer");
}

#[test]
fn a_command_flood_is_slowed_then_closed() {
    let server = TestServer::builder()
        .config(|c| {
            c.limits.commands_per_second = 5;
            c.limits.command_burst = 5;
            c.limits.max_throttled_seconds = 2;
        })
        .start();
    // Within the burst: immediate.
    let mut ftp = server.connect();
    let start = Instant::now();
    ftp.send_bytes(&b"NOOP\r\n".repeat(4));
    for _ in 0..4 {
        assert_eq!(ftp.read_reply().code, 200);
    }
    assert!(start.elapsed() < Duration::from_millis(500), "the burst was delayed: {:?}", start.elapsed());
    // Past it: five more take about a second.
    let start = Instant::now();
    ftp.send_bytes(&b"NOOP\r\n".repeat(6));
    for _ in 0..6 {
        assert_eq!(ftp.read_reply().code, 200);
    }
    let slowed = start.elapsed();
    assert!(slowed >= Duration::from_millis(800), "10 commands at 5/s took only {slowed:?}");
    // A client that paces itself at the limit is never closed.
    std::thread::sleep(Duration::from_secs(1)); // the bucket refills
    for _ in 0..12 {
        ftp.expect("NOOP", 200);
        std::thread::sleep(Duration::from_millis(250)); // 4 commands a second
    }
    // A flood: delayed, then cut off.
    let mut flood = server.connect();
    let start = Instant::now();
    let _ = flood.try_send_bytes(&b"NOOP\r\n".repeat(200));
    let mut ok = 0;
    let last = loop {
        let r = flood.read_reply();
        if r.code != 200 {
            break r;
        }
        ok += 1;
    };
    assert_eq!((last.code, last.message()), (421, "Too many commands, closing connection."));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(6), "closed after {took:?}");
    assert!((5..=30).contains(&ok), "{ok} commands answered before the close");
    flood.closed_within(Duration::from_secs(5)).unwrap();
    ftp.expect("NOOP", 200);
}
