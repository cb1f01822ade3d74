//! The servers under test: how each is installed, configured and started on
//! a loopback high port, and a guard that kills it (its whole process
//! group, and every descendant) however the benchmark ends.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::ftp::Ctrl;
use crate::procs;

/// The virtual user every server gets (a system account for vsftpd).
pub const USER: &str = "ferrobench";
pub const PASSWORD: &str = "bench-Pa55-word";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Ferroftpd,
    Vsftpd,
    PureFtpd,
    Pyftpdlib,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Ferroftpd, Kind::Vsftpd, Kind::PureFtpd, Kind::Pyftpdlib];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ferroftpd => "ferroftpd",
            Kind::Vsftpd => "vsftpd",
            Kind::PureFtpd => "pure-ftpd",
            Kind::Pyftpdlib => "pyftpdlib",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s || k.name().replace('-', "") == s)
    }

    /// Whether the server answers MLSD (vsftpd does not).
    pub fn has_mlsd(self) -> bool {
        self != Kind::Vsftpd
    }
}

/// Everything shared by the servers' setups.
pub struct Env {
    /// Scratch directory: data files, roots, configurations.
    pub work: PathBuf,
    pub ferroftpd_bin: PathBuf,
    /// Where pure-ftpd's Debian package is unpacked when installed by us.
    pub peers_dir: PathBuf,
    /// argon2id hash of [`PASSWORD`] with ferroftpd's parameters.
    pub phc: String,
    pub listing_entries: usize,
    /// ferroftpd with `[metrics]` on.
    pub ferroftpd_metrics: bool,
}

/// Runs a command to completion, failing with its output if it fails.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> Result<()> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// (uid, gid) of a system account.
fn account(name: &str) -> Option<(u32, u32)> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn pure_ftpd_bin(env: &Env) -> Option<(PathBuf, PathBuf)> {
    let sys = (PathBuf::from("/usr/sbin/pure-ftpd"), PathBuf::from("/usr/bin/pure-pw"));
    let ours =
        (env.peers_dir.join("pure-ftpd/usr/sbin/pure-ftpd"), env.peers_dir.join("pure-ftpd/usr/bin/pure-pw"));
    [sys, ours].into_iter().find(|(d, p)| d.exists() && p.exists())
}

/// Why a peer cannot run here, or None if it can.
pub fn missing(kind: Kind, env: &Env) -> Option<String> {
    match kind {
        Kind::Ferroftpd => None,
        Kind::Vsftpd if !Path::new("/usr/sbin/vsftpd").exists() => Some("vsftpd is not installed".into()),
        Kind::PureFtpd if pure_ftpd_bin(env).is_none() => Some("pure-ftpd is not installed".into()),
        Kind::Vsftpd | Kind::PureFtpd if !is_root() => {
            Some(format!("{} needs root (privilege separation)", kind.name()))
        }
        Kind::PureFtpd if account("ftp").is_none() => {
            Some("pure-ftpd needs the system account `ftp` (installing vsftpd creates it)".into())
        }
        Kind::Pyftpdlib => {
            let ok = Command::new("python3")
                .args(["-c", "import pyftpdlib, argon2, OpenSSL"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            (!ok).then(|| "python3 modules pyftpdlib, argon2-cffi and pyOpenSSL are not installed".into())
        }
        _ => None,
    }
}

/// Installs a missing peer from the package registries: vsftpd with apt;
/// pure-ftpd's Debian package unpacked beside the work directory (Debian
/// forbids installing it beside vsftpd: both provide `ftp-server`);
/// pyftpdlib and argon2-cffi with pip.
pub fn install(kind: Kind, env: &Env, apt_updated: &mut bool) -> Result<()> {
    let mut apt_update = || -> Result<()> {
        if !*apt_updated {
            run(Command::new("apt-get").args(["update", "-q"]))?;
            *apt_updated = true;
        }
        Ok(())
    };
    match kind {
        Kind::Ferroftpd => Ok(()),
        Kind::Vsftpd => {
            apt_update()?;
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends", "vsftpd"])
                .env("DEBIAN_FRONTEND", "noninteractive"))
            .map(drop)
        }
        Kind::PureFtpd => {
            apt_update()?;
            // Its libraries, then the package itself, unpacked (not installed).
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(["libsodium23", "libcap2", "libpam0g", "libssl3", "libcrypt1"])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
            let dl = env.peers_dir.join("download");
            fs::create_dir_all(&dl)?;
            // _apt cannot write into a root-only directory; let it.
            fs::set_permissions(&dl, fs::Permissions::from_mode(0o777))?;
            run(Command::new("apt-get").args(["download", "pure-ftpd"]).current_dir(&dl))?;
            let deb = fs::read_dir(&dl)?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "deb"))
                .context("apt-get download left no .deb")?;
            run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(env.peers_dir.join("pure-ftpd"))).map(drop)
        }
        Kind::Pyftpdlib => {
            // pyOpenSSL: pyftpdlib's FTPS handler.
            run(Command::new("python3").args([
                "-m",
                "pip",
                "install",
                "-q",
                "pyftpdlib",
                "argon2-cffi",
                "pyopenssl",
            ]))
            .map(drop)
        }
    }
}

