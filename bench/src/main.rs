//! `bench`: ferroftpd side by side with vsftpd, pure-ftpd and pyftpdlib.
//!
//! `cargo run --release -p bench` builds ferroftpd, installs the missing
//! peers, starts every server on a loopback high port with its own
//! configuration, runs the same workloads against each (servers alternating
//! within each repetition), and writes docs/bench.md and
//! docs/bench-memory.svg. `--smoke` runs a tiny version in seconds for CI.
//! See bench/README.md.

mod ftp;
mod objectstore;
mod pattern;
mod procs;
mod raw;
mod results;
mod servers;
mod workloads;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use results::{Results, Target, FERRO, RAW};
use servers::Kind;
use workloads::{Dir, Plan};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "ferroftpd's memory and speed, side by side with vsftpd, pure-ftpd and pyftpdlib"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Tiny sizes, one repetition, seconds in all; peers only if installed.
    #[arg(long)]
    smoke: bool,
    /// Servers to run (default: all): ferroftpd, vsftpd, pure-ftpd, pyftpdlib.
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Repetitions (medians are reported); default 3, smoke 1.
    #[arg(long)]
    reps: Option<usize>,
    /// Workloads to run (default: all): memory, logins, throughput, listing,
    /// tls (the memory ramp over FTPS, on a second start of each server).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Most logged-in idle clients in the memory ramp (default 10000).
    #[arg(long)]
    max_clients: Option<usize>,
    /// Where docs/bench.md and docs/bench-memory.svg go (default: the
    /// repository's docs/; smoke: target/bench-smoke/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Scratch directory for data, roots and configurations (default: target/bench-work).
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Use this ferroftpd binary instead of building it.
    #[arg(long, value_name = "PATH")]
    ferroftpd: Option<PathBuf>,
    /// Run ferroftpd with its Prometheus endpoint on (`[metrics]`), to
    /// measure what it costs.
    #[arg(long)]
    metrics: bool,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// The raw TCP ceiling's server (started by the benchmark itself).
    #[command(hide = true)]
    RawServer {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        root: PathBuf,
    },
}

const WORKLOADS: [&str; 6] = ["memory", "logins", "throughput", "listing", "tls", "objectstore"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The target directory this binary was built into (…/target/PROFILE/bench).
fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        return if t.is_absolute() { t } else { workspace_root().join(t) };
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds ferroftpd (release) and returns its path.
fn build_ferroftpd() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench: building ferroftpd (release)");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "ferroftpd", "--bin", "ferroftpd"])
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building ferroftpd failed ({status})");
    }
    let bin = target_dir().join("release").join("ferroftpd");
    if !bin.exists() {
        bail!("{} missing after the build", bin.display());
    }
    Ok(bin)
}

fn plan(cli: &Cli) -> Plan {
    if cli.smoke {
        Plan {
            smoke: true,
            ramp: vec![5, 20],
            ramp_concurrency: 8,
            login_concurrency: vec![4],
            login_time: Duration::from_millis(300),
            big: 1 << 20,
            small: 1 << 20,
            parallel: 4,
            listing_entries: 100,
            listing_reps: 2,
            step: Duration::from_secs(10),
            transfer: Duration::from_secs(30),
            settle: Duration::from_millis(100),
        }
    } else {
        let top = cli.max_clients.unwrap_or(10_000);
        let mut ramp: Vec<usize> = [100, 1000, 10_000].into_iter().filter(|&n| n < top).collect();
        ramp.push(top);
        Plan {
            smoke: false,
            ramp,
            ramp_concurrency: 64,
            login_concurrency: vec![16, 64],
            login_time: Duration::from_secs(4),
            big: 1 << 30,
            small: 32 << 20,
            parallel: 32,
            listing_entries: 10_000,
            listing_reps: 10,
            step: Duration::from_secs(30),
            transfer: Duration::from_secs(600),
            settle: Duration::from_secs(1),
        }
    }
}

