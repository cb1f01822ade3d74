//! The workloads, run the same way against every server: idle memory and
//! memory per logged-in idle client, logins per second, RETR/STOR
//! throughput (and the raw TCP ceiling), LIST/MLSD of a large directory.
//! Every loop is bounded in count and every wait in time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::ftp::Ctrl;
use crate::pattern;
use crate::procs::{self, CpuMeter};
use crate::raw;
use crate::results::{Better, Metric, Point, Results};
use crate::servers::{PASSWORD, USER};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

/// Sizes and counts of one run (full or smoke).
#[derive(Debug, Clone)]
pub struct Plan {
    pub smoke: bool,
    /// Client counts at which memory is read (0 is always read first).
    pub ramp: Vec<usize>,
    /// Connections opened at once while ramping up.
    pub ramp_concurrency: usize,
    pub login_concurrency: Vec<usize>,
    pub login_time: Duration,
    pub big: u64,
    pub small: u64,
    pub parallel: usize,
    pub listing_entries: usize,
    pub listing_reps: usize,
    /// Bound on one protocol step (connect, one reply).
    pub step: Duration,
    /// Bound on one whole transfer.
    pub transfer: Duration,
    pub settle: Duration,
}

fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// Waits until the server's process count has not changed for a while
/// (forking servers start and end processes per client), at most `max`.
async fn settle(pid: u32, base: Duration, max: Duration) {
    tokio::time::sleep(base).await;
    let deadline = Instant::now() + max;
    let mut last = procs::tree(pid).len();
    let mut stable = 0;
    while Instant::now() < deadline && stable < 3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = procs::tree(pid).len();
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
    }
}

/// A logged-in idle session, held open without reading.
type Held = Box<dyn std::any::Any + Send>;

/// Opens `n` logged-in anonymous sessions, `conc` at a time, over TLS when
/// a connector is given (AUTH TLS, PBSZ 0, PROT P before USER). Returns
/// those that succeeded and the first error, if any (no more are started
/// after it).
async fn connect_many(
    addr: SocketAddr,
    n: usize,
    conc: usize,
    step: Duration,
    tls: Option<&TlsConnector>,
) -> (Vec<Held>, Option<anyhow::Error>) {
    let mut out = Vec::with_capacity(n);
    let mut set = JoinSet::new();
    let mut started = 0;
    let mut first_err = None;
    loop {
        while first_err.is_none() && started < n && set.len() < conc {
            started += 1;
            let tls = tls.cloned();
            set.spawn(async move {
                let c = Ctrl::connect(addr, step).await?;
                let held: Held = match tls {
                    None => {
                        let mut c = c;
                        c.login("anonymous", "bench@example.org").await?;
                        Box::new(c.into_stream())
                    }
                    Some(tls) => {
                        let mut c = c.start_tls(&tls).await?;
                        c.login("anonymous", "bench@example.org").await?;
                        Box::new(c.into_stream())
                    }
                };
                Ok::<Held, anyhow::Error>(held)
            });
        }
        match set.join_next().await {
            None => break,
            Some(Ok(Ok(s))) => out.push(s),
            Some(Ok(Err(e))) => {
                first_err.get_or_insert(e);
            }
            Some(Err(e)) => {
                first_err.get_or_insert(anyhow!("task: {e}"));
            }
        }
    }
    (out, first_err)
}

