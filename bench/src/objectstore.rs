//! ferroftpd on an object store: a three-node Garage cluster on loopback
//! (replication factor 3), ferroftpd with its virtual user's root on the
//! bucket (`store:s3/bench`), the same RETR/STOR workloads as on local disk.
//!
//! Garage comes from `FERROFTPD_GARAGE`, `~/.local/garage/bin/garage` or
//! PATH; without it the workload is skipped with a note.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Name of the column in the report.
pub const NAME: &str = "ferroftpd (S3)";

const BUCKET: &str = "bench";

/// The garage program, if installed.
pub fn program() -> Option<PathBuf> {
    let from_env = std::env::var_os("FERROFTPD_GARAGE").map(PathBuf::from);
    let from_home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/garage/bin/garage"));
    let from_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("garage"))
        .find(|p| p.is_file());
    from_env.into_iter().chain(from_home).chain(from_path).find(|p| p.is_file())
}

fn free_port() -> Result<u16> {
    crate::servers::free_port()
}

/// Three Garage nodes with a bucket and a key; killed on drop.
pub struct Cluster {
    program: PathBuf,
    nodes: Vec<(Child, PathBuf)>,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

impl Cluster {
    pub fn start(program: &Path, dir: &Path) -> Result<Cluster> {
        let _ = fs::remove_dir_all(dir);
        let mut secret = [0u8; 32];
        std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut secret)?;
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let mut cluster = Cluster {
            program: program.to_path_buf(),
            nodes: Vec::new(),
            endpoint: String::new(),
            key_id: String::new(),
            secret: String::new(),
        };
        for i in 0..3 {
            let base = dir.join(format!("n{i}"));
            fs::create_dir_all(base.join("meta"))?;
            fs::create_dir_all(base.join("data"))?;
            let s3 = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let rpc = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            if i == 0 {
                cluster.endpoint = format!("http://{s3}");
            }
            let config = base.join("garage.toml");
            fs::write(
                &config,
                format!(
                    "metadata_dir = \"{}\"\ndata_dir = \"{}\"\ndb_engine = \"sqlite\"\nreplication_factor = 3\n\
                     rpc_bind_addr = \"{rpc}\"\nrpc_public_addr = \"{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
                     [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"{s3}\"\n",
                    base.join("meta").display(),
                    base.join("data").display()
                ),
            )?;
            let log = fs::File::create(base.join("garage.log"))?;
            let child = Command::new(program)
                .arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "garage=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting garage")?;
            cluster.nodes.push((child, config));
        }
        let mut ids = Vec::new();
        for i in 0..3 {
            let deadline = Instant::now() + Duration::from_secs(60);
            let id = loop {
                if let Ok(out) = cluster.cli(i, &["node", "id", "-q"]) {
                    break out.lines().next().unwrap_or("").trim().to_string();
                }
                if Instant::now() > deadline {
                    bail!("garage node {i} did not start");
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            ids.push(id);
        }
        for id in &ids[1..] {
            cluster.cli(0, &["node", "connect", id])?;
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap_or(id);
            cluster.cli(0, &["layout", "assign", "-z", &format!("z{i}"), "-c", "10G", short])?;
        }
        cluster.cli(0, &["layout", "apply", "--version", "1"])?;
        let key = cluster.cli(0, &["key", "create", "bench"])?;
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .with_context(|| format!("no `{name}` in `garage key create`"))
        };
        cluster.key_id = field("Key ID:")?;
        cluster.secret = field("Secret key:")?;
        cluster.cli(0, &["bucket", "create", BUCKET])?;
        cluster.cli(0, &["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "bench"])?;
        Ok(cluster)
    }

    fn cli(&self, node: usize, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.program)
            .arg("-c")
            .arg(&self.nodes[node].1)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .context("running garage")?;
        if !out.status.success() {
            bail!("garage {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `[stores.s3]` section for ferroftpd.
    pub fn store_section(&self) -> String {
        format!(
            "[stores.s3]\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\nregion = \"garage\"\naccess_key_id = \"{}\"\n\
             secret_access_key = \"{}\"\npart_size = \"8 MiB\"\n",
            self.endpoint, self.key_id, self.secret
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// ferroftpd's configuration and user database for the store run, in `dir`.
pub fn prepare_ferroftpd(
    bin: &Path,
    dir: &Path,
    cluster: &Cluster,
    port: u16,
    user: &str,
    password: &str,
) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let db = dir.join("users.db");
    let _ = fs::remove_file(&db);
    let out = Command::new(bin)
        .args(["user", "add", user, "--root", "store:s3/bench", "--password", password, "--db"])
        .arg(&db)
        .output()?;
    if !out.status.success() {
        bail!("ferroftpd user add: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let conf = dir.join("ferroftpd.toml");
    fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n\n[timeouts]\nlogin = 600\nidle = 3600\ndata = 600\n\n\
             [passive]\nport_range = [0, 0]\n\n[auth]\nchain = [\"userdb\"]\n\n[userdb]\npath = \"{}\"\n\n\
             [log]\nlevel = \"warn\"\n\n{}",
            db.display(),
            cluster.store_section()
        ),
    )?;
    Ok(conf)
}