fn version_of(kind: Kind, env: &servers::Env) -> String {
    let out = |cmd: &mut Command| {
        cmd.output().ok().map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
    };
    let v = match kind {
        Kind::Ferroftpd => out(Command::new("git")
            .args(["-C"])
            .arg(workspace_root())
            .args(["describe", "--always", "--dirty"]))
        .map(|r| format!("0.1.0 ({r})")),
        Kind::Vsftpd => out(Command::new("dpkg-query").args(["-W", "-f", "${Version}", "vsftpd"])),
        Kind::PureFtpd => {
            let bin = ["/usr/sbin/pure-ftpd".into(), env.peers_dir.join("pure-ftpd/usr/sbin/pure-ftpd")]
                .into_iter()
                .find(|p: &PathBuf| p.exists());
            bin.and_then(|b| out(Command::new(b).arg("--help")))
        }
        Kind::Pyftpdlib => out(Command::new("python3").args([
            "-c",
            "import pyftpdlib, argon2; print(pyftpdlib.__ver__, '(argon2-cffi', argon2.__version__ + ')')",
        ])),
    };
    v.unwrap_or_else(|| "?".into())
}

/// Times one password verification of each kind the servers use.
fn hash_costs(phc: &str, with_vsftpd: bool) -> Vec<String> {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let mut notes = Vec::new();
    if let Ok(parsed) = PasswordHash::new(phc) {
        let mut t = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            let _ = argon2::Argon2::default().verify_password(servers::PASSWORD.as_bytes(), &parsed);
            t.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        notes.push(format!(
            "Virtual-user hash: argon2id m=19 MiB t=2 p=1 (ferroftpd's own; pure-ftpd via libsodium and pyftpdlib \
             via argon2-cffi verify the same string): {:.1} ms per verification here.",
            results::median(&t).unwrap_or(f64::NAN)
        ));
    }
    if let Some(ms) = crypt_cost().filter(|_| with_vsftpd) {
        notes.push(format!(
            "vsftpd authenticates through PAM against the system's shadow file, which cannot hold argon2: its \
             virtual user is a system account with Debian's default hash ({}), {ms:.1} ms per verification here.",
            shadow_hash(servers::USER)
                .map(|h| match h.split('$').nth(1).unwrap_or("") {
                    "y" => "yescrypt",
                    "gy" => "gost-yescrypt",
                    "6" => "sha512crypt",
                    "5" => "sha256crypt",
                    "2b" | "2y" => "bcrypt",
                    "1" => "md5crypt",
                    _ => "unknown",
                })
                .unwrap_or("unknown")
        ));
    }
    notes
}

fn shadow_hash(user: &str) -> Option<String> {
    let text = fs::read_to_string("/etc/shadow").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(user)).then(|| f.next().map(str::to_string)).flatten()
    })
}

/// Time of one crypt(3) verification of the vsftpd user's shadow hash, via
/// libcrypt loaded at run time (no link-time dependency).
fn crypt_cost() -> Option<f64> {
    use std::ffi::{c_char, CString};
    let hash = CString::new(shadow_hash(servers::USER)?).ok()?;
    let key = CString::new(servers::PASSWORD).ok()?;
    // SAFETY: dlopen/dlsym with valid C strings; `crypt` has the signature
    // declared below; its result is only compared, never freed.
    unsafe {
        let lib = libc::dlopen(c"libcrypt.so.1".as_ptr(), libc::RTLD_NOW);
        if lib.is_null() {
            return None;
        }
        let sym = libc::dlsym(lib, c"crypt".as_ptr());
        if sym.is_null() {
            return None;
        }
        let crypt: extern "C" fn(*const c_char, *const c_char) -> *mut c_char = std::mem::transmute(sym);
        let mut t = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            let r = crypt(key.as_ptr(), hash.as_ptr());
            t.push(s.elapsed().as_secs_f64() * 1000.0);
            if r.is_null() {
                return None;
            }
        }
        results::median(&t)
    }
}

