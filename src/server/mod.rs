//! Listeners and connection admission: one lightweight task per control
//! connection, limits on clients (total, per address) answered with a clean
//! 421 before any session state is allocated. Listeners are plain FTP
//! (`server.listen`, with AUTH TLS when configured) or implicit TLS
//! (`tls.implicit_listen`, handshake before the greeting).

pub mod access;
pub mod ban;
pub mod cluster;
pub mod drain;
pub mod inetd;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod proxy_protocol;
pub mod registry;
pub mod systemd;
pub mod xferlog;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::AuthChain;
use crate::config::Config;
use crate::data::PassivePorts;
use crate::perm::Permissions;
use crate::tls::TlsSetup;
use limits::{Admission, Limits};

/// What a reload replaces: configuration, authentication chain, permission
/// rules and the TLS certificate. Sessions fetch it at every command, so a
/// reload applies to them at their next command (a session already in TLS
/// keeps the certificate it negotiated; new connections get the new one).
#[derive(Debug)]
pub struct Live {
    pub config: Config,
    pub auth: AuthChain,
    pub perms: Arc<dyn Permissions>,
    /// Present when `tls.certificate` is configured.
    pub tls: Option<TlsSetup>,
}

impl Live {
    fn new(config: Config, auth: AuthChain) -> anyhow::Result<Live> {
        let perms: Arc<dyn Permissions> = crate::perm::build_permissions(&config)?;
        let tls = match (&config.tls.certificate, &config.tls.key) {
            (Some(cert), Some(key)) => Some(TlsSetup::load(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!("tls.certificate and tls.key must be given together"),
        };
        Ok(Live { config, auth, perms, tls })
    }
}

/// Which listener accepted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerInfo {
    /// The address as configured (port 0 stays 0), to match policy entries.
    pub configured: SocketAddr,
    /// TLS from the first byte (implicit FTPS).
    pub implicit_tls: bool,
}

/// Everything sessions share.
#[derive(Debug)]
pub struct Shared {
    live: RwLock<Arc<Live>>,
    /// The configuration file to re-read on reload (`None`: built in code).
    config_path: Option<PathBuf>,
    /// Fixed at start: a new range needs a restart.
    pub passive: PassivePorts,
    pub limits: Limits,
    /// Failed logins per address and the addresses banned for them.
    pub bans: ban::BanList,
    /// Live sessions (the web admin's dashboard).
    pub registry: Arc<registry::Registry>,
    /// Bandwidth buckets: the server's and each active user's.
    pub throttle: crate::data::throttle::Registry,
    /// Storage used by each logged-in user with a quota.
    pub quotas: crate::vfs::quota::Registry,
    /// The transfer log (files fixed at start, reopened on SIGHUP).
    pub xferlog: xferlog::TransferLog,
    /// Graceful shutdown: whether it has begun, and the running transfers.
    pub drain: Arc<drain::Drain>,
    /// Prometheus series, when `[metrics]` is on (fixed at start).
    pub metrics: Option<Arc<metrics::Metrics>>,
    /// Bans and session counts shared with other nodes, when `[cluster]`
    /// is on (fixed at start).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl Shared {
    /// The configuration and rules in force now.
    pub fn live(&self) -> Arc<Live> {
        match self.live.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the configuration file and rebuilds the authentication chain
    /// and the permission rules. On any error the old ones stay in force.
    /// The configuration file the server was started with, if any.
    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.config_path.as_deref()
    }

    pub fn reload(&self) -> anyhow::Result<()> {
        let config = match &self.config_path {
            Some(path) => crate::config::load_file(path)?,
            None => self.live().config.clone(),
        };
        self.apply(config)
    }

    /// Puts a configuration in force as a reload does (for a configuration
    /// built in code, as the tests and embedders have).
    pub fn apply(&self, config: Config) -> anyhow::Result<()> {
        let old = self.live();
        if config.server.listen != old.config.server.listen
            || config.tls.implicit_listen != old.config.tls.implicit_listen
        {
            tracing::warn!("listen addresses change only at restart");
        }
        if config.metrics != old.config.metrics {
            tracing::warn!("[metrics] changes only at restart");
        }
        if config.cluster != old.config.cluster {
            tracing::warn!("[cluster] changes only at restart");
        }
        let auth = crate::auth::build_chain(&config)?;
        let live = Arc::new(Live::new(config, auth)?);
        crate::auth::password::set_memory_budget(live.config.limits.hashing_memory.bytes());
        crate::vfs::local::set_durable_commits(live.config.transfer.fsync);
        crate::vfs::object::configure(&live.config.stores)?;
        self.passive.set_range(live.config.passive.port_range);
        match self.live.write() {
            Ok(mut guard) => *guard = live,
            Err(poisoned) => *poisoned.into_inner() = live,
        }
        Ok(())
    }
}

/// Bound listeners, ready to serve.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<(TcpListener, ListenerInfo)>,
    /// The metrics endpoint's listener (`[metrics]`).
    metrics_listener: Option<TcpListener>,
}

