//! Listeners and connection admission: one lightweight task per control
//! connection, limits on clients (total, per address) answered with a clean
//! 421 before any session state is allocated.

pub mod limits;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::AuthChain;
use crate::config::Config;
use crate::data::PassivePorts;
use crate::perm::{BasicPermissions, Permissions};
use limits::{Admission, Limits};

/// Everything sessions share, read-only except the counters.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub auth: AuthChain,
    pub perms: Arc<dyn Permissions>,
    pub passive: PassivePorts,
    pub limits: Limits,
}

/// Bound listeners, ready to serve.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
}

impl Server {
    /// Binds every configured listener (use port 0 for an ephemeral port).
    pub async fn bind(config: Config, auth: AuthChain) -> anyhow::Result<Server> {
        let mut listeners = Vec::new();
        for addr in &config.server.listen {
            let listener =
                TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
            listeners.push(listener);
        }
        let shared = Arc::new(Shared {
            passive: PassivePorts::new(config.passive.port_range),
            limits: Limits::default(),
            perms: Arc::new(BasicPermissions),
            auth,
            config,
        });
        Ok(Server { shared, listeners })
    }

    /// The addresses actually bound (with the ports the system chose).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Serves until `shutdown` resolves; then stops accepting. Sessions
    /// already running go on until they end.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        for listener in self.listeners {
            tokio::spawn(accept_loop(listener, self.shared.clone(), stop_rx.clone()));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
    }
}

/// Binds and serves until Ctrl-C / SIGTERM.
pub async fn run(config: Config, auth: AuthChain) -> anyhow::Result<()> {
    if auth.module_names().contains(&"anonymous") {
        sweep_stale_uploads(config.anonymous.root.clone()).await;
    }
    let server = Server::bind(config, auth).await?;
    for addr in server.local_addrs() {
        tracing::info!(%addr, "listening");
    }
    server.run_until(shutdown_signal()).await;
    tracing::info!("shutting down");
    Ok(())
}

/// Removes replacement uploads left behind by a crash (the old files they
/// would have replaced are intact).
async fn sweep_stale_uploads(root: std::path::PathBuf) {
    let swept = tokio::task::spawn_blocking(move || crate::vfs::local::remove_stale_uploads(&root)).await;
    match swept {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(removed = n, "removed stale temporary uploads"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot sweep stale temporary uploads"),
        Err(e) => tracing::warn!(error = %e, "stale upload sweep failed"),
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

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        match shared.limits.admit(peer.ip(), &shared.config.limits) {
            Admission::Admitted(guard) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    crate::session::run(stream, peer, shared, guard).await;
                });
            }
            Admission::Refused(reason) => {
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
}