/// What every server's run shares: the chosen workloads, the data pattern
/// and, for the FTPS workload, the certificate and a client trusting it.
struct Workset<'a> {
    only: &'a [String],
    block: &'a Arc<Vec<u8>>,
    tls: Option<&'a (servers::TlsFiles, tokio_rustls::TlsConnector)>,
}

/// Runs the chosen workloads against one started server.
async fn run_server(
    plan: &Plan,
    kind: Kind,
    env: &servers::Env,
    dir: &Path,
    work: &Workset<'_>,
    res: &mut Results,
) -> Result<()> {
    let Workset { only, block, tls } = *work;
    let name = kind.name();
    let running = servers::start(kind, env, dir, None).await?;
    let (pid, addr) = (running.pid, running.addr);
    eprintln!("bench: {name} running on {addr} (pid {pid})");
    let wants = |w: &str| only.iter().any(|o| o == w);
    let fail = |res: &mut Results, what: &str, r: Result<()>| {
        if let Err(e) = r {
            res.error(name, format!("{what}: {e:#}"));
        }
    };
    if wants("memory") {
        let r = workloads::memory(plan, name, pid, addr, None, res).await;
        fail(res, "memory", r);
    }
    if wants("logins") {
        for user in [false, true] {
            let r = workloads::logins(plan, name, pid, addr, user, res).await;
            fail(res, if user { "virtual-user logins" } else { "anonymous logins" }, r);
        }
    }
    if wants("throughput") {
        let user_root = dir.join("user");
        for (streams, size) in [(1, plan.big), (plan.parallel, plan.small)] {
            for d in [Dir::Retr, Dir::Stor] {
                let r = workloads::transfer(
                    plan,
                    name,
                    pid,
                    workloads::Target::Ftp(addr),
                    d,
                    streams,
                    size,
                    block,
                    Some(&user_root),
                    res,
                )
                .await;
                fail(res, &format!("{d:?} {streams}×{size} B"), r);
            }
        }
    }
    if wants("listing") {
        let r = workloads::listing(plan, name, addr, kind.has_mlsd(), res).await;
        fail(res, "listing", r);
    }
    drop(running);
    if let (true, Some((files, connector))) = (wants("tls"), tls) {
        // A second start with TLS configured, so the plain figures above
        // are not charged for it.
        let running = servers::start(kind, env, dir, Some(files)).await?;
        eprintln!("bench: {name} with TLS running on {} (pid {})", running.addr, running.pid);
        let r = workloads::memory(plan, name, running.pid, running.addr, Some(connector), res).await;
        fail(res, "memory over FTPS", r);
    }
    Ok(())
}

/// ferroftpd with its user's root on a three-node Garage cluster: the same
/// RETR/STOR workloads as on local disk (uploads read back through FTP).
async fn run_object_store(
    plan: &Plan,
    env: &servers::Env,
    program: &Path,
    block: &Arc<Vec<u8>>,
    res: &mut Results,
) -> Result<()> {
    let dir = env.work.join("objectstore");
    let cluster = objectstore::Cluster::start(program, &dir.join("garage"))?;
    let port = servers::free_port()?;
    let conf = objectstore::prepare_ferroftpd(
        &env.ferroftpd_bin,
        &dir,
        &cluster,
        port,
        servers::USER,
        servers::PASSWORD,
    )?;
    let mut cmd = Command::new(&env.ferroftpd_bin);
    cmd.arg("serve").arg("--config").arg(&conf).env_remove("AWS_CA_BUNDLE");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = dir.join("server.log");
    let mut running = servers::spawn_guarded(cmd, objectstore::NAME, addr, &log)?;
    running.wait_ready(&log).await?;
    eprintln!("bench: {} running on {addr} (pid {})", objectstore::NAME, running.pid);
    // The files RETR reads, uploaded once.
    let mut c = ftp::Ctrl::connect(addr, plan.step).await?;
    c.login(servers::USER, servers::PASSWORD).await?;
    c.expect("TYPE I", &[200]).await?;
    for (name, size) in [("big.bin", plan.big), ("small.bin", plan.small)] {
        c.stor(addr, name, size, block, plan.transfer).await.with_context(|| format!("uploading {name}"))?;
    }
    let _ = c.quit().await;
    for (streams, size) in [(1, plan.big), (plan.parallel, plan.small)] {
        for d in [Dir::Retr, Dir::Stor] {
            let r = workloads::transfer(
                plan,
                objectstore::NAME,
                running.pid,
                workloads::Target::Ftp(addr),
                d,
                streams,
                size,
                block,
                None,
                res,
            )
            .await;
            if let Err(e) = r {
                res.error(objectstore::NAME, format!("{d:?} {streams}×{size} B: {e:#}"));
            }
        }
    }
    drop(running);
    drop(cluster);
    Ok(())
}