/// Idle memory, then memory with N logged-in idle clients for each N of the
/// ramp; over FTPS when `tls` is given (reported in a section of its own,
/// and not plotted).
pub async fn memory(
    plan: &Plan,
    server: &str,
    pid: u32,
    addr: SocketAddr,
    tls: Option<&TlsConnector>,
    res: &mut Results,
) -> Result<()> {
    settle(pid, plan.settle, Duration::from_secs(5)).await;
    let m0 = procs::tree_memory(pid);
    let (sec, key, over) = match tls {
        None => ("Memory", "", ""),
        Some(_) => ("Memory over FTPS", "tls_", " (TLS on)"),
    };
    res.record(
        &Metric::new(
            sec,
            format!("{key}idle_rss"),
            format!("Idle server{over}, RSS (all processes)"),
            "kB",
            Better::Lower,
        ),
        server,
        m0.rss_kb as f64,
    );
    res.record(
        &Metric::new(
            sec,
            format!("{key}idle_pss"),
            format!("Idle server{over}, PSS (all processes)"),
            "kB",
            Better::Lower,
        ),
        server,
        m0.pss_kb as f64,
    );
    let point = |res: &mut Results, at: usize, clients: usize, m: &procs::Mem| {
        if tls.is_none() {
            res.point(
                server,
                at,
                Point {
                    clients: clients as f64,
                    rss_kb: m.rss_kb as f64,
                    pss_kb: m.pss_kb as f64,
                    processes: m.processes as f64,
                },
            );
        }
    };
    point(res, 0, 0, &m0);
    let (who, whom) = if tls.is_some() { ("FTPS client", "FTPS clients") } else { ("client", "clients") };

    let mut held: Vec<Held> = Vec::new();
    let meter = CpuMeter::start(None);
    let mut outcome = Ok(());
    let top = plan.ramp.last().copied().unwrap_or(0);
    for &target in &plan.ramp {
        let need = target.saturating_sub(held.len());
        let (got, err) = connect_many(addr, need, plan.ramp_concurrency, plan.step, tls).await;
        held.extend(got);
        settle(pid, plan.settle, Duration::from_secs(20)).await;
        let m = procs::tree_memory(pid);
        let n = held.len();
        point(res, target, n, &m);
        if n > 0 {
            let per = |now: u64, before: u64| (now as f64 - before as f64) / n as f64;
            res.record(
                &Metric::new(
                    sec,
                    format!("{key}pss_per_client_{target}"),
                    format!("PSS per logged-in idle {who}, {target} clients"),
                    "kB",
                    Better::Lower,
                ),
                server,
                per(m.pss_kb, m0.pss_kb),
            );
            res.record(
                &Metric::new(
                    sec,
                    format!("{key}rss_per_client_{target}"),
                    format!("RSS per logged-in idle {who}, {target} clients"),
                    "kB",
                    Better::Lower,
                ),
                server,
                per(m.rss_kb, m0.rss_kb),
            );
            res.record(
                &Metric::new(
                    sec,
                    format!("{key}procs_{target}"),
                    format!("Server processes with {target} clients"),
                    "",
                    Better::Neither,
                ),
                server,
                m.processes as f64,
            );
        }
        if let Some(e) = err {
            if plan.smoke {
                outcome = Err(e.context(format!("ramp to {target} clients: only {n} logged in")));
            } else {
                // A measurement, not a failure: the most this server held here.
                let label = if tls.is_some() { format!("{server} over FTPS") } else { server.to_string() };
                res.shortfall(&label, n, format!("{e:#}"));
            }
            break;
        }
    }
    let used = meter.stop();
    let reached = Metric::new(
        sec,
        format!("{key}clients_reached"),
        format!("Logged-in idle {whom} held (of {top})"),
        "",
        Better::Higher,
    );
    res.record(&reached, server, held.len() as f64);
    res.record_client(&reached, server, used.client_share());
    drop(held);
    settle(pid, Duration::from_millis(200), Duration::from_secs(20)).await;
    outcome
}

