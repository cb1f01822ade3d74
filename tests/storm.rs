//! Load: 2,000 concurrent sessions (all connected and logged in at the same
//! moment) doing a bounded mix of logins, listings, downloads and uploads,
//! every byte checked; then the process's open file descriptors must come
//! back exactly to their level before the storm and its memory near it.
//! Also a storm of 500 connections that leave in every way (QUIT, hang-up,
//! half logged in, silent, a passive port reserved).
//!
//! The server runs in this process, so /proc/self counts both sides.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The storms count this process's fds and memory: one at a time.
static ALONE: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sessions of the big storm, if the fd limit allows.
const SESSIONS: usize = 2000;
/// The storm being run (upload names differ from one to the next).
static ROUND: AtomicUsize = AtomicUsize::new(0);

/// Files to download, of different sizes.
const FILES: usize = 16;

fn file_content(i: usize) -> Vec<u8> {
    random_bytes(1024 + i * 3001, 900 + i as u64)
}

fn upload_content(i: usize) -> Vec<u8> {
    random_bytes(512 + (i % 97) * 211, 5000 + i as u64)
}

/// Resident memory after returning freed heap pages to the system, so the
/// figure shows what is still allocated rather than what the allocator kept.
fn trimmed_rss() -> u64 {
    ferroftpd::server::memory::release_free_memory();
    rss_bytes()
}

/// A minimal async FTP client for the storm.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

type Res<T> = Result<T, String>;

impl Client {
    async fn connect(addr: SocketAddr) -> Res<Client> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut c = Client { reader: BufReader::new(r), writer: w };
        c.expect_reply(220, "greeting").await?;
        Ok(c)
    }

    async fn reply(&mut self) -> Res<(u16, String)> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or(format!("bad reply {line:?}"))?;
        let mut text = line.clone();
        if line.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let mut more = String::new();
                if self.reader.read_line(&mut more).await.map_err(|e| e.to_string())? == 0 {
                    return Err("closed inside a multi-line reply".into());
                }
                text.push_str(&more);
                if more.starts_with(&end) {
                    break;
                }
            }
        }
        Ok((code, text))
    }

    async fn expect_reply(&mut self, code: u16, what: &str) -> Res<String> {
        let (got, text) = self.reply().await?;
        if got != code {
            return Err(format!("{what}: expected {code}, got {}", text.trim_end()));
        }
        Ok(text)
    }

    async fn cmd(&mut self, line: &str, code: u16) -> Res<String> {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.map_err(|e| format!("send: {e}"))?;
        self.expect_reply(code, line).await
    }

    async fn epsv(&mut self) -> Res<SocketAddr> {
        let text = self.cmd("EPSV", 229).await?;
        let port = text
            .split("|||")
            .nth(1)
            .and_then(|t| t.split('|').next())
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or(format!("bad EPSV reply {text:?}"))?;
        Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    async fn download(&mut self, command: &str) -> Res<Vec<u8>> {
        let addr = self.epsv().await?;
        let mut data = TcpStream::connect(addr).await.map_err(|e| format!("data connect: {e}"))?;
        self.cmd(command, 150).await?;
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).await.map_err(|e| format!("{command}: data: {e}"))?;
        self.expect_reply(226, command).await?;
        Ok(bytes)
    }

    async fn upload(&mut self, command: &str, content: &[u8]) -> Res<()> {
        let addr = self.epsv().await?;
        let mut data = TcpStream::connect(addr).await.map_err(|e| format!("data connect: {e}"))?;
        self.cmd(command, 150).await?;
        data.write_all(content).await.map_err(|e| format!("{command}: data: {e}"))?;
        data.shutdown().await.map_err(|e| format!("{command}: shutdown: {e}"))?;
        drop(data);
        self.expect_reply(226, command).await?;
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    errors: AtomicUsize,
    first_errors: Mutex<Vec<String>>,
    logins: AtomicUsize,
    user_logins: AtomicUsize,
    listings: AtomicUsize,
    downloads: AtomicUsize,
    uploads: AtomicUsize,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
    peak_fds: AtomicUsize,
    peak_rss: AtomicU64,
    peak_sessions: AtomicUsize,
}

impl Tally {
    fn error(&self, i: usize, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 10 {
            first.push(format!("session {i}: {e}"));
        }
    }
}

