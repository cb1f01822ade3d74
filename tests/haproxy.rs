//! Behind a load balancer: real HAProxy (TCP mode, `send-proxy-v2`, health
//! checks, `option redispatch`) in front of two ferroftpd nodes started as
//! the binary, each with its own passive range, sharing one directory that
//! stands in for shared storage. Clients connect from 127.0.0.2 (and .3,
//! .4) so the nodes must learn the real address from the PROXY header: the
//! log, the transfer log, `[access]` rules, bans and the passive
//! accept-from check all see it. Then nodes are killed with SIGKILL in the
//! middle of a download and of an upload, and right after a 226; the client
//! reconnects through HAProxy to the other node and resumes with REST.
//!
//! HAProxy comes from Debian's `haproxy` package (.ci/run installs it).
//! Without it the tests fail in CI (`CI` set) and are skipped with a
//! message elsewhere.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::Daemon;
use common::*;
use ferroftpd::auth::password::hash_password;
use ferroftpd::auth::userdb::{SqliteUserStore, UserRecord, UserStore};

/// The client's address as the nodes must see it.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Denied by the nodes' `[access]` rules.
const DENIED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Banned by failed logins in one test.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// HAProxy's readiness probe: a client too, kept apart from the others.
const PROBE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

/// Transfers of the kill tests are held to this rate so a kill lands in
/// their middle.
const RATE: usize = 4 * 1024 * 1024;

/// HAProxy as a child process, killed on drop.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
    /// The implicit-TLS frontend (when the nodes have one).
    tls_addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Haproxy {
    /// Relays a frontend to `nodes`, and when `tls_nodes` is not empty a
    /// second one to their implicit-TLS listeners.
    fn start(program: &Path, dir: &Path, nodes: &[SocketAddr], tls_nodes: &[SocketAddr]) -> Haproxy {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let tls_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let servers = |nodes: &[SocketAddr]| -> String {
            nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    format!("    server node{i} {node} send-proxy-v2 check inter 300ms fall 2 rise 1\n")
                })
                .collect()
        };
        let mut config = format!(
            "global\n    maxconn 200\n\
             defaults\n    mode tcp\n    timeout connect 500ms\n    timeout client 120s\n    \
             timeout server 120s\n    retries 3\n    option redispatch 1\n\
             frontend ftp\n    bind {addr}\n    default_backend nodes\n\
             backend nodes\n    balance roundrobin\n{}",
            servers(nodes)
        );
        if !tls_nodes.is_empty() {
            config.push_str(&format!(
                "frontend ftps\n    bind {tls_addr}\n    default_backend tls_nodes\n\
                 backend tls_nodes\n    balance roundrobin\n{}",
                servers(tls_nodes)
            ));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(program)
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haproxy");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            sink.lock().unwrap().extend(text.lines().map(String::from));
        });
        let haproxy = Haproxy { child, addr, tls_addr, log };
        // Ready when a client gets a greeting through it.
        let ready = wait_until(Duration::from_secs(30), || {
            try_connect_from(PROBE, addr).is_some_and(|s| {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut first = [0u8; 3];
                (&s).read_exact(&mut first).is_ok() && &first == b"220"
            })
        });
        assert!(ready, "haproxy did not relay a greeting:\n{}", haproxy.log.lock().unwrap().join("\n"));
        haproxy
    }
}