/// Logins per second at each concurrency: connect, USER, PASS, QUIT.
pub async fn logins(
    plan: &Plan,
    server: &str,
    pid: u32,
    addr: SocketAddr,
    virtual_user: bool,
    res: &mut Results,
) -> Result<()> {
    let (user, pass, who) = if virtual_user {
        (USER, PASSWORD, "virtual user (argon2id m=19 MiB t=2 where the server allows)")
    } else {
        ("anonymous", "bench@example.org", "anonymous")
    };
    for &conc in &plan.login_concurrency {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let first_err: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let deadline = Instant::now() + plan.login_time;
        let meter = CpuMeter::start(Some(pid));
        let mut set = JoinSet::new();
        for _ in 0..conc {
            let (ok, failed, first_err) = (ok.clone(), failed.clone(), first_err.clone());
            let step = plan.step;
            set.spawn(async move {
                // Bounded by the deadline; each iteration by `step` per reply.
                while Instant::now() < deadline {
                    let r = async {
                        let mut c = Ctrl::connect(addr, step).await?;
                        c.login(user, pass).await?;
                        c.quit().await
                    }
                    .await;
                    match r {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut f) = first_err.lock() {
                                f.get_or_insert(format!("{e:#}"));
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
        let used = meter.stop();
        let n = ok.load(Ordering::Relaxed);
        let bad = failed.load(Ordering::Relaxed);
        let kind = if virtual_user { "user" } else { "anon" };
        let m = Metric::new(
            "Logins",
            format!("login_{kind}_c{conc}"),
            format!("Logins/s, {who}, concurrency {conc}"),
            "logins/s",
            Better::Higher,
        );
        res.record(&m, server, n as f64 / used.wall);
        res.record_client(&m, server, used.client_share());
        if n > 0 {
            let cpu = Metric::new(
                "Logins",
                format!("login_{kind}_c{conc}_cpu"),
                format!("Server CPU per login, {kind}, concurrency {conc}"),
                "µs",
                Better::Lower,
            );
            res.record(&cpu, server, used.server_cpu * 1e6 / n as f64);
        }
        if bad > 0 {
            let err = first_err.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
            let msg = format!("{bad} of {} logins failed ({kind}, concurrency {conc}): {err}", n + bad);
            if n == 0 {
                bail!(msg);
            }
            res.notes.push(format!("{server}: {msg}"));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Retr,
    Stor,
}

/// Where transfers go: an FTP server, or the raw TCP ceiling.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Ftp(SocketAddr),
    Raw(SocketAddr),
}

/// `streams` parallel transfers of `size` bytes each, started together once
/// all sessions are logged in. Returns the throughput in MiB/s and the
/// server's CPU seconds per GiB. Uploads are verified on disk, then removed.
#[allow(clippy::too_many_arguments)]
pub async fn transfer(
    plan: &Plan,
    server: &str,
    pid: u32,
    target: Target,
    dir: Dir,
    streams: usize,
    size: u64,
    block: &Arc<Vec<u8>>,
    user_root: Option<&Path>,
    res: &mut Results,
) -> Result<()> {
    let ready = Arc::new(Barrier::new(streams + 1));
    let go = Arc::new(Barrier::new(streams + 1));
    // Passed once a session's transfer is complete: the clock (and the CPU
    // reading, taken while forking servers' session processes still live)
    // stops when all have passed it, before the sessions quit.
    let finished = Arc::new(Barrier::new(streams + 1));
    let src = if size == plan.big { "big.bin" } else { "small.bin" };
    let mut set = JoinSet::new();
    for i in 0..streams {
        let (ready, go, finished, block) = (ready.clone(), go.clone(), finished.clone(), block.clone());
        let (step, total) = (plan.step, plan.transfer);
        let up = format!("up/s-{i}.bin");
        set.spawn(async move {
            let mut ctrl = match target {
                Target::Ftp(addr) => {
                    let mut c = Ctrl::connect(addr, step).await?;
                    c.login(USER, PASSWORD).await?;
                    c.expect("TYPE I", &[200]).await?;
                    Some((c, addr))
                }
                Target::Raw(_) => None,
            };
            timeout(step, ready.wait()).await.map_err(|_| anyhow!("start barrier"))?;
            timeout(step, go.wait()).await.map_err(|_| anyhow!("start barrier"))?;
            match (&mut ctrl, target, dir) {
                (Some((c, addr)), _, Dir::Retr) => {
                    c.retr_verify(*addr, src, size, &block, total).await.map(drop)?
                }
                (Some((c, addr)), _, Dir::Stor) => c.stor(*addr, &up, size, &block, total).await?,
                (None, Target::Raw(a), Dir::Retr) => timeout(total, raw::retr(a, src, size, &block))
                    .await
                    .map_err(|_| anyhow!("raw RETR timed out"))?
                    .map(drop)?,
                (None, Target::Raw(a), Dir::Stor) => timeout(total, raw::stor(a, &up, size, &block))
                    .await
                    .map_err(|_| anyhow!("raw STOR timed out"))??,
                (None, Target::Ftp(_), _) => bail!("no control connection"),
            }
            timeout(total, finished.wait()).await.map_err(|_| anyhow!("end barrier"))?;
            if let Some((c, _)) = ctrl {
                let _ = c.quit().await;
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    // All logged in (or failed): start the clock and release them together.
    // No session can end well before the start (each needs this task at
    // `go`), so one that ends here has failed.
    tokio::select! {
        biased;
        _ = ready.wait() => {}
        Some(r) = set.join_next() => {
            set.abort_all();
            return Err(match r {
                Ok(Err(e)) => e,
                Ok(Ok(())) => anyhow!("session ended before the start"),
                Err(e) => anyhow!("task: {e}"),
            })
            .context("setting up transfer sessions");
        }
    }
    let meter = CpuMeter::start(Some(pid));
    // Every session is already waiting here: this returns at once.
    go.wait().await;
    // A session that ends well has passed `finished`, so all have: the
    // transfers are over even if this task has not seen the barrier yet.
    let early = tokio::select! {
        biased;
        _ = finished.wait() => None,
        Some(r) = set.join_next() => Some(r),
    };
    if let Some(r) = early {
        let r = r.map_err(|e| anyhow!("task: {e}")).and_then(|x| x);
        if let Err(e) = r {
            set.abort_all();
            return Err(e);
        }
    }
    let used = meter.stop();
    while let Some(r) = set.join_next().await {
        r.map_err(|e| anyhow!("task: {e}")).and_then(|x| x).context("after the transfer")?;
    }
    if dir == Dir::Stor {
        match (user_root, target) {
            (Some(root), _) => {
                for i in 0..streams {
                    let p = root.join(format!("up/s-{i}.bin"));
                    pattern::verify_file(block, &p, size).context("verifying upload")?;
                    std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
                }
            }
            // Not on a local disk (an object store): read back through FTP.
            (None, Target::Ftp(addr)) => {
                let mut c = Ctrl::connect(addr, plan.step).await?;
                c.login(USER, PASSWORD).await?;
                c.expect("TYPE I", &[200]).await?;
                for i in 0..streams {
                    let up = format!("up/s-{i}.bin");
                    c.retr_verify(addr, &up, size, block, plan.transfer).await.context("verifying upload")?;
                    c.expect(&format!("DELE {up}"), &[250]).await?;
                }
                let _ = c.quit().await;
            }
            (None, Target::Raw(_)) => bail!("raw uploads are verified on disk"),
        }
    }
    let bytes = (streams as u64 * size) as f64;
    let verb = if dir == Dir::Retr { "RETR" } else { "STOR" };
    let shape = if streams == 1 {
        format!("1 stream of {}", size_label(size))
    } else {
        format!("{streams} parallel streams of {}", size_label(size))
    };
    let key = format!("{}_{streams}x{size}", verb.to_lowercase());
    let rate = Metric::new("Throughput", key.clone(), format!("{verb}, {shape}"), "MiB/s", Better::Higher);
    res.record(&rate, server, bytes / MIB / used.wall);
    res.record_client(&rate, server, used.client_share());
    let cpu = Metric::new(
        "Throughput",
        format!("cpu_{key}"),
        format!("{verb}, {shape}: server CPU"),
        "s/GiB",
        Better::Lower,
    );
    res.record(&cpu, server, used.server_cpu / (bytes / GIB));
    Ok(())
}

/// LIST and MLSD of the directory of `listing_entries` entries.
pub async fn listing(
    plan: &Plan,
    server: &str,
    addr: SocketAddr,
    mlsd: bool,
    res: &mut Results,
) -> Result<()> {
    let mut c = Ctrl::connect(addr, plan.step).await?;
    c.login(USER, PASSWORD).await?;
    let verbs: &[&str] = if mlsd { &["LIST", "MLSD"] } else { &["LIST"] };
    for &verb in verbs {
        let mut times = Vec::new();
        let meter = CpuMeter::start(None);
        for _ in 0..plan.listing_reps {
            let t = Instant::now();
            let lines = c.listing(addr, verb, "/big", plan.transfer).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            if lines < plan.listing_entries {
                bail!("{verb} /big: {lines} lines for {} entries", plan.listing_entries);
            }
        }
        let used = meter.stop();
        let m = Metric::new(
            "Listing",
            format!("{}_ms", verb.to_lowercase()),
            format!("{verb} of a directory of {} entries", plan.listing_entries),
            "ms",
            Better::Lower,
        );
        res.record(&m, server, crate::results::median(&times).unwrap_or(f64::NAN));
        res.record_client(&m, server, used.client_share());
    }
    c.quit().await
}