/// Logs in: one session in ten as the virtual user (a real password
/// verification), the others anonymously.
async fn log_in(c: &mut Client, i: usize, tally: &Tally) -> Res<()> {
    if i % 10 == 0 {
        c.cmd(&format!("USER {USER}"), 331).await?;
        c.cmd(&format!("PASS {PASSWORD}"), 230).await?;
        tally.user_logins.fetch_add(1, Ordering::Relaxed);
    } else {
        c.cmd("USER anonymous", 331).await?;
        c.cmd("PASS storm@example.com", 230).await?;
    }
    tally.logins.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// One session's work once everybody is in.
async fn work(c: &mut Client, i: usize, tally: &Tally) -> Res<()> {
    let user = i % 10 == 0;
    let dir = if user { "/share" } else { "/pub" };
    match i % 3 {
        0 => {
            let listing = c.download(&format!("NLST {dir}")).await?;
            let text = String::from_utf8(listing).map_err(|e| e.to_string())?;
            let want = if user { 0 } else { FILES };
            let found = (0..FILES).filter(|f| text.contains(&format!("f{f}.bin"))).count();
            if found != want {
                return Err(format!("NLST {dir}: {found} of {want} files listed"));
            }
            tally.listings.fetch_add(1, Ordering::Relaxed);
            tally.bytes_down.fetch_add(text.len() as u64, Ordering::Relaxed);
        }
        1 => {
            let f = i % FILES;
            let path = if user { format!("/ro/f{f}.bin") } else { format!("/pub/f{f}.bin") };
            let got = c.download(&format!("RETR {path}")).await?;
            if got != file_content(f) {
                return Err(format!("RETR {path}: {} bytes, content differs", got.len()));
            }
            tally.downloads.fetch_add(1, Ordering::Relaxed);
            tally.bytes_down.fetch_add(got.len() as u64, Ordering::Relaxed);
        }
        _ => {
            let content = upload_content(i);
            let r = ROUND.load(Ordering::Relaxed);
            let path = if user { format!("/share/s{r}_{i}.bin") } else { format!("/incoming/s{r}_{i}.bin") };
            c.upload(&format!("STOR {path}"), &content).await?;
            tally.uploads.fetch_add(1, Ordering::Relaxed);
            tally.bytes_up.fetch_add(content.len() as u64, Ordering::Relaxed);
            if user {
                // Read it back through the server too.
                let back = c.download(&format!("RETR {path}")).await?;
                if back != content {
                    return Err(format!("RETR {path} after STOR: content differs"));
                }
                tally.bytes_down.fetch_add(back.len() as u64, Ordering::Relaxed);
            }
        }
    }
    c.cmd("QUIT", 221).await?;
    Ok(())
}

/// Runs one storm of `sessions` sessions on `runtime`.
fn storm(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    shared: &Arc<ferroftpd::server::Shared>,
    sessions: usize,
) -> (Arc<Tally>, Duration) {
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    runtime.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(sessions));
        // A second barrier holds everybody until the peak is sampled: without
        // it, sessions released first could finish and quit before the sample.
        let sampled = Arc::new(tokio::sync::Barrier::new(sessions));
        // Connections are opened a few hundred at a time (the listen
        // backlog), but nobody starts working before all are logged in.
        let connecting = Arc::new(tokio::sync::Semaphore::new(256));
        let mut tasks = Vec::with_capacity(sessions);
        for i in 0..sessions {
            let (tally, barrier, sampled, connecting, shared) =
                (tally.clone(), barrier.clone(), sampled.clone(), connecting.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                let permit = connecting.acquire_owned().await.unwrap();
                let ready = tokio::time::timeout(Duration::from_secs(60), async {
                    let mut c = Client::connect(addr).await?;
                    log_in(&mut c, i, &tally).await?;
                    Ok::<Client, String>(c)
                })
                .await
                .unwrap_or_else(|_| Err("timed out logging in".into()));
                drop(permit);
                // Everybody reaches the barrier, failed or not.
                if barrier.wait().await.is_leader() {
                    tally.peak_sessions.store(shared.limits.connections() as usize, Ordering::Relaxed);
                    tally.peak_fds.store(open_fds(), Ordering::Relaxed);
                    tally.peak_rss.store(rss_bytes(), Ordering::Relaxed);
                }
                sampled.wait().await;
                let result = match ready {
                    Ok(mut c) => tokio::time::timeout(Duration::from_secs(60), work(&mut c, i, &tally))
                        .await
                        .unwrap_or_else(|_| Err("timed out working".into())),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tally.error(i, e);
                }
            }));
        }
        for t in tasks {
            t.await.expect("session task panicked");
        }
    });
    (tally, start.elapsed())
}