/// A free loopback port (bound and released; servers bind it right after).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Creates a server's directories: `anon/` (read-only, root-owned: vsftpd's
/// rule) and `user/` (the virtual user's root) holding hard links to the
/// data files, `big/` with the listing's entries and a writable `up/`.
pub fn prepare_dirs(kind: Kind, env: &Env) -> Result<PathBuf> {
    let dir = env.work.join(kind.name());
    let anon = dir.join("anon");
    mkdir(&anon, 0o755)?;
    fs::write(anon.join("README.txt"), "benchmark\n")?;
    let user = dir.join("user");
    mkdir(&user, 0o755)?;
    for name in ["big.bin", "small.bin"] {
        let link = user.join(name);
        let _ = fs::remove_file(&link);
        fs::hard_link(env.work.join("data").join(name), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    let up = user.join("up");
    if up.exists() {
        fs::remove_dir_all(&up)?;
    }
    mkdir(&up, 0o777)?;
    let big = user.join("big");
    let have = fs::read_dir(&big).map(|d| d.count()).unwrap_or(0);
    if have != env.listing_entries {
        if big.exists() {
            fs::remove_dir_all(&big)?;
        }
        mkdir(&big, 0o755)?;
        for i in 0..env.listing_entries {
            fs::File::create(big.join(format!("entry-{i:05}.txt")))?;
        }
    }
    Ok(dir)
}

/// One-time setup of a server's accounts (before its first start).
pub fn prepare_accounts(kind: Kind, env: &Env, dir: &Path) -> Result<()> {
    match kind {
        Kind::Ferroftpd => {
            let db = dir.join("users.db");
            let _ = fs::remove_file(&db);
            run(Command::new(&env.ferroftpd_bin)
                .args(["user", "add", USER, "--root"])
                .arg(dir.join("user"))
                .args(["--password", PASSWORD, "--db"])
                .arg(&db))
            .map(drop)
        }
        Kind::Vsftpd => {
            // vsftpd's users are the system's (PAM): a system account whose
            // password is hashed by the system's default (yescrypt on Debian).
            if account(USER).is_none() {
                run(Command::new("useradd")
                    .args(["--system", "--no-create-home", "--shell", "/bin/sh", "--home-dir"])
                    .arg(dir.join("user"))
                    .arg(USER))?;
            }
            run(Command::new("usermod").arg("--home").arg(dir.join("user")).arg(USER))?;
            run_with_stdin(&mut Command::new("chpasswd"), &format!("{USER}:{PASSWORD}\n"))
        }
        Kind::PureFtpd => {
            // pure-ftpd's own user database; libsodium verifies the same
            // argon2id string ferroftpd stores.
            let (uid, gid) = account("ftp").context("no system account `ftp`")?;
            let (_, pure_pw) = pure_ftpd_bin(env).context("pure-ftpd not installed")?;
            let passwd = dir.join("pureftpd.passwd");
            let user_root = dir.join("user");
            fs::write(
                &passwd,
                format!("{USER}:{}:{uid}:{gid}::{}/./::::::::::::\n", env.phc, user_root.display()),
            )?;
            run(Command::new(pure_pw).arg("mkdb").arg(dir.join("pureftpd.pdb")).arg("-f").arg(&passwd))
                .map(drop)
        }
        Kind::Pyftpdlib => {
            fs::write(dir.join("user.phc"), &env.phc)?;
            fs::write(dir.join("server.py"), include_str!("../peers/pyftpdlib_server.py"))?;
            Ok(())
        }
    }
}

/// The certificate and key a server offers when started with TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// A fresh self-signed certificate for 127.0.0.1, made by ferroftpd's
    /// own `cert self-signed` (so the benchmark needs no other tool).
    pub fn make(env: &Env) -> Result<TlsFiles> {
        let dir = env.work.join("tls");
        mkdir(&dir, 0o755)?;
        let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
        run(Command::new(&env.ferroftpd_bin)
            .args(["cert", "self-signed", "--host", "127.0.0.1", "--force", "--out-cert"])
            .arg(&files.cert)
            .arg("--out-key")
            .arg(&files.key))?;
        Ok(files)
    }

    /// A connector that trusts this certificate only.
    pub fn connector(&self) -> Result<tokio_rustls::TlsConnector> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateDer;
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.cert).context("reading the bench certificate")? {
            roots.add(cert.context("parsing the bench certificate")?)?;
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

fn command(kind: Kind, env: &Env, dir: &Path, port: u16, tls: Option<&TlsFiles>) -> Result<Command> {
    let anon = dir.join("anon");
    let user = dir.join("user");
    Ok(match kind {
        Kind::Ferroftpd => {
            let conf = dir.join("ferroftpd.toml");
            let mut extra = tls.map_or(String::new(), |t| {
                format!("\n[tls]\ncertificate = \"{}\"\nkey = \"{}\"\n", t.cert.display(), t.key.display())
            });
            if env.ferroftpd_metrics {
                extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
            }
            fs::write(
                &conf,
                format!(
                    "[server]\nlisten = [\"127.0.0.1:{port}\"]\n\n\
                     [limits]\nmax_clients = 20000\nmax_clients_per_ip = 20000\n\
                     max_sessions_per_user = 0\n\n\
                     [timeouts]\nlogin = 600\nidle = 3600\ndata = 600\n\n\
                     [passive]\nport_range = [0, 0]\n\n\
                     [auth]\nchain = [\"anonymous\", \"userdb\"]\n\n\
                     [anonymous]\nroot = \"{}\"\n\n\
                     [userdb]\npath = \"{}\"\n\n\
                     [log]\nlevel = \"warn\"\n{extra}",
                    anon.display(),
                    dir.join("users.db").display()
                ),
            )?;
            let mut c = Command::new(&env.ferroftpd_bin);
            c.arg("serve").arg("--config").arg(conf);
            c
        }
        Kind::Vsftpd => {
            let conf = dir.join("vsftpd.conf");
            let ssl = match tls {
                None => "ssl_enable=NO\n".to_string(),
                Some(t) => format!(
                    "ssl_enable=YES\nallow_anon_ssl=YES\nforce_local_logins_ssl=NO\n\
                     force_local_data_ssl=NO\nforce_anon_logins_ssl=NO\nforce_anon_data_ssl=NO\n\
                     ssl_ciphers=HIGH\nrsa_cert_file={}\nrsa_private_key_file={}\n",
                    t.cert.display(),
                    t.key.display()
                ),
            };
            fs::write(
                &conf,
                format!(
                    "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                     background=NO\n\
                     anonymous_enable=YES\nno_anon_password=YES\nanon_root={}\n\
                     local_enable=YES\nwrite_enable=YES\nlocal_umask=022\n\
                     chroot_local_user=YES\nallow_writeable_chroot=YES\nlocal_root={}\n\
                     pam_service_name=vsftpd\nsecure_chroot_dir=/var/run/vsftpd/empty\n\
                     pasv_enable=YES\nport_enable=YES\n\
                     max_clients=0\nmax_per_ip=0\n\
                     idle_session_timeout=3600\ndata_connection_timeout=600\n\
                     xferlog_enable=NO\ndual_log_enable=NO\nsyslog_enable=NO\n\
                     vsftpd_log_file=/dev/null\nlog_ftp_protocol=NO\n\
                     seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
                     tcp_wrappers=NO\nuse_sendfile=YES\n{ssl}",
                    anon.display(),
                    user.display()
                ),
            )?;
            let mut c = Command::new("/usr/sbin/vsftpd");
            c.arg(conf);
            c
        }
        Kind::PureFtpd => {
            let (bin, _) = pure_ftpd_bin(env).context("pure-ftpd not installed")?;
            let mut c = Command::new(bin);
            c.arg("-S")
                .arg(format!("127.0.0.1,{port}"))
                .args(["-c", "20000", "-C", "20000", "-I", "60", "-L", "20000:5"])
                .args(["-u", "1", "-H", "-A", "-4"])
                .arg("-l")
                .arg(format!("puredb:{}", dir.join("pureftpd.pdb").display()));
            if let Some(t) = tls {
                c.args(["-Y", "1", "-2"]).arg(format!("{},{}", t.cert.display(), t.key.display()));
            }
            c
        }
        Kind::Pyftpdlib => {
            let mut c = Command::new("python3");
            c.arg(dir.join("server.py"))
                .arg(port.to_string())
                .arg(&anon)
                .arg(USER)
                .arg(dir.join("user.phc"))
                .arg(&user);
            if let Some(t) = tls {
                c.arg(&t.cert).arg(&t.key);
            }
            c
        }
    })
}

/// A running server; dropping it kills the server and all its processes.
pub struct Running {
    pub kind_name: String,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
}

/// Spawns a child in its own process group, so it and its forks can be
/// signalled together, with the guard that kills them.
pub fn spawn_guarded(mut cmd: Command, name: &str, addr: SocketAddr, log: &Path) -> Result<Running> {
    let log = fs::File::create(log)?;
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    let child = cmd.spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
    Ok(Running { kind_name: name.to_string(), addr, pid: child.id(), child })
}

/// Starts a server on a fresh port and waits (bounded) for its greeting.
pub async fn start(kind: Kind, env: &Env, dir: &Path, tls: Option<&TlsFiles>) -> Result<Running> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let cmd = command(kind, env, dir, port, tls)?;
    let mut running = spawn_guarded(cmd, kind.name(), addr, &dir.join("server.log"))?;
    running.wait_ready(&dir.join("server.log")).await?;
    Ok(running)
}

impl Running {
    /// Waits up to 15 s until a connection gets the 220 greeting.
    pub async fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let text = fs::read_to_string(log).unwrap_or_default();
                bail!("{} exited at start ({status}): {}", self.kind_name, text.trim());
            }
            if let Ok(c) = Ctrl::connect(self.addr, Duration::from_secs(2)).await {
                let _ = c.quit().await;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer on {} within 15 s", self.kind_name, self.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = self.pid as i32;
        // Forking servers put sessions in groups of their own (vsftpd calls
        // setsid), so every descendant is also signalled by pid, from a
        // snapshot that records each one's start time against pid reuse.
        let tree: Vec<(u32, u64)> =
            procs::tree(self.pid).into_iter().filter_map(|p| Some((p, procs::start_time(p)?))).collect();
        // SAFETY: plain kill(2) calls on the group and processes we spawned.
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
            for &(p, _) in &tree {
                libc::kill(p as i32, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; a process is killed only if it is still the one
        // of the snapshot (same pid, same start time).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            for &(p, started) in &tree {
                if procs::start_time(p) == Some(started) {
                    libc::kill(p as i32, libc::SIGKILL);
                }
            }
        }
        let _ = self.child.wait();
    }
}