impl Server {
    /// Binds every configured listener (use port 0 for an ephemeral port).
    /// `config_path` is the file a reload re-reads.
    pub async fn bind(config: Config, auth: AuthChain) -> anyhow::Result<Server> {
        Server::bind_with_source(config, auth, None).await
    }

    pub async fn bind_with_source(
        config: Config,
        auth: AuthChain,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<Server> {
        Server::bind_or_adopt(config, auth, config_path, None).await
    }

    /// As [`Server::bind_with_source`], but serves the listening sockets
    /// handed over by socket activation instead of binding
    /// `server.listen` and `tls.implicit_listen`, when there are any.
    pub async fn bind_or_adopt(
        config: Config,
        auth: AuthChain,
        config_path: Option<PathBuf>,
        activated: Option<Vec<systemd::Activated>>,
    ) -> anyhow::Result<Server> {
        let live = Live::new(config, auth)?;
        let config = &live.config;
        crate::auth::password::set_memory_budget(config.limits.hashing_memory.bytes());
        crate::vfs::local::set_durable_commits(config.transfer.fsync);
        crate::vfs::object::configure(&config.stores)?;
        let mut listeners = Vec::new();
        if let Some(activated) = activated {
            for socket in activated {
                let configured = socket.listener.local_addr()?;
                let listener = TcpListener::from_std(socket.listener)?;
                listeners.push((listener, ListenerInfo { configured, implicit_tls: socket.implicit_tls }));
            }
        } else {
            let plain = config.server.listen.iter().map(|a| (a, false));
            let implicit = config.tls.implicit_listen.iter().map(|a| (a, true));
            for (addr, implicit_tls) in plain.chain(implicit) {
                let listener =
                    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
                listeners.push((listener, ListenerInfo { configured: *addr, implicit_tls }));
            }
        }
        let (metrics, metrics_listener) = match &config.metrics {
            Some(cfg) => {
                let series = metrics::Metrics::new(&live.auth.module_names())?;
                (Some(Arc::new(series)), Some(metrics::bind(cfg).await?))
            }
            None => (None, None),
        };
        let xferlog = xferlog::TransferLog::start(&config.xferlog)?;
        let cluster = match &config.cluster {
            Some(c) => Some(cluster::Cluster::start(c, &config.userdb).await?),
            None => None,
        };
        let shared = Arc::new(Shared {
            cluster,
            xferlog,
            passive: PassivePorts::new(config.passive.port_range),
            limits: Limits::default(),
            bans: ban::BanList::default(),
            registry: Arc::default(),
            throttle: Default::default(),
            quotas: Default::default(),
            drain: Arc::default(),
            metrics,
            config_path,
            live: RwLock::new(Arc::new(live)),
        });
        Ok(Server { shared, listeners, metrics_listener })
    }

    /// The state sessions share, e.g. to trigger a reload.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The plain (explicit) listeners' addresses actually bound (with the
    /// ports the system chose).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.bound(false)
    }

    /// The implicit-TLS listeners' addresses actually bound.
    pub fn implicit_tls_addrs(&self) -> Vec<SocketAddr> {
        self.bound(true)
    }