/// A connection from `source` to `to`, or `None` if nothing listens yet.
fn try_connect_from(source: Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.bind(&SocketAddr::from((source, 0)).into()).ok()?;
    socket.connect_timeout(&to.into(), Duration::from_secs(1)).ok()?;
    Some(socket.into())
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two nodes behind HAProxy sharing one root; alice's files are there.
struct Cluster {
    dir: tempfile::TempDir,
    root: PathBuf,
    nodes: Vec<Daemon>,
    ranges: Vec<[u16; 2]>,
    haproxy: Haproxy,
}

/// The last passive port handed out, so the clusters of tests running at
/// once get ranges of their own.
static LAST_PORT: Mutex<u16> = Mutex::new(0);

fn passive_range() -> [u16; 2] {
    let mut last = LAST_PORT.lock().unwrap();
    let range = free_passive_range(4, *last);
    *last = range[1];
    range
}

impl Cluster {
    /// `None` when HAProxy is missing outside CI. `extra` is appended to
    /// each node's configuration.
    fn start(extra: &str) -> Option<Cluster> {
        Cluster::start_with(extra, false)
    }

    /// With `implicit_tls`, each node also has an implicit-TLS listener
    /// (behind HAProxy's second frontend) and a certificate in `cert.pem`.
    fn start_with(extra: &str, implicit_tls: bool) -> Option<Cluster> {
        let program = haproxy_program()?;
        let dir = tempfile::tempdir().unwrap();
        let tls = if implicit_tls {
            let (cert, key) = common::tls::write_certificate(dir.path());
            format!(
                "[tls]\ncertificate = \"{}\"\nkey = \"{}\"\nimplicit_listen = [\"127.0.0.1:0\"]\n",
                cert.display(),
                key.display()
            )
        } else {
            String::new()
        };
        let root = dir.path().join("shared");
        std::fs::create_dir(&root).unwrap();
        let store = SqliteUserStore::open(dir.path().join("users.db")).unwrap();
        store.put(&UserRecord::new(USER, hash_password(PASSWORD).unwrap(), root.clone())).unwrap();
        let mut nodes = Vec::new();
        let mut ranges = Vec::new();
        for name in ["a", "b"] {
            let range = passive_range();
            let config = dir.path().join(format!("node-{name}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[server]\nlisten = [\"127.0.0.1:0\"]\nbanner = \"node-{name} ready\"\n\
                     [auth]\nchain = [\"userdb\"]\n[userdb]\npath = \"users.db\"\n\
                     [passive]\nport_range = [{}, {}]\n\
                     [timeouts]\ndata = 15\n\
                     [limits]\nfailed_login_delay_ms = 20\n\
                     [access]\ndeny = [\"{DENIED}\"]\n\
                     [xferlog]\npath = \"{}\"\n\
                     [proxy_protocol]\ntrusted = [\"127.0.0.1/32\"]\nrequired = true\nheader_timeout = 1\n{tls}{extra}",
                    range[0],
                    range[1],
                    dir.path().join(format!("xferlog-{name}")).display(),
                ),
            )
            .unwrap();
            nodes.push(Daemon::start(dir.path(), config.to_str().unwrap()));
            ranges.push(range);
        }
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let tls_addrs: Vec<SocketAddr> = if implicit_tls {
            nodes.iter().map(|n| n.log_value("listening (implicit TLS) addr=").parse().unwrap()).collect()
        } else {
            Vec::new()
        };
        let haproxy = Haproxy::start(&program, dir.path(), &addrs, &tls_addrs);
        Some(Cluster { dir, root, nodes, ranges, haproxy })
    }

    /// Connects through HAProxy from `source`; the first reply, whatever
    /// it is (retried while HAProxy has no node to offer).
    fn connect_from(&self, source: Ipv4Addr) -> Ftp {
        let mut last = String::new();
        for _ in 0..50 {
            let stream = connect_from(source, self.haproxy.addr);
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            match Ftp::try_over(stream) {
                Some(ftp) => return ftp,
                None => last = "closed without a reply".into(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no reply through haproxy ({last}):\n{}", self.logs());
    }

    /// A logged-in client from [`CLIENT`] on the node `index` (HAProxy
    /// alternates, so a few connections reach it).
    fn login_on(&self, index: usize) -> Ftp {
        let banner = format!("node-{} ready", ["a", "b"][index]);
        for _ in 0..10 {
            let mut ftp = self.connect_from(CLIENT);
            if ftp.greeting.text().contains(&banner) {
                ftp.login(USER, PASSWORD);
                ftp.expect("TYPE I", 200);
                return ftp;
            }
            ftp.cmd("QUIT");
        }
        panic!("haproxy never chose node {index}:\n{}", self.logs());
    }

    fn node_log(&self, index: usize) -> String {
        self.nodes[index].log_text()
    }

    fn logs(&self) -> String {
        format!(
            "--- node a\n{}\n--- node b\n{}\n--- haproxy\n{}",
            self.node_log(0),
            self.node_log(1),
            self.haproxy.log.lock().unwrap().join("\n")
        )
    }
}

/// Client side helpers: data connections come from [`CLIENT`] too, as a
/// real client's would.
trait FromClient {
    fn data(&mut self) -> TcpStream;
    fn retr_from(&mut self, command: &str) -> Vec<u8>;
    fn stor_from(&mut self, command: &str, content: &[u8]);
}

impl FromClient for Ftp {
    fn data(&mut self) -> TcpStream {
        let stream = connect_from(CLIENT, self.epsv());
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream
    }

    fn retr_from(&mut self, command: &str) -> Vec<u8> {
        let data = self.data();
        self.expect(command, 150);
        let bytes = read_all(data);
        self.expect_final(226);
        bytes
    }

    fn stor_from(&mut self, command: &str, content: &[u8]) {
        let mut data = self.data();
        self.expect(command, 150);
        data.write_all(content).unwrap();
        data.shutdown(Shutdown::Write).unwrap();
        drop(data);
        self.expect_final(226);
    }
}

#[test]
fn nodes_see_the_real_client_and_serve_each_others_uploads() {
    let Some(cluster) = Cluster::start("") else { return };
    let content = random_bytes(3 * 1024 * 1024 + 17, 1);

    // Upload through node A, with PASV: its own address and range.
    let mut a = cluster.login_on(0);
    let pasv = a.pasv();
    assert_eq!(pasv.ip(), Ipv4Addr::LOCALHOST);
    let [first, last] = cluster.ranges[0];
    assert!(
        (first..=last).contains(&pasv.port()),
        "PASV port {} outside node A's {first}-{last}",
        pasv.port()
    );
    let mut data = connect_from(CLIENT, pasv);
    a.expect("STOR shared.bin", 150);
    data.write_all(&content).unwrap();
    drop(data);
    a.expect_final(226);
    a.cmd("QUIT");

    // Listed and downloaded byte for byte through node B, on B's range.
    let mut b = cluster.login_on(1);
    let port = b.epsv().port();
    let [first, last] = cluster.ranges[1];
    assert!((first..=last).contains(&port), "EPSV port {port} outside node B's {first}-{last}");
    b.expect("ABOR", 225);
    let listing = String::from_utf8(b.retr_from("NLST")).unwrap();
    assert!(listing.lines().any(|l| l == "shared.bin"), "{listing}");
    assert!(b.retr_from("RETR shared.bin") == content, "node B served other bytes");
    b.cmd("QUIT");

    // Both nodes logged the client's address, never HAProxy's.
    for (index, xferlog) in [(0, "xferlog-a"), (1, "xferlog-b")] {
        let log = cluster.node_log(index);
        assert!(log.contains(&format!("peer={CLIENT}:")), "node {index} log:\n{log}");
        assert!(!log.contains("peer=127.0.0.1:"), "node {index} saw the balancer as a client:\n{log}");
        let path = cluster.dir.path().join(xferlog);
        assert!(wait_until(Duration::from_secs(10), || std::fs::read_to_string(&path)
            .is_ok_and(|t| t.contains(&format!(" {CLIENT} ")))));
    }
    // Health checks (PROXY LOCAL) leave no warnings behind.
    assert!(!cluster.logs().contains("no valid PROXY header"), "{}", cluster.logs());

    // The passive port only takes the client's own address: a data
    // connection from the balancer's address is refused.
    let mut b = cluster.login_on(1);
    let port = b.epsv();
    let _thief = connect_data(port);
    let mut legit = connect_from(CLIENT, port);
    b.expect("RETR shared.bin", 150);
    let mut first_bytes = [0u8; 16];
    legit.read_exact(&mut first_bytes).unwrap();
    assert_eq!(&first_bytes, &content[..16]);
    drop(legit);
    assert!(cluster.node_log(1).contains("refused passive data connection from a foreign address"));
}

#[test]
fn address_rules_bans_and_direct_connections() {
    let Some(cluster) = Cluster::start("[ban]\nmax_failures = 2\nwindow = 600\nduration = 600\n") else {
        return;
    };
    // `[access]` denies 127.0.0.3: through HAProxy it gets 421 from either node.
    for _ in 0..2 {
        let denied = cluster.connect_from(DENIED);
        assert_eq!(denied.greeting.text(), "421 Access denied for your address.");
    }

    // Failed logins from 127.0.0.4 ban it on each node it reached.
    let mut refused_in_a_row = 0;
    for _ in 0..12 {
        let mut ftp = cluster.connect_from(ATTACKER);
        if ftp.greeting.code == 421 {
            assert!(ftp.greeting.text().contains("Too many failed logins"), "{}", ftp.greeting);
            refused_in_a_row += 1;
            if refused_in_a_row == 2 {
                break;
            }
            continue;
        }
        refused_in_a_row = 0;
        ftp.expect("USER alice", 331);
        // The failure that bans is answered with the ban's 421.
        let reply = ftp.cmd("PASS wrong");
        assert!(matches!(reply.code, 530 | 421), "{reply}");
    }
    assert_eq!(refused_in_a_row, 2, "127.0.0.4 was not banned:\n{}", cluster.logs());
    // The ban is the attacker's, not HAProxy's: others still log in.
    let mut ftp = cluster.login_on(0);
    ftp.expect("NOOP", 200);
    let mut ftp = cluster.login_on(1);
    ftp.expect("NOOP", 200);
    assert!(cluster.logs().contains(&format!("address={ATTACKER}")), "{}", cluster.logs());

    // Straight to a node: an untrusted source is refused without a word
    // (the listener requires the balancer); a trusted one that sends no
    // header is closed after header_timeout, with a log line.
    let node = cluster.nodes[0].addr;
    let mut direct = connect_from(CLIENT, node);
    let mut buf = [0u8; 64];
    assert!(matches!(direct.read(&mut buf), Ok(0) | Err(_)), "an untrusted direct client got a reply");
    let mut silent = connect_from(Ipv4Addr::LOCALHOST, node);
    let started = std::time::Instant::now();
    assert!(matches!(silent.read(&mut buf), Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(10));
    // A trusted source that sends garbage instead of a header.
    let mut garbage = connect_from(Ipv4Addr::LOCALHOST, node);
    garbage.write_all(b"USER alice\r\n").unwrap();
    assert!(matches!(garbage.read(&mut buf), Ok(0) | Err(_)));
    let log = cluster.node_log(0);
    assert!(log.contains("not from a trusted PROXY protocol source"), "{log}");
    assert!(log.contains("no complete PROXY header in time"), "{log}");
    assert!(log.contains("invalid PROXY header"), "{log}");
    // A v1 header by hand is understood too.
    let mut v1 = connect_from(Ipv4Addr::LOCALHOST, node);
    v1.write_all(format!("PROXY TCP4 {DENIED} 127.0.0.1 40000 2121\r\n").as_bytes()).unwrap();
    let mut reply = String::new();
    v1.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "421 Access denied for your address.\r\n");
}

/// Reads from a data connection until it fails or ends.
fn read_until_broken(data: &mut TcpStream, into: &mut Vec<u8>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match data.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => into.extend_from_slice(&buf[..n]),
        }
    }
}

fn rate_limited() -> String {
    format!("[bandwidth]\ndownload = {RATE}\nupload = {RATE}\n")
}

#[test]
fn a_download_resumes_on_the_other_node_after_kill_9() {
    let Some(mut cluster) = Cluster::start(&rate_limited()) else { return };
    let content = random_bytes(3 * RATE, 2);
    std::fs::write(cluster.root.join("big.bin"), &content).unwrap();

    let mut a = cluster.login_on(0);
    let mut data = a.data();
    a.expect("RETR big.bin", 150);
    let mut got = vec![0u8; RATE / 2];
    data.read_exact(&mut got).unwrap();
    let killed = std::time::Instant::now();
    cluster.nodes[0].kill();
    read_until_broken(&mut data, &mut got);
    assert!(got.len() < content.len(), "the download ended before the kill; raise its size");
    assert!(got == content[..got.len()], "the bytes before the kill are wrong");

    // Reconnect through HAProxy: node A is gone, node B answers.
    let mut b = cluster.connect_from(CLIENT);
    assert!(b.greeting.text().contains("node-b"), "{}", b.greeting);
    eprintln!("greeted by the other node {:?} after the kill", killed.elapsed());
    b.login(USER, PASSWORD);
    b.expect("TYPE I", 200);
    b.expect(&format!("REST {}", got.len()), 350);
    let rest = b.retr_from("RETR big.bin");
    got.extend_from_slice(&rest);
    assert_eq!(got.len(), content.len());
    assert!(got == content, "the resumed download differs");
}

#[test]
fn an_upload_resumes_on_the_other_node_after_kill_9() {
    let Some(mut cluster) = Cluster::start(&rate_limited()) else { return };
    let content = random_bytes(3 * RATE, 3);
    let path = cluster.root.join("up.bin");

    let mut a = cluster.login_on(0);
    let mut data = a.data();
    a.expect("STOR up.bin", 150);
    data.write_all(&content[..RATE]).unwrap();
    let landed = wait_until(Duration::from_secs(20), || {
        std::fs::metadata(&path).is_ok_and(|m| m.len() >= (RATE / 4) as u64)
    });
    assert!(landed, "the upload did not reach the disk");
    cluster.nodes[0].kill();
    drop(data);

    let mut b = cluster.connect_from(CLIENT);
    assert!(b.greeting.text().contains("node-b"), "{}", b.greeting);
    b.login(USER, PASSWORD);
    b.expect("TYPE I", 200);
    let size = b.expect("SIZE up.bin", 213);
    let have: usize = size.message().trim().parse().unwrap();
    assert!(have > 0 && have < content.len(), "{have} bytes after the kill");
    assert!(std::fs::read(&path).unwrap() == content[..have], "the part written before the kill differs");
    b.expect(&format!("REST {have}"), 350);
    b.stor_from("STOR up.bin", &content[have..]);
    assert!(b.retr_from("RETR up.bin") == content, "the resumed upload differs");
}

#[test]
fn an_acknowledged_upload_survives_its_node_being_killed() {
    let Some(mut cluster) = Cluster::start("") else { return };
    let content = random_bytes(8 * 1024 * 1024 + 3, 4);
    let mut a = cluster.login_on(0);
    a.stor_from("STOR acked.bin", &content);
    cluster.nodes[0].kill();

    assert!(std::fs::read(cluster.root.join("acked.bin")).unwrap() == content);
    // Every new client now gets node B, including those HAProxy first
    // sends to the dead node (redispatched after its connect fails).
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let mut ftp = cluster.connect_from(CLIENT);
        assert!(ftp.greeting.text().contains("node-b"), "{}", ftp.greeting);
        eprintln!("greeted by the surviving node in {:?}", started.elapsed());
        ftp.cmd("QUIT");
    }
    let mut b = cluster.connect_from(CLIENT);
    assert!(b.greeting.text().contains("node-b"), "{}", b.greeting);
    b.login(USER, PASSWORD);
    b.expect("TYPE I", 200);
    assert!(b.retr_from("RETR acked.bin") == content, "the acknowledged upload differs");
}

#[test]
fn curl_through_haproxy() {
    let Some(cluster) = Cluster::start("") else { return };
    let curl = require_program("curl");
    let content = random_bytes(1024 * 1024 + 5, 5);
    let local = cluster.dir.path().join("curl-up.bin");
    std::fs::write(&local, &content).unwrap();
    let url = format!("ftp://{USER}:{PASSWORD}@{}/curl.bin", cluster.haproxy.addr);
    let out = run(
        Command::new(&curl).args(["-sS", "--interface", "127.0.0.2", "-T"]).arg(&local).arg(&url),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "curl upload: {}", describe(&out));
    let back = cluster.dir.path().join("curl-down.bin");
    let out = run(
        Command::new(&curl).args(["-sS", "--interface", "127.0.0.2", "-o"]).arg(&back).arg(&url),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "curl download: {}", describe(&out));
    assert!(std::fs::read(&back).unwrap() == content);
    assert!(std::fs::read(cluster.root.join("curl.bin")).unwrap() == content);
    assert!(cluster.logs().contains(&format!("peer={CLIENT}:")), "{}", cluster.logs());
}

#[test]
fn implicit_tls_through_haproxy() {
    let Some(cluster) = Cluster::start_with("", true) else { return };
    let config = common::tls::client_config(&cluster.dir.path().join("cert.pem"));
    let content = random_bytes(512 * 1024 + 9, 6);
    // The node reads the PROXY header and leaves what follows (the
    // ClientHello, in the same segment or the next) for the handshake.
    // Twice, so both nodes answer.
    for name in ["tls-a.bin", "tls-b.bin"] {
        let mut ftp = common::tls::TlsFtp::implicit(cluster.haproxy.tls_addr, &config);
        ftp.login(USER, PASSWORD);
        ftp.protect_data();
        ftp.expect("TYPE I", 200);
        let reply = ftp.upload(&format!("STOR {name}"), &content);
        assert_eq!(reply.code, 226, "{reply}");
        assert!(ftp.download(&format!("RETR {name}")) == content);
    }
    let log = cluster.logs();
    assert!(!log.contains("handshake failed"), "{log}");
    for index in [0, 1] {
        assert!(
            cluster.node_log(index).contains("STOR"),
            "node {index} served no upload:\n{}",
            cluster.logs()
        );
    }
}