/// The raw TCP ceiling: the same transfers without FTP.
async fn run_raw(plan: &Plan, env: &servers::Env, block: &Arc<Vec<u8>>, res: &mut Results) -> Result<()> {
    let root = env.work.join("raw");
    for sub in ["", "up"] {
        fs::create_dir_all(root.join(sub))?;
    }
    for name in ["big.bin", "small.bin"] {
        let link = root.join(name);
        let _ = fs::remove_file(&link);
        fs::hard_link(env.work.join("data").join(name), &link)?;
    }
    let port = servers::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["raw-server", "--port", &port.to_string(), "--root"]).arg(&root);
    let running = servers::spawn_guarded(cmd, RAW, addr, &root.join("server.log"))?;
    // Ready when it accepts a connection (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("raw TCP server did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (streams, size) in [(1, plan.big), (plan.parallel, plan.small)] {
        for d in [Dir::Retr, Dir::Stor] {
            let r = workloads::transfer(
                plan,
                RAW,
                running.pid,
                workloads::Target::Raw(addr),
                d,
                streams,
                size,
                block,
                Some(&root),
                res,
            )
            .await;
            if let Err(e) = r {
                res.error(RAW, format!("{d:?} {streams}×{size} B: {e:#}"));
            }
        }
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("–".into(), |x| if x >= 100.0 { format!("{x:.0} {unit}") } else { format!("{x:.1} {unit}") })
}