    /// The metrics endpoint's address actually bound (`[metrics]`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    fn bound(&self, implicit_tls: bool) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, info)| info.implicit_tls == implicit_tls)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` resolves; then stops accepting. Sessions
    /// already running go on until they end.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        for (listener, info) in self.listeners {
            tokio::spawn(accept_loop(listener, info, self.shared.clone(), stop_rx.clone()));
        }
        if let Some(listener) = self.metrics_listener {
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.changed().await;
            };
            tokio::spawn(metrics::serve(listener, self.shared.clone(), stopped));
        }
        let syncing = self
            .shared
            .cluster
            .clone()
            .map(|c| tokio::spawn(cluster::keep_in_sync(c, self.shared.clone(), stop_rx.clone())));
        shutdown.await;
        let _ = stop_tx.send(true);
        if let Some(task) = syncing {
            // Leaves the shared counts (bounded by the query timeout).
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

/// Binds (or adopts the sockets of socket activation) and serves until
/// SIGTERM or Ctrl-C, then drains; SIGHUP reloads `config_path`.
/// `services` starts what runs beside the FTP listeners on the same state
/// (the web admin), once bound.
pub async fn run(
    config: Config,
    auth: AuthChain,
    config_path: Option<PathBuf>,
    services: impl FnOnce(&Arc<Shared>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    sweep_stale_uploads(upload_roots(&config, &auth.module_names())).await;
    let activated = systemd::activated_listeners()?;
    if activated.is_some() {
        tracing::info!("using the listening sockets of socket activation; server.listen is ignored");
    }
    let server = Server::bind_or_adopt(config, auth, config_path, activated).await?;
    services(&server.shared)?;
    for addr in server.local_addrs() {
        tracing::info!(%addr, "listening");
    }
    for addr in server.implicit_tls_addrs() {
        tracing::info!(%addr, "listening (implicit TLS)");
    }
    if let Some(addr) = server.metrics_addr() {
        tracing::info!(url = %metrics::url(addr), "metrics endpoint listening");
    }
    let shared = server.shared();
    spawn_reload_on_hangup(shared.clone());
    systemd::notify(systemd::State::Ready, "serving");
    server.run_until(shutdown_signal()).await;
    drain(&shared).await;
    shared.xferlog.sync(std::time::Duration::from_secs(5));
    Ok(())
}

/// After the listeners closed: waits for running transfers (bounded by
/// `timeouts.drain`; a second signal cuts it short). Sessions learn of it at
/// their next command; the idle rest close when the process exits.
async fn drain(shared: &Shared) {
    let limit = std::time::Duration::from_secs(shared.live().config.timeouts.drain);
    let running = shared.drain.running_transfers();
    tracing::info!(transfers = running, limit_secs = limit.as_secs(), "shutting down: draining transfers");
    systemd::notify(systemd::State::Stopping, "draining transfers");
    tokio::select! {
        left = shared.drain.drain(limit) => {
            if left > 0 {
                tracing::warn!(transfers = left, "drain time over: cutting off running transfers");
            } else {
                tracing::info!("all transfers finished");
            }
        }
        _ = shutdown_signal() => tracing::warn!("second signal: exiting without waiting for transfers"),
    }
}

#[cfg(unix)]
fn spawn_reload_on_hangup(shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload unavailable");
            return;
        }
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            shared.xferlog.reopen();
            systemd::notify(systemd::State::Reloading, "reloading the configuration");
            let reloading = shared.clone();
            // Reading files and opening the user database block: off the workers.
            let result = tokio::task::spawn_blocking(move || reloading.reload()).await;
            systemd::notify(systemd::State::Ready, "serving");
            match result {
                Ok(Ok(())) => tracing::info!("configuration reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reload failed; keeping the previous configuration")
                }
                Err(e) => tracing::error!(error = %e, "reload failed; keeping the previous configuration"),
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_reload_on_hangup(_shared: Arc<Shared>) {}

/// Every real directory uploads can land in: the anonymous root and each
/// virtual user's root and writable mounts (read from the user database).
fn upload_roots(config: &Config, modules: &[&str]) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if modules.contains(&"anonymous") {
        roots.push(config.anonymous.root.clone());
    }
    if modules.contains(&"userdb") {
        use crate::auth::userdb::Location;
        match Location::from_config(&config.userdb).open_existing().and_then(|db| db.list()) {
            Ok(users) => {
                for user in users {
                    roots.push(user.root.clone());
                    roots.extend(user.mounts.iter().filter(|m| !m.read_only).map(|m| m.real_path.clone()));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list users to sweep their stale uploads"),
        }
    }
    // Object stores leave no temporary files (unfinished multipart uploads
    // are aborted, or expire by the bucket's lifecycle rules).
    roots.retain(|r| !crate::vfs::object::is_store_path(r));
    roots.sort();
    roots.dedup();
    roots
}

/// Removes replacement uploads left behind by a crash (the old files they
/// would have replaced are intact).
async fn sweep_stale_uploads(roots: Vec<PathBuf>) {
    let swept = tokio::task::spawn_blocking(move || {
        roots
            .iter()
            .map(|root| (root.clone(), crate::vfs::local::remove_stale_uploads(root)))
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(results) = swept else {
        tracing::warn!("stale upload sweep failed");
        return;
    };
    for (root, result) in results {
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(root = %root.display(), removed = n, "removed stale temporary uploads"),
            Err(e) => {
                tracing::warn!(root = %root.display(), error = %e, "cannot sweep stale temporary uploads")
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn accept_loop(
    listener: TcpListener,
    info: ListenerInfo,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let live = shared.live();
        match proxy_protocol::expect(&live.config.proxy_protocol, info.configured, peer.ip()) {
            proxy_protocol::Expect::Plain => admit(stream, peer, info, &shared),
            proxy_protocol::Expect::Header => {
                // Read beside the loop: a slow balancer must not hold up
                // other clients' accepts.
                let within = std::time::Duration::from_secs(live.config.proxy_protocol.header_timeout.max(1));
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut stream = stream;
                    if let Some(client) = read_proxy_header(&mut stream, peer, within).await {
                        admit(stream, client, info, &shared);
                    }
                });
            }
            proxy_protocol::Expect::Refuse => {
                // Nothing written: whoever reached a node directly instead of
                // through the balancer gets no FTP reply to work with.
                tracing::warn!(%peer, "connection refused: not from a trusted PROXY protocol source");
                drop(stream);
            }
        }
    }
}

/// Reads the PROXY header a trusted balancer sends first; the client's
/// address, or `None` when the connection is to be closed (a health check,
/// or no valid header in time).
async fn read_proxy_header(
    stream: &mut tokio::net::TcpStream,
    balancer: SocketAddr,
    within: std::time::Duration,
) -> Option<SocketAddr> {
    match proxy_protocol::read_header(stream, within).await {
        Ok(parsed) => match parsed.origin {
            proxy_protocol::Origin::Client(client) => {
                tracing::debug!(%client, %balancer, "PROXY header");
                Some(client)
            }
            // The specification: use the connection's own endpoints.
            proxy_protocol::Origin::Unknown => Some(balancer),
            proxy_protocol::Origin::Local => {
                // A health check: no session, no log line per check.
                tracing::debug!(%balancer, "PROXY LOCAL (health check): closing");
                None
            }
        },
        Err(proxy_protocol::ReadError::Closed) => {
            // A plain TCP health check connects and closes.
            tracing::debug!(%balancer, "closed before a PROXY header");
            None
        }
        Err(e) => {
            tracing::warn!(%balancer, error = %e, "connection closed: no valid PROXY header from a trusted source");
            None
        }
    }
}

/// Admission at connect, for the client's address (the balancer's client
/// behind a PROXY header): address rules, bans and connection limits are
/// checked before any session state exists; then the session runs.
fn admit(mut stream: tokio::net::TcpStream, peer: SocketAddr, info: ListenerInfo, shared: &Arc<Shared>) {
    let live = shared.live();
    let refused = |reason| {
        if let Some(m) = &shared.metrics {
            m.refused(reason);
        }
    };
    if !access::admitted(peer.ip(), &live.config.access) {
        refused(metrics::Refusal::Access);
        tracing::warn!(%peer, "connection refused: address denied by [access] rules");
        access::refuse(stream, info.implicit_tls);
        return;
    }
    let banned = shared.bans.banned(peer.ip(), &live.config.ban);
    let banned =
        banned.or_else(|| shared.cluster.as_ref().and_then(|c| c.banned(peer.ip(), &live.config.ban)));
    if let Some(left) = banned {
        refused(metrics::Refusal::Ban);
        ban::refuse(stream, peer, left, info.implicit_tls);
        return;
    }
    match shared.limits.admit(peer.ip(), &live.config.limits) {
        Admission::Admitted(guard) => {
            if let Some(m) = &shared.metrics {
                m.accepted();
            }
            // The session's own future, not one wrapping it: a wrapper would
            // hold the arguments again beside it.
            tokio::spawn(crate::session::run(stream, peer, info, shared.clone(), guard));
        }
        Admission::Refused(reason) if info.implicit_tls => {
            refused(metrics::Refusal::Limits);
            // No TLS yet, so no reply the client could read: just close.
            tracing::warn!(%peer, reason, "connection refused (implicit TLS)");
            drop(stream);
        }
        Admission::Refused(reason) => {
            refused(metrics::Refusal::Limits);
            tracing::warn!(%peer, reason, "connection refused");
            tokio::spawn(async move {
                let reply = format!("421 {reason}, try again later.\r\n");
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
        }
    }
}
