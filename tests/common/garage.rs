//! A real Garage cluster for the object-store tests: three nodes on
//! loopback (replication factor 3, each with its own ports, metadata and
//! data directories), one bucket and one key. Nodes are killed on drop and
//! their directories removed.
//!
//! Garage is found through `FERROFTPD_GARAGE`, then
//! `$HOME/.local/garage/bin/garage`, then `PATH`. Without it the tests fail
//! in CI (`CI` set; .ci/run installs it) and are skipped with a message
//! elsewhere.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_until};

pub const BUCKET: &str = "ferro";
pub const REGION: &str = "garage";

/// The garage program, or `None` (with a message) to skip outside CI.
pub fn program() -> Option<PathBuf> {
    let from_env = std::env::var_os("FERROFTPD_GARAGE").map(PathBuf::from);
    let from_home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/garage/bin/garage"));
    let from_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("garage"))
        .find(|p| p.is_file());
    let found = from_env.into_iter().chain(from_home).chain(from_path).find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "garage is not installed (FERROFTPD_GARAGE, ~/.local/garage/bin/garage or PATH; .ci/run \
             installs it): required in CI"
        );
        eprintln!(
            "SKIPPED: garage is not installed (cargo install garage --locked --no-default-features \
             --features sqlite,bundled-libs --root ~/.local/garage)"
        );
    }
    found
}

struct Node {
    child: Option<Child>,
    config: PathBuf,
    s3: SocketAddr,
    rpc: SocketAddr,
}

/// A running three-node cluster with a bucket and a key allowed on it.
pub struct Garage {
    program: PathBuf,
    nodes: Vec<Node>,
    pub key_id: String,
    pub secret: String,
    _dir: tempfile::TempDir,
}

impl Garage {
    /// Starts the cluster and waits until the bucket takes writes.
    pub fn start(program: &Path) -> Garage {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let base = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(base.join("meta")).expect("meta dir");
            std::fs::create_dir_all(base.join("data")).expect("data dir");
            let s3 = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let rpc = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let config = base.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                     replication_factor = 3\nrpc_bind_addr = \"{rpc}\"\nrpc_public_addr = \"{rpc}\"\n\
                     rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"{s3}\"\n",
                    meta = base.join("meta").display(),
                    data = base.join("data").display(),
                ),
            )
            .expect("write garage config");
            let log = std::fs::File::create(base.join("garage.log")).expect("garage log");
            let child = Command::new(program)
                .args(["-c", config.to_str().expect("utf-8 path"), "server"])
                .env("RUST_LOG", "garage=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start garage server");
            nodes.push(Node { child: Some(child), config, s3, rpc });
        }
        let mut garage = Garage {
            program: program.to_path_buf(),
            nodes,
            key_id: String::new(),
            secret: String::new(),
            _dir: dir,
        };
        // Each node answers its CLI once its RPC is up.
        let mut ids = Vec::new();
        for i in 0..3 {
            let mut id = None;
            let up = wait_until(Duration::from_secs(60), || {
                id = garage.try_cli(i, &["node", "id", "-q"]).ok();
                id.is_some()
            });
            assert!(up, "garage node {i} did not start:\n{}", garage.logs());
            let id = id.unwrap_or_default();
            let id = id.lines().next().unwrap_or("").trim().to_string();
            ids.push(id);
        }
        for id in &ids[1..] {
            let ok =
                wait_until(Duration::from_secs(30), || garage.try_cli(0, &["node", "connect", id]).is_ok());
            assert!(ok, "garage node connect {id} failed:\n{}", garage.logs());
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap_or(id);
            garage.cli(0, &["layout", "assign", "-z", &format!("z{i}"), "-c", "1G", short]);
        }
        garage.cli(0, &["layout", "apply", "--version", "1"]);
        let key = garage.cli(0, &["key", "create", "ferro"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no `{name}` in `garage key create`:\n{key}"))
        };
        garage.key_id = field("Key ID:");
        garage.secret = field("Secret key:");
        garage.cli(0, &["bucket", "create", BUCKET]);
        garage.cli(0, &["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "ferro"]);
        garage
    }

    /// `http://127.0.0.1:PORT` of node `i`'s S3 API.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}", self.nodes[i].s3)
    }

    /// The address of node `i`'s S3 API.
    pub fn s3_addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].s3
    }

    /// A `[stores.NAME]` section for ferroftpd, talking to node `i`.
    pub fn store_section(&self, name: &str, node: usize, part_size: &str) -> String {
        self.store_section_at(name, &self.endpoint(node), part_size)
    }

    /// A `[stores.NAME]` section for ferroftpd, talking to `endpoint`.
    pub fn store_section_at(&self, name: &str, endpoint: &str, part_size: &str) -> String {
        format!(
            "[stores.{name}]\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\nregion = \"{REGION}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\npart_size = \"{part_size}\"\n",
            endpoint, self.key_id, self.secret
        )
    }

    /// An opendal operator on the bucket through node `i`, for the tests'
    /// own S3 requests.
    pub fn operator(&self, node: usize) -> opendal::Operator {
        let config = ferroftpd::config::StoreConfig {
            endpoint: self.endpoint(node),
            bucket: BUCKET.into(),
            region: REGION.into(),
            access_key_id: Some(self.key_id.clone()),
            secret_access_key: Some(self.secret.clone()),
            ..Default::default()
        };
        ferroftpd::vfs::object::open_operator("test", &config).expect("operator")
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn rpc_addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].rpc
    }

    fn try_cli(&self, node: usize, args: &[&str]) -> Result<String, String> {
        let config = self.nodes[node].config.to_str().expect("utf-8 path");
        let mut child = Command::new(&self.program)
            .args(["-c", config])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        // Bounded: a CLI call that hangs is killed.
        let done = wait_until(Duration::from_secs(30), || matches!(child.try_wait(), Ok(Some(_))));
        if !done {
            let _ = child.kill();
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Runs `garage -c node.toml ARGS` and returns its output; panics on failure.
    pub fn cli(&self, node: usize, args: &[&str]) -> String {
        self.try_cli(node, args).unwrap_or_else(|e| panic!("garage {args:?} failed: {e}\n{}", self.logs()))
    }

    /// The nodes' logs, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let log = n.config.with_file_name("garage.log");
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!("--- node {i}:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}
