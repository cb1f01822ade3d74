//! The object-store backend against a real three-node Garage cluster
//! (replication factor 3) on loopback, through ferroftpd started as its
//! binary: two nodes sharing one bucket, `/archive` on the store while `/`
//! stays local, and an account whose root is the store.
//!
//! Garage comes from `FERROFTPD_GARAGE`, `~/.local/garage/bin/garage` or
//! PATH (.ci/run installs it); without it these tests fail in CI and are
//! skipped with a message elsewhere.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::garage::{self, Garage};
use common::*;
use ferroftpd::auth::password::hash_password;
use ferroftpd::auth::userdb::{SqliteUserStore, UserRecord, UserStore};
use ferroftpd::vfs::MountSpec;
use futures_util::stream::{self, StreamExt};

/// An account whose root is on the store.
const BOB: &str = "bob";

/// Part size of the test stores: S3's smallest, so a few MiB make a
/// multipart upload.
const PART: u64 = 5 << 20;

struct Setup {
    dir: tempfile::TempDir,
    garage: Garage,
    config: std::path::PathBuf,
}

/// A cluster, the user database (alice: local root with `/archive` on the
/// store; bob: root on the store) and a configuration whose store talks
/// to Garage node `node`.
fn setup(node: usize) -> Option<Setup> {
    let program = garage::program()?;
    let garage = Garage::start(&program);
    let endpoint = garage.endpoint(node);
    Some(setup_at(garage, &endpoint))
}

/// As `setup`, with the store's endpoint `endpoint`.
fn setup_at(garage: Garage, endpoint: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice");
    std::fs::create_dir(&root).unwrap();
    let db = SqliteUserStore::open(dir.path().join("users.db")).unwrap();
    let mut alice = UserRecord::new(USER, hash_password(PASSWORD).unwrap(), root);
    alice.mounts.push(MountSpec::parse("/archive=store:s3/archive").unwrap());
    db.put(&alice).unwrap();
    db.put(&UserRecord::new(BOB, hash_password(PASSWORD).unwrap(), "store:s3/bob")).unwrap();
    let mut carol = UserRecord::new(CAROL, hash_password(PASSWORD).unwrap(), "store:s3/carol");
    carol.shaping.quota_bytes = Some(CAROL_QUOTA);
    db.put(&carol).unwrap();
    let config = dir.path().join("ferroftpd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[auth]\nchain = [\"userdb\"]\n[userdb]\npath = \"users.db\"\n\
             [timeouts]\ndata = 60\n[limits]\nfailed_login_delay_ms = 20\n{}",
            garage.store_section_at("s3", endpoint, &format!("{PART}")),
        ),
    )
    .unwrap();
    Setup { dir, garage, config }
}

impl Setup {
    fn daemon(&self) -> Daemon {
        // The machines' AWS_CA_BUNDLE must not steer the store's client.
        Daemon::start_with_env(self.dir.path(), self.config.to_str().unwrap(), &[("AWS_CA_BUNDLE", "")])
    }
}