fn targets(plan: &Plan, res: &Results, servers: &[String]) -> Vec<Target> {
    let mut t = Vec::new();
    let top = plan.ramp.last().copied().unwrap_or(0);
    let per =
        [res.med(&format!("pss_per_client_{top}"), FERRO), res.med(&format!("rss_per_client_{top}"), FERRO)];
    let worst = per.iter().flatten().copied().fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
    let reached = res.med("clients_reached", FERRO);
    t.push(Target {
        what: format!("≤ 2 kB per logged-in idle client at {top} clients (larger of RSS and PSS)"),
        value: fmt_opt(worst, "kB"),
        reference: format!("2 kB{}", reached.map_or(String::new(), |r| format!(" ({r:.0} clients held)"))),
        met: worst.map(|w| w <= 2.0),
    });
    let idle = res.med("idle_rss", FERRO);
    t.push(Target {
        what: "Idle server ≤ 4 MB RSS".into(),
        value: fmt_opt(idle.map(|k| k / 1024.0), "MiB"),
        reference: "4 MiB".into(),
        met: idle.map(|k| k <= 4096.0),
    });
    for (streams, size) in [(1, plan.big), (plan.parallel, plan.small)] {
        for verb in ["retr", "stor"] {
            let key = format!("{verb}_{streams}x{size}");
            let f = res.med(&key, FERRO);
            if servers.iter().any(|s| s == "vsftpd") {
                let v = res.med(&key, "vsftpd");
                t.push(Target {
                    what: format!(
                        "{} throughput, {} ≥ vsftpd's",
                        verb.to_uppercase(),
                        if streams == 1 {
                            "1 stream".to_string()
                        } else {
                            format!("{streams} parallel streams")
                        }
                    ),
                    value: fmt_opt(f, "MiB/s"),
                    reference: fmt_opt(v, "MiB/s"),
                    met: f.zip(v).map(|(f, v)| f >= v),
                });
            }
            if streams == 1 {
                let r = res.med(&key, RAW);
                t.push(Target {
                    what: format!("{} throughput, 1 stream ≥ 80% of raw TCP", verb.to_uppercase()),
                    value: match f.zip(r) {
                        Some((f, r)) => format!("{f:.0} MiB/s = {:.0}%", 100.0 * f / r),
                        None => fmt_opt(f, "MiB/s"),
                    },
                    reference: fmt_opt(r.map(|r| 0.8 * r), "MiB/s (80%)"),
                    met: f.zip(r).map(|(f, r)| f >= 0.8 * r),
                });
            }
        }
    }
    for &conc in &plan.login_concurrency {
        let key = format!("login_anon_c{conc}");
        let f = res.med(&key, FERRO);
        let best = servers
            .iter()
            .filter(|s| s.as_str() != FERRO)
            .filter_map(|s| res.med(&key, s).map(|v| (v, s.clone())))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((b, who)) = best {
            t.push(Target {
                what: format!("Anonymous logins/s, concurrency {conc} ≥ 2× the best peer's"),
                value: fmt_opt(f, "logins/s"),
                reference: format!("2 × {b:.0}/s ({who}) = {:.0}/s", 2.0 * b),
                met: f.map(|f| f >= 2.0 * b),
            });
        }
    }
    t
}