/// Threads of this process.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn storm_of_2000_concurrent_sessions() {
    let _alone = alone();
    // What `ferroftpd serve` does at start.
    ferroftpd::server::memory::tune_allocator();
    let limit = raise_fd_limit() as usize;
    // Per session at most: control (2 ends), data (2 ends), a passive listener.
    let sessions = SESSIONS.min(limit.saturating_sub(300) / 5);
    if sessions < SESSIONS {
        eprintln!("the open-file limit ({limit}) allows only {sessions} concurrent sessions, not {SESSIONS}");
    }
    let server = TestServer::builder()
        .config(|c| {
            c.limits.max_clients = 10_000;
            c.limits.max_clients_per_ip = 10_000;
            c.anonymous.upload_dirs = vec!["/incoming".into()];
            c.timeouts.data = 30;
        })
        .setup(|p| {
            std::fs::create_dir(p.anon_root.join("incoming")).unwrap();
            for f in 0..FILES {
                std::fs::write(p.anon_root.join(format!("pub/f{f}.bin")), file_content(f)).unwrap();
                std::fs::write(p.ro_dir.join(format!("f{f}.bin")), file_content(f)).unwrap();
            }
        })
        .start();
    let addr = server.addr;
    let shared = server.shared();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // Warm-up: threads, allocator arenas, the user database connection.
    runtime.block_on(async {
        let tally = Tally::default();
        for i in 0..30 {
            let mut c = Client::connect(addr).await.unwrap();
            log_in(&mut c, i, &tally).await.unwrap();
            c.download("NLST /").await.unwrap();
            c.cmd("QUIT", 221).await.unwrap();
        }
    });
    assert!(wait_until(Duration::from_secs(10), || shared.limits.connections() == 0));
    std::thread::sleep(Duration::from_millis(300)); // closing sockets settle
    let fds_before = open_fds();
    let threads_before = threads();
    let rss_before = rss_bytes();
    let trimmed_before = trimmed_rss();

    let rounds: usize = std::env::var("STORM_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    let run = || {
        ROUND.fetch_add(1, Ordering::Relaxed);
        let (tally, elapsed) = storm(&runtime, addr, &shared, sessions);
        eprintln!("round: {elapsed:?}, trimmed RSS {} KiB, threads {}", trimmed_rss() / 1024, threads());
        (tally, elapsed)
    };
    let (mut tally, mut elapsed) = run();
    for _ in 1..rounds {
        (tally, elapsed) = run();
    }

    // Every upload on disk, byte for byte.
    let round = ROUND.load(Ordering::Relaxed);
    let mut uploads_checked = 0;
    for i in (0..sessions).filter(|i| i % 3 == 2) {
        let path = if i % 10 == 0 {
            server.paths.share_dir.join(format!("s{round}_{i}.bin"))
        } else {
            server.paths.anon_root.join(format!("incoming/s{round}_{i}.bin"))
        };
        if std::fs::read(&path).ok().as_deref() == Some(&upload_content(i)[..]) {
            uploads_checked += 1;
        } else {
            tally.error(i, format!("{} missing or different on disk", path.display()));
        }
    }

    let settled = wait_until(Duration::from_secs(20), || shared.limits.connections() == 0);
    let fds_back = wait_until(Duration::from_secs(15), || open_fds() == fds_before);
    let fds_after = open_fds();
    // Blocking-pool threads started for file work live on for 10 s idle;
    // their stacks count in RSS until they end.
    let threads_peak = threads();
    let threads_back = wait_until(Duration::from_secs(20), || threads() <= threads_before);
    let rss_after = rss_bytes();
    let trimmed_after = trimmed_rss();
    let t = &*tally;
    let kib = |b: u64| b / 1024;
    eprintln!(
        "storm: {sessions} sessions ({} at once) in {elapsed:.1?}; errors {}; logins {} ({} virtual user); \
         listings {}, downloads {}, uploads {} ({} verified on disk); bytes down {} up {}; \
         fds {fds_before} → {} → {fds_after}; threads {threads_before} → {threads_peak} → {}; RSS {} → {} → {} KiB (after malloc_trim {} → {} KiB)",
        t.peak_sessions.load(Ordering::Relaxed),
        t.errors.load(Ordering::Relaxed),
        t.logins.load(Ordering::Relaxed),
        t.user_logins.load(Ordering::Relaxed),
        t.listings.load(Ordering::Relaxed),
        t.downloads.load(Ordering::Relaxed),
        t.uploads.load(Ordering::Relaxed),
        uploads_checked,
        t.bytes_down.load(Ordering::Relaxed),
        t.bytes_up.load(Ordering::Relaxed),
        t.peak_fds.load(Ordering::Relaxed),
        threads(),
        kib(rss_before),
        kib(t.peak_rss.load(Ordering::Relaxed)),
        kib(rss_after),
        kib(trimmed_before),
        kib(trimmed_after),
    );
    let errors = t.first_errors.lock().unwrap().clone();
    assert_eq!(
        t.errors.load(Ordering::Relaxed),
        0,
        "errors during the storm, first ones:\n{}",
        errors.join("\n")
    );
    assert_eq!(t.peak_sessions.load(Ordering::Relaxed), sessions, "not all sessions were open at once");
    assert_eq!(t.logins.load(Ordering::Relaxed), sessions);
    assert!(settled, "{} sessions still open after the storm", shared.limits.connections());
    assert!(fds_back, "open fds: {fds_before} before the storm, {fds_after} after");
    assert!(threads_back, "threads: {threads_before} before the storm, {} after", threads());
    assert!(
        trimmed_after < trimmed_before + 32 * 1024 * 1024,
        "memory in use grew by {} KiB over the storm",
        kib(trimmed_after.saturating_sub(trimmed_before))
    );
    assert!(elapsed < Duration::from_secs(60), "the storm took {elapsed:?}");
}
#[test]
fn a_storm_of_500_connections_leaves_no_fd_or_memory_behind() {
    let _alone = alone();
    ferroftpd::server::memory::tune_allocator();
    let limit = raise_fd_limit();
    let sessions: usize = 500.min((limit as usize).saturating_sub(200) / 3);
    let server = TestServer::builder()
        .config(|c| {
            c.limits.max_clients_per_ip = 10_000;
            c.timeouts.data = 5;
        })
        .start();
    let addr = server.addr;
    // Warm up: threads, allocator arenas, the user database connection.
    for _ in 0..3 {
        let mut ftp = server.login();
        ftp.listing("LIST");
        ftp.expect("QUIT", 221);
    }
    let shared = server.shared();
    assert!(wait_until(Duration::from_secs(10), || shared.limits.connections() == 0));
    let fds_before = open_fds();
    let rss_before = rss_bytes();

    // All connected at once, each doing a little and leaving in its own way.
    let start = Instant::now();
    let mut held = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let mut ftp = Ftp::connect(addr);
        match i % 5 {
            0 => {
                ftp.login("anonymous", "storm@example.com");
                assert_eq!(ftp.retr("pub/hello.txt"), HELLO);
            }
            1 => {
                ftp.login("anonymous", "storm@example.com");
                let listing = ftp.listing("NLST");
                assert!(listing.contains("pub"), "{listing}");
            }
            2 => {
                // A passive port reserved and never used.
                ftp.login("anonymous", "storm@example.com");
                ftp.epsv();
            }
            3 => {
                ftp.expect("USER anonymous", 331); // never finishes logging in
            }
            _ => {} // silent
        }
        held.push(ftp);
    }
    assert_eq!(shared.limits.connections() as usize, sessions);
    let fds_peak = open_fds();
    let rss_peak = rss_bytes();
    for (i, mut ftp) in held.into_iter().enumerate() {
        if i % 2 == 0 {
            ftp.send("QUIT");
        }
        drop(ftp);
    }
    let settled = wait_until(Duration::from_secs(20), || shared.limits.connections() == 0);
    assert!(settled, "{} sessions still open 20 s after their clients left", shared.limits.connections());
    let fds_back = wait_until(Duration::from_secs(10), || open_fds() == fds_before);
    let fds_after = open_fds();
    let rss_after = rss_bytes();
    eprintln!(
        "storm of {sessions} connections in {:?}: fds {fds_before} → {fds_peak} → {fds_after}, \
         RSS {} → {} → {} KiB",
        start.elapsed(),
        rss_before / 1024,
        rss_peak / 1024,
        rss_after / 1024
    );
    assert!(fds_back, "fds: {fds_before} before the storm, {fds_after} after");
    assert!(
        rss_after < rss_before + 24 * 1024 * 1024,
        "RSS grew by {} KiB over the storm",
        (rss_after - rss_before) / 1024
    );
}