fn login(daemon: &Daemon, user: &str) -> Ftp {
    let mut ftp = Ftp::connect(daemon.addr);
    ftp.login(user, PASSWORD);
    ftp.expect("TYPE I", 200);
    ftp
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Keys below `prefix` in the bucket, straight from the store.
fn keys(garage: &Garage, prefix: &str) -> Vec<String> {
    let op = garage.operator(0);
    runtime().block_on(async {
        let mut out = Vec::new();
        let mut lister = op.lister_with(prefix).recursive(true).await.unwrap();
        while let Some(entry) = lister.next().await {
            out.push(entry.unwrap().path().to_string());
        }
        out.sort();
        out
    })
}

fn names(listing: &str) -> Vec<String> {
    let mut v: Vec<String> = listing.lines().map(|l| l.rsplit('/').next().unwrap_or(l).to_string()).collect();
    v.sort();
    v
}

/// Root on the store with a byte quota of `CAROL_QUOTA`.
const CAROL: &str = "carol";
const CAROL_QUOTA: u64 = 1024 * 1024;

#[test]
fn a_quota_on_a_store_root_counts_the_objects_already_there() {
    let Some(s) = setup(0) else { return };
    // 700 KiB put straight into the store, before the first login.
    let seed = random_bytes(700 * 1024, 41);
    let op = s.garage.operator(0);
    runtime().block_on(op.write("carol/seed.bin", seed.clone())).unwrap();
    let daemon = s.daemon();
    let mut ftp = login(&daemon, CAROL);
    let text = ftp.expect("SITE QUOTA", 200).text();
    assert!(text.contains(&format!("Bytes: {}", seed.len())), "usage not counted from the store: {text}");
    // 400 KiB more would pass the 1 MiB quota: refused, nothing left.
    let (_, last) = ftp.upload("STOR more.bin", &random_bytes(400 * 1024, 42));
    assert_eq!(last.code, 552, "an upload over the quota: {last}");
    ftp.expect("NOOP", 200);
    assert_eq!(keys(&s.garage, "carol/"), ["carol/seed.bin"], "the refused upload left an object");
    ftp.stor("small.bin", &random_bytes(100 * 1024, 43));
}

#[test]
fn upload_list_download_through_two_nodes_sharing_the_bucket() {
    let Some(s) = setup(0) else { return };
    let a = s.daemon();
    let b = s.daemon();
    let content = random_bytes(13 * 1024 * 1024 + 17, 1);
    let mut fa = login(&a, USER);
    fa.stor("/archive/big.bin", &content);
    fa.stor("/local.txt", b"on disk");
    assert!(s.dir.path().join("alice/local.txt").is_file(), "`/` must stay local");
    assert_eq!(keys(&s.garage, "archive/"), ["archive/big.bin"], "the upload must be one object");

    let mut fb = login(&b, USER);
    let list = fb.listing("NLST /archive");
    assert_eq!(names(&list), ["big.bin"]);
    let long = fb.listing("LIST /archive");
    assert!(long.contains(&content.len().to_string()) && long.contains("big.bin"), "{long}");
    let mlsd = fb.listing("MLSD /archive");
    assert!(mlsd.contains("type=file") && mlsd.contains(&format!("size={}", content.len())), "{mlsd}");
    assert!(fb.listing("NLST /").contains("archive"), "the mount point is listed in /");
    assert!(fb.retr("/archive/big.bin") == content, "download through the other node differs");
    // REST + RETR is a ranged read.
    fb.expect("REST 1000000", 350);
    let tail = fb.retr("/archive/big.bin");
    assert!(tail == content[1_000_000..], "REST 1000000 + RETR differs");
    let size = fb.expect("SIZE /archive/big.bin", 213);
    assert_eq!(size.message().trim(), content.len().to_string());
    fb.expect("MDTM /archive/big.bin", 213);
    fb.expect("QUIT", 221);
}

#[test]
fn aborted_stor_leaves_nothing_and_keeps_the_existing_object() {
    let Some(s) = setup(0) else { return };
    let d = s.daemon();
    let mut ftp = login(&d, USER);
    let old = random_bytes(300_000, 2);
    ftp.stor("/archive/keep.bin", &old);
    for name in ["keep.bin", "new.bin"] {
        let addr = ftp.epsv();
        let mut data = connect_data(addr);
        ftp.expect(&format!("STOR /archive/{name}"), 150);
        // More than two parts: the multipart upload has parts in the store.
        data.write_all(&random_bytes(24 * 1024 * 1024, 3)).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        ftp.send("ABOR");
        ftp.expect_abort_replies("ABOR during STOR");
        let _ = data.shutdown(Shutdown::Both);
    }
    ftp.expect("NOOP", 200);
    assert!(ftp.retr("/archive/keep.bin") == old, "ABOR replaced the existing object");
    assert_eq!(keys(&s.garage, "archive/"), ["archive/keep.bin"], "an aborted upload left an object");
    // A client that vanishes mid-upload aborts it too.
    let mut gone = login(&d, USER);
    let addr = gone.epsv();
    let mut data = connect_data(addr);
    gone.expect("STOR /archive/vanished.bin", 150);
    data.write_all(&random_bytes(24 * 1024 * 1024, 4)).unwrap();
    drop(gone);
    std::thread::sleep(Duration::from_millis(300));
    drop(data);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(keys(&s.garage, "archive/"), ["archive/keep.bin"], "a vanished client left an object");
    // And the multipart uploads were aborted, not left behind: Garage's own
    // clean-up finds none (it finds one during such an upload).
    std::thread::sleep(Duration::from_millis(1500));
    let cleanup =
        s.garage.cli(0, &["bucket", "cleanup-incomplete-uploads", "--older-than", "1s", garage::BUCKET]);
    assert!(cleanup.contains("no uploads deleted"), "unfinished multipart uploads were left: {cleanup}");
}

#[test]
fn ten_thousand_objects_list_as_a_stream() {
    let Some(s) = setup(1) else { return };
    const N: usize = 10_000;
    let op = s.garage.operator(1);
    let started = Instant::now();
    runtime().block_on(async {
        let results: Vec<_> = stream::iter(0..N)
            .map(|i| {
                let op = op.clone();
                async move { op.write(&format!("bob/many/f{i:05}"), vec![b'x'; i % 7]).await }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        assert!(results.iter().all(Result::is_ok), "creating objects failed");
    });
    eprintln!("created {N} objects in {:?}", started.elapsed());
    let d = s.daemon();
    let mut ftp = login(&d, BOB);
    let started = Instant::now();
    let list = ftp.listing("NLST /many");
    eprintln!("NLST of {N} objects in {:?}", started.elapsed());
    let got = names(&list);
    assert_eq!(got.len(), N);
    assert_eq!(got[0], "f00000");
    assert_eq!(got[N - 1], format!("f{:05}", N - 1));
    let mlsd = ftp.listing("MLSD /many");
    assert_eq!(mlsd.lines().filter(|l| l.contains("type=file")).count(), N);
    assert!(mlsd.contains("size=6;") && mlsd.contains("f00006"), "sizes come from the listing");
    let long = ftp.listing("LIST /many");
    assert_eq!(long.lines().count(), N);
}

#[test]
fn directories_renames_and_what_a_store_cannot_do() {
    let Some(s) = setup(2) else { return };
    let d = s.daemon();
    let mut ftp = login(&d, BOB);
    // FEAT does not offer what the account's root cannot do.
    let feat = ftp.expect("FEAT", 211).text();
    assert!(!feat.contains("MFMT"), "{feat}");
    assert!(feat.contains("REST STREAM") && feat.contains("SIZE") && feat.contains("MDTM"), "{feat}");

    ftp.expect("MKD docs", 257);
    assert_eq!(keys(&s.garage, "bob/"), ["bob/docs/"], "MKD writes a marker object");
    ftp.expect("MKD docs", 550);
    ftp.expect("CWD docs", 250);
    ftp.stor("a.txt", b"alpha");
    ftp.expect("CWD /", 250);
    ftp.expect("RMD docs", 550);
    assert_eq!(names(&ftp.listing("NLST /docs")), ["a.txt"]);
    ftp.expect("SIZE docs/a.txt", 213);
    ftp.expect("MDTM docs/a.txt", 213);
    ftp.expect("SIZE docs", 550);
    ftp.expect("SIZE nothing", 550);

    ftp.expect("RNFR docs/a.txt", 350);
    ftp.expect("RNTO b.txt", 250);
    assert_eq!(ftp.retr("b.txt"), b"alpha");
    assert_eq!(keys(&s.garage, "bob/"), ["bob/b.txt", "bob/docs/"], "rename is copy + delete");
    ftp.expect("RMD docs", 250);
    ftp.expect("CWD docs", 550);
    ftp.expect("RNFR nothing", 550);
    ftp.expect("DELE nothing", 550);

    // What an object store cannot do: 502, and the object is untouched.
    let (first, _) = ftp.try_upload("APPE b.txt", b"more");
    assert_eq!(first.code, 502, "APPE: {first}");
    ftp.expect("REST 2", 350);
    let (first, _) = ftp.try_upload("STOR b.txt", b"xx");
    assert_eq!(first.code, 502, "REST + STOR: {first}");
    ftp.expect("MFMT 20200101000000 b.txt", 502);
    ftp.expect("SITE CHMOD 600 b.txt", 502);
    assert_eq!(ftp.retr("b.txt"), b"alpha");
    ftp.expect("DELE b.txt", 250);
    assert!(keys(&s.garage, "bob/").is_empty());

    // The local account still has MFMT in FEAT.
    let mut alice = login(&d, USER);
    assert!(alice.expect("FEAT", 211).text().contains("MFMT"));
}

/// Streams `len` bytes of a fixed pattern into a STOR, calling `progress`
/// with the bytes sent so far after each chunk.
fn stream_upload(ftp: &mut Ftp, path: &str, len: u64, mut progress: impl FnMut(u64)) -> Reply {
    let addr = ftp.epsv();
    let mut data = connect_data(addr);
    ftp.expect(&format!("STOR {path}"), 150);
    let mut chunk = vec![0u8; 1 << 20];
    let mut sent = 0u64;
    while sent < len {
        fill(&mut chunk, sent);
        let n = chunk.len().min((len - sent) as usize);
        data.write_all(&chunk[..n]).unwrap();
        sent += n as u64;
        progress(sent);
    }
    data.shutdown(Shutdown::Write).ok();
    drop(data);
    ftp.read_reply()
}

/// The pattern at `offset` (a cheap function of the position).
fn fill(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        let p = offset + i as u64;
        *b = (p ^ (p >> 11) ^ (p >> 23)).wrapping_mul(31) as u8;
    }
}

/// Downloads `path` and checks it against the pattern without holding it.
fn check_download(ftp: &mut Ftp, path: &str, len: u64) {
    let addr = ftp.epsv();
    let mut data = connect_data(addr);
    ftp.expect(&format!("RETR {path}"), 150);
    let mut buf = vec![0u8; 1 << 20];
    let mut want = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = data.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        fill(&mut want[..n], got);
        assert!(buf[..n] == want[..n], "{path}: content differs near byte {got}");
        got += n as u64;
    }
    assert_eq!(got, len, "{path}: length");
    assert_eq!(ftp.read_reply().code, 226);
}

#[test]
fn gigabyte_upload_holds_memory_to_the_part_size() {
    let Some(s) = setup(0) else { return };
    const LEN: u64 = 1 << 30;
    let d = s.daemon();
    let pid = d.pid().to_string();
    let mut ftp = login(&d, BOB);
    // Warm up: one small multipart upload so the client and pools exist.
    let reply = stream_upload(&mut ftp, "warm.bin", 3 * PART, |_| {});
    assert_eq!(reply.code, 226, "{reply}");
    let before = rss_of(&pid);
    let mut peak = before;
    let started = Instant::now();
    let reply = stream_upload(&mut ftp, "huge.bin", LEN, |sent| {
        if sent % (16 << 20) == 0 {
            peak = peak.max(rss_of(&pid));
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(reply.code, 226, "{reply}");
    let growth = peak.saturating_sub(before);
    eprintln!(
        "1 GiB STOR to the store in {elapsed:?} ({:.1} MiB/s); RSS before {} MiB, peak {} MiB, growth {} MiB (part size {} MiB)",
        LEN as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
        before >> 20,
        peak >> 20,
        growth >> 20,
        PART >> 20
    );
    // One part buffered, one in flight, the HTTP client's buffers: a few
    // parts, never anything like the file.
    assert!(growth < 8 * PART, "RSS grew by {} MiB during a 1 GiB upload", growth >> 20);
    let size = ftp.expect("SIZE huge.bin", 213);
    assert_eq!(size.message().trim(), LEN.to_string());
    check_download(&mut ftp, "huge.bin", LEN);
}

#[test]
fn upload_completes_when_a_store_node_dies_mid_transfer() {
    let Some(mut s) = setup(0) else { return };
    const LEN: u64 = 96 << 20;
    let d = s.daemon();
    let mut ftp = login(&d, BOB);
    let mut killed = false;
    let garage = &mut s.garage;
    let reply = stream_upload(&mut ftp, "survivor.bin", LEN, |sent| {
        if !killed && sent >= LEN / 3 {
            // Node 2 holds a replica of every block; node 0 is the endpoint.
            garage.kill_node(2);
            killed = true;
        }
        if killed {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert!(killed);
    assert_eq!(reply.code, 226, "upload with a dead store node: {reply}");
    check_download(&mut ftp, "survivor.bin", LEN);
    // Another node serves it too.
    let op = s.garage.operator(1);
    let meta = runtime().block_on(op.stat("bob/survivor.bin")).unwrap();
    assert_eq!(meta.content_length(), LEN);
}

/// HAProxy in front of the three nodes' S3 APIs, as a site would deploy
/// it; killed on drop.
struct S3Proxy {
    child: Child,
    addr: SocketAddr,
}

impl S3Proxy {
    fn start(program: &std::path::Path, dir: &std::path::Path, garage: &Garage) -> S3Proxy {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        // TCP mode: each S3 request is one HTTP exchange on a connection
        // the client (opendal) retries as a whole when it breaks, so
        // HAProxy need not understand or buffer bodies. `balance first`
        // sends everything to node 0 while it is up (so the test knows
        // which node to kill); the others take over when it is down.
        // Failover is fast because: a dead node refuses connections at
        // once, `retries` + `option redispatch 1` move each refused
        // connection to another server (after min(timeout connect, 1s),
        // hence a short `timeout connect`), and the health check
        // (`inter 200ms fall 1`) takes the node out within ~200 ms;
        // `on-marked-down shutdown-sessions` closes connections still
        // open to it so no request waits for a timeout.
        let servers: String = (0..3)
            .map(|i| {
                format!(
                    "    server garage{i} {} check inter 200ms fall 1 rise 2 on-marked-down shutdown-sessions\n",
                    garage.s3_addr(i)
                )
            })
            .collect();
        let config = format!(
            "global\n    maxconn 500\n\
             defaults\n    mode tcp\n    timeout connect 200ms\n    timeout client 120s\n    \
             timeout server 120s\n    retries 3\n    option redispatch 1\n\
             frontend s3\n    bind {addr}\n    default_backend garage\n\
             backend garage\n    balance first\n{servers}"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(program)
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let up = wait_until(Duration::from_secs(30), || TcpStream::connect(addr).is_ok());
        assert!(up, "haproxy did not listen on {addr}");
        S3Proxy { child, addr }
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster behind HAProxy, ferroftpd's store pointed at HAProxy.
fn setup_behind_haproxy() -> Option<(Setup, S3Proxy)> {
    let haproxy = haproxy_program()?;
    let program = garage::program()?;
    let garage = Garage::start(&program);
    let dir = tempfile::tempdir().unwrap();
    let proxy = S3Proxy::start(&haproxy, dir.path(), &garage);
    let s = setup_at(garage, &format!("http://{}", proxy.addr));
    drop(dir);
    Some((s, proxy))
}

#[test]
fn upload_completes_when_the_store_node_in_use_dies_behind_haproxy() {
    let Some((mut s, _proxy)) = setup_behind_haproxy() else { return };
    const LEN: u64 = 80 << 20;
    let d = s.daemon();
    let mut ftp = login(&d, BOB);
    let mut killed = false;
    let garage = &mut s.garage;
    let started = Instant::now();
    let reply = stream_upload(&mut ftp, "failover.bin", LEN, |sent| {
        if !killed && sent >= LEN / 3 {
            // `balance first`: node 0 receives every request.
            garage.kill_node(0);
            killed = true;
        }
        if killed {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert!(killed);
    assert_eq!(reply.code, 226, "upload when the store node in use dies: {reply}");
    eprintln!("80 MiB STOR with the store node in use killed at 1/3: {:?}", started.elapsed());
    // A request in flight on the killed node is retried (and a GET
    // resumes at the offset reached): the log says so.
    eprintln!("requests retried: {}", retried(&d, "Write"));
    check_download(&mut ftp, "failover.bin", LEN);
    let op = s.garage.operator(1);
    let meta = runtime().block_on(op.stat("bob/failover.bin")).unwrap();
    assert_eq!(meta.content_length(), LEN);
}

#[test]
fn download_completes_when_the_store_node_in_use_dies_behind_haproxy() {
    let Some((mut s, _proxy)) = setup_behind_haproxy() else { return };
    const LEN: u64 = 64 << 20;
    let d = s.daemon();
    let mut ftp = login(&d, BOB);
    let reply = stream_upload(&mut ftp, "read.bin", LEN, |_| {});
    assert_eq!(reply.code, 226, "{reply}");
    let addr = ftp.epsv();
    let mut data = connect_data(addr);
    ftp.expect("RETR read.bin", 150);
    let mut buf = vec![0u8; 1 << 20];
    let mut want = vec![0u8; 1 << 20];
    let mut got = 0u64;
    let mut killed = false;
    let started = Instant::now();
    loop {
        let n = data.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        fill(&mut want[..n], got);
        assert!(buf[..n] == want[..n], "content differs near byte {got}");
        got += n as u64;
        if !killed && got >= LEN / 3 {
            s.garage.kill_node(0);
            killed = true;
        }
        if !killed {
            // Slow until the kill, so it lands in the middle of the GET.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert!(killed);
    assert_eq!(got, LEN, "RETR length when the store node in use dies");
    assert_eq!(ftp.read_reply().code, 226);
    eprintln!("64 MiB RETR with the store node in use killed at 1/3: {:?}", started.elapsed());
    // A request in flight on the killed node is retried (and a GET
    // resumes at the offset reached): the log says so.
    eprintln!("requests retried: {}", retried(&d, "Read"));
}

/// How many times the daemon's log says the store's client retried `op`
/// (`Read`, `Write`): the retries of requests broken by a kill.
fn retried(d: &Daemon, op: &str) -> usize {
    d.log_text().lines().filter(|l| l.contains(&format!("will retry {op}"))).count()
}