async fn run(cli: Cli) -> Result<bool> {
    let plan = plan(&cli);
    let started = Instant::now();
    let fd_limit = procs::raise_fd_limit();
    let mut res = Results::default();
    let mut plan = plan;
    // The client holds one descriptor per session, plus a margin.
    let max_by_fds = (fd_limit as usize).saturating_sub(256);
    if plan.ramp.last().copied().unwrap_or(0) > max_by_fds {
        res.notes.push(format!(
            "The open-file limit here is {fd_limit}: the memory ramp stops at {max_by_fds} clients."
        ));
        plan.ramp.retain(|&n| n < max_by_fds);
        plan.ramp.push(max_by_fds);
    }
    let only: Vec<String> = if cli.only.is_empty() {
        WORKLOADS.iter().map(|s| s.to_string()).collect()
    } else {
        for o in &cli.only {
            if !WORKLOADS.contains(&o.as_str()) {
                bail!("--only: unknown workload {o:?} (known: {})", WORKLOADS.join(", "));
            }
        }
        cli.only.clone()
    };
    let mut kinds: Vec<Kind> = if cli.servers.is_empty() {
        Kind::ALL.to_vec()
    } else {
        cli.servers
            .iter()
            .map(|s| Kind::parse(s).with_context(|| format!("--servers: unknown server {s:?}")))
            .collect::<Result<_>>()?
    };
    let reps = cli.reps.unwrap_or(if plan.smoke { 1 } else { 3 }).max(1);
    let target = target_dir();
    let work = cli
        .work
        .clone()
        .unwrap_or_else(|| target.join(if plan.smoke { "bench-work-smoke" } else { "bench-work" }));
    // Server configurations name paths under it, which a server resolves
    // against its configuration file's directory: make it absolute.
    let work = std::path::absolute(&work).with_context(|| format!("--work {}", work.display()))?;
    let out = cli.out.clone().unwrap_or_else(|| {
        if plan.smoke {
            target.join("bench-smoke")
        } else {
            workspace_root().join("docs")
        }
    });
    if cfg!(debug_assertions) {
        res.notes.push("The load generator was built without optimisations (run with --release).".into());
    }

    let ferroftpd_bin = match &cli.ferroftpd {
        Some(p) => p.clone(),
        None => build_ferroftpd()?,
    };
    fs::create_dir_all(work.join("data"))?;
    let block = Arc::new(pattern::block());
    pattern::ensure_file(&block, &work.join("data/big.bin"), plan.big)?;
    pattern::ensure_file(&block, &work.join("data/small.bin"), plan.small)?;
    let phc = {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let mut raw = [0u8; 16];
        std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut raw)?;
        let salt = SaltString::encode_b64(&raw).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        argon2::Argon2::default()
            .hash_password(servers::PASSWORD.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
            .to_string()
    };
    let env = servers::Env {
        peers_dir: target.join("bench-peers"),
        work: work.clone(),
        ferroftpd_bin,
        phc,
        listing_entries: plan.listing_entries,
        ferroftpd_metrics: cli.metrics,
    };

    // Peers: installed if missing (full mode), skipped if missing (smoke).
    let mut apt_updated = false;
    let mut usable = Vec::new();
    for kind in kinds.drain(..) {
        if let Some(why) = servers::missing(kind, &env) {
            if plan.smoke {
                res.notes.push(format!("{} skipped: {why}.", kind.name()));
                continue;
            }
            eprintln!("bench: {why}: installing");
            servers::install(kind, &env, &mut apt_updated)
                .with_context(|| format!("installing {}", kind.name()))?;
            if let Some(why) = servers::missing(kind, &env) {
                bail!("{} still cannot run after installing: {why}", kind.name());
            }
        }
        usable.push(kind);
    }
    let mut kinds = Vec::new();
    let mut dirs = Vec::new();
    for kind in usable {
        let prepared = servers::prepare_dirs(kind, &env)
            .and_then(|d| servers::prepare_accounts(kind, &env, &d).map(|()| d));
        match prepared {
            Ok(d) => {
                kinds.push(kind);
                dirs.push(d);
            }
            Err(e) if plan.smoke && kind != Kind::Ferroftpd => {
                res.notes.push(format!("{} skipped: setup failed: {e:#}", kind.name()));
            }
            Err(e) => return Err(e.context(format!("setting up {}", kind.name()))),
        }
    }
    for n in hash_costs(&env.phc, kinds.contains(&Kind::Vsftpd)) {
        res.notes.push(n);
    }

    let tls = if only.iter().any(|o| o == "tls") {
        let files = servers::TlsFiles::make(&env).context("making the FTPS certificate")?;
        let connector = files.connector()?;
        Some((files, connector))
    } else {
        None
    };

    let work = Workset { only: &only, block: &block, tls: tls.as_ref() };
    if only.iter().any(|o| o == "throughput") && kinds.contains(&Kind::Ferroftpd) {
        res.notes.push(
            "ferroftpd runs with its default transfer.fsync = true: every upload is synced to disk \
             (file and directory entry) before its 226; the peers send 226 without syncing."
                .into(),
        );
    }
    let wants_store = only.iter().any(|o| o == "objectstore");
    let garage = if wants_store { objectstore::program() } else { None };
    if wants_store && garage.is_none() {
        res.notes.push(format!(
            "{} skipped: garage is not installed (FERROFTPD_GARAGE, ~/.local/garage/bin/garage or PATH).",
            objectstore::NAME
        ));
    }

    for rep in 0..reps {
        // Alternate: each repetition starts with a different server.
        for i in 0..kinds.len() {
            let j = (i + rep) % kinds.len();
            let kind = kinds[j];
            eprintln!(
                "bench: repetition {}/{reps}: {} ({:.0} s so far)",
                rep + 1,
                kind.name(),
                started.elapsed().as_secs_f64()
            );
            if let Err(e) = run_server(&plan, kind, &env, &dirs[j], &work, &mut res).await {
                res.error(kind.name(), format!("start: {e:#}"));
            }
        }
        if only.iter().any(|o| o == "throughput") {
            eprintln!("bench: repetition {}/{reps}: raw TCP ceiling", rep + 1);
            if let Err(e) = run_raw(&plan, &env, &block, &mut res).await {
                res.error(RAW, format!("{e:#}"));
            }
        }
        if let (true, Some(program)) = (wants_store, &garage) {
            eprintln!("bench: repetition {}/{reps}: {}", rep + 1, objectstore::NAME);
            if let Err(e) = run_object_store(&plan, &env, program, &block, &mut res).await {
                res.error(objectstore::NAME, format!("{e:#}"));
            }
        }
    }

    // Report.
    let mut names: Vec<String> = kinds.iter().map(|k| k.name().to_string()).collect();
    if only.iter().any(|o| o == "throughput") {
        names.push(RAW.to_string());
    }
    if garage.is_some() {
        names.push(objectstore::NAME.to_string());
    }
    let mut header = String::new();
    header.push_str(if plan.smoke {
        "# Benchmark (smoke run: tiny sizes, not results)\n\n"
    } else {
        "# Benchmark\n\n"
    });
    header.push_str(
        "Generated by `cargo run --release -p bench` (see bench/README.md). Medians over the repetitions; \
         ratios are ferroftpd/peer (↑: higher is better, ↓: lower is better). All servers on 127.0.0.1, \
         each with its own configuration, alternating within each repetition. The memory plot is \
         [bench-memory.svg](bench-memory.svg); every sample is in [bench-samples.csv](bench-samples.csv).\n\n",
    );
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    header.push_str(&format!(
        "- Machine: {} CPUs ({cpu}), Linux {}, open-file limit {fd_limit}.\n- Repetitions: {reps}; workloads: {}; run time {:.0} s.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim(),
        only.join(", "),
        started.elapsed().as_secs_f64()
    ));
    for k in &kinds {
        header.push_str(&format!("- {}: {}\n", k.name(), version_of(*k, &env)));
    }
    header.push_str(&format!(
        "- Sizes: memory ramp to {:?} clients (anonymous); logins for {:.1} s at concurrency {:?}; transfers \
         of 1 × {} and {} × {} (every byte verified, uploads re-read from disk); listings of {} entries, {} \
         times each.\n",
        plan.ramp,
        plan.login_time.as_secs_f64(),
        plan.login_concurrency,
        size_of(plan.big),
        plan.parallel,
        size_of(plan.small),
        plan.listing_entries,
        plan.listing_reps
    ));
    header.push_str(
        "- Memory per client = (memory with N logged-in idle clients − idle memory) / N, summed over all of a \
         server's processes (vsftpd and pure-ftpd fork per client). PSS shares pages between processes; RSS \
         counts shared pages once per process.\n- FTPS: the memory ramp is repeated over explicit TLS (AUTH TLS, PBSZ 0, PROT P, then USER/PASS) on a second start of each server with a self-signed ECDSA certificate; the plain figures come from a start without TLS.\n",
    );
    let t = targets(&plan, &res, &names);
    let md = res.markdown(&names, &header, &t);
    let svg = res.svg(&names);
    fs::create_dir_all(&out)?;
    fs::write(out.join("bench.md"), &md)?;
    fs::write(out.join("bench-memory.svg"), &svg)?;
    fs::write(out.join("bench-samples.csv"), res.csv())?;
    println!("{md}");
    eprintln!(
        "bench: wrote {} and {}",
        out.join("bench.md").display(),
        out.join("bench-memory.svg").display()
    );
    let failed =
        res.errors.iter().any(|(s, _)| !plan.smoke || s == FERRO || s == RAW || s == objectstore::NAME);
    Ok(!failed)
}

fn size_of(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::RawServer { port, root }) = &cli.command {
        procs::raise_fd_limit();
        return match raw::serve(*port, root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("raw-server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `run` on a signal drops the server guards, which kill the servers.
    let outcome = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = run(cli) => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = term.recv() => bail!("terminated"),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench: some measurements failed (see the report's Errors)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
