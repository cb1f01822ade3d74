//! `[cluster]`: state several nodes share through one PostgreSQL database,
//! so that they act as one server behind a load balancer.
//!
//! - **Bans.** Every failed login is recorded under its address key (the
//!   same as [`ban::key`]: an IPv4 address or an IPv6 /64) and counted over
//!   `ban.window` across all nodes; reaching `ban.max_failures` bans the
//!   key in the `bans` table. At accept a node consults only memory: its
//!   own [`ban::BanList`] and a copy of the shared ban list, refreshed every
//!   `cluster.refresh` seconds. A ban made on one node is thus refused by
//!   the others within that time (and at once on the node that made it).
//! - **Sessions per user.** Each node publishes its per-user session counts
//!   with a heartbeat every `cluster.refresh` seconds, and at each login of
//!   a user with a session limit. The limit is checked against the node's
//!   own count plus the counts of the other live nodes; a node whose
//!   heartbeat is older than three refresh periods (killed, cut off) no
//!   longer counts. Two logins at the same instant on two nodes may both
//!   pass, and a logout elsewhere is seen at the next heartbeat.
//!
//! While the database answers, it alone counts failures and bans; when it
//! cannot be reached, each node falls back to its own view: its own
//! failure counts and bans ([`ban::BanList`]), the last copy of the shared
//! ban list (until those bans expire) and its own session counts. Errors are
//! logged; logins are never refused only because this state is unavailable.
//! Time is the database's (`now()`), so nodes' clocks need not agree.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Client;

use super::ban;
use crate::config::{BanConfig, ClusterConfig, UserDbConfig};
use crate::pg::{self, Target};

/// Longest wait for one round trip before it counts as a failure.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Refresh periods after which a silent node's sessions no longer count.
const STALE_PERIODS: u32 = 3;

/// How often (in refresh periods) old rows are deleted.
const PRUNE_EVERY: u64 = 60;

#[derive(Debug)]
pub struct Cluster {
    target: Target,
    node: String,
    refresh: Duration,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    /// The shared ban list as last read: key → end of the ban.
    bans: RwLock<HashMap<IpAddr, Instant>>,
    /// Whether the last operation reached the database (logs the changes).
    reachable: AtomicBool,
}

/// A failed cluster operation, already described for the log.
#[derive(Debug)]
pub struct ClusterError(pub String);

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<tokio_postgres::Error> for ClusterError {
    fn from(e: tokio_postgres::Error) -> Self {
        ClusterError(pg::describe(&e))
    }
}

/// The default node name: host name, process id and a random suffix.
fn default_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string());
    format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

impl Cluster {
    /// Connects, brings the schema up to date and announces the node. An
    /// unreachable database at start is an error (as for `userdb.url`).
    pub async fn start(config: &ClusterConfig, userdb: &UserDbConfig) -> anyhow::Result<Arc<Cluster>> {
        let url = config
            .database(userdb)
            .ok_or_else(|| anyhow::anyhow!("[cluster] needs url (or userdb.url) to name its database"))?;
        let target = Target::parse(url).map_err(|e| anyhow::anyhow!("cluster.url: {e}"))?;
        let cluster = Cluster {
            node: config.node.clone().unwrap_or_else(default_node),
            refresh: Duration::from_secs(config.refresh.max(1)),
            client: tokio::sync::Mutex::new(None),
            bans: RwLock::default(),
            reachable: AtomicBool::new(true),
            target,
        };
        let mut client = tokio::time::timeout(pg::CONNECT_TIMEOUT * 2, cluster.target.connect())
            .await
            .map_err(|_| anyhow::anyhow!("cluster database {}: connection timed out", cluster.target))?
            .map_err(|e| anyhow::anyhow!("cluster database {}: {}", cluster.target, pg::describe(&e)))?;
        pg::migrate(&mut client).await.map_err(|e| match e {
            pg::MigrateError::Db(e) => anyhow::anyhow!("cluster database {}: {}", cluster.target, pg::describe(&e)),
            pg::MigrateError::TooNew { found, known } => anyhow::anyhow!(
                "cluster database {} has schema version {found}; this ferroftpd knows up to {known}: upgrade ferroftpd",
                cluster.target
            ),
        })?;
        *cluster.client.lock().await = Some(Arc::new(client));
        let cluster = Arc::new(cluster);
        cluster
            .heartbeat(&[])
            .await
            .map_err(|e| anyhow::anyhow!("cluster database {}: {e}", cluster.target))?;
        cluster
            .refresh_bans()
            .await
            .map_err(|e| anyhow::anyhow!("cluster database {}: {e}", cluster.target))?;
        tracing::info!(node = %cluster.node, database = %cluster.target, "cluster state shared through PostgreSQL");
        Ok(cluster)
    }

    /// This node's name in the shared tables.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How often the shared ban list is read and the heartbeat sent.
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// The connection, reconnecting if it was lost.
    async fn client(&self) -> Result<Arc<Client>, ClusterError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        *slot = None;
        let client = tokio::time::timeout(pg::CONNECT_TIMEOUT, self.target.connect())
            .await
            .map_err(|_| ClusterError("connection timed out".into()))??;
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs one operation with a time limit, noting whether the database
    /// answered (a change is logged once, not at every failure).
    async fn run<T>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        let result = match tokio::time::timeout(QUERY_TIMEOUT, op).await {
            Ok(r) => r,
            Err(_) => Err(ClusterError("no answer in time".into())),
        };
        match &result {
            Ok(_) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!(database = %self.target, "cluster database reachable again");
                }
            }
            Err(e) => {
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::error!(database = %self.target, error = %e, what, "cluster database unavailable: using this node's own bans and session counts");
                } else {
                    tracing::debug!(database = %self.target, error = %e, what, "cluster database still unavailable");
                }
                // A timed-out or broken connection is replaced next time.
                if let Ok(mut slot) = self.client.try_lock() {
                    *slot = None;
                }
            }
        }
        result
    }

    /// As [`Cluster::run`] for the steps of a login, which must not wait
    /// for a database known to be down: while the last operation failed,
    /// they give up at once, and the periodic refresh finds out when it is
    /// back.
    async fn run_quick<T>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        if !self.reachable.load(Ordering::Relaxed) {
            return Err(ClusterError("database unavailable".into()));
        }
        self.run(what, op).await
    }

    /// If `ip` is banned in the shared list (as last read), the time left.
    /// Memory only: called at accept.
    pub fn banned(&self, ip: IpAddr, cfg: &BanConfig) -> Option<Duration> {
        if cfg.max_failures == 0 || ban::allowed(ip, cfg) {
            return None;
        }
        let until = *self.bans.read().unwrap_or_else(|p| p.into_inner()).get(&ban::key(ip))?;
        until.checked_duration_since(Instant::now()).filter(|left| !left.is_zero())
    }

    /// Records a failed login from `ip` and counts the failures of its key
    /// within `ban.window` on all nodes; bans the key when they reach
    /// `ban.max_failures`. The ban's length, if this failure banned.
    pub async fn failure(&self, ip: IpAddr, cfg: &BanConfig) -> Result<Option<Duration>, ClusterError> {
        if cfg.max_failures == 0 || ban::allowed(ip, cfg) {
            return Ok(None);
        }
        let key = ban::key(ip).to_string();
        let window = cfg.window as f64;
        let duration = cfg.duration as f64;
        let max = i64::from(cfg.max_failures);
        let banned = self
            .run_quick("failed login", async {
                let c = self.client().await?;
                // Sessions opened before a ban go on failing: not counted
                // again (as in the node's own table).
                let counted = c
                    .execute(
                        "INSERT INTO ban_failures (key, at) SELECT $1, now()
                         WHERE NOT EXISTS (SELECT 1 FROM bans WHERE key = $1 AND until > now())",
                        &[&key],
                    )
                    .await?;
                if counted == 0 {
                    return Ok(false);
                }
                let n: i64 = c
                    .query_one(
                        "SELECT count(*) FROM ban_failures WHERE key = $1 AND at > now() - make_interval(secs => $2)",
                        &[&key, &window],
                    )
                    .await?
                    .try_get(0)?;
                if n < max {
                    return Ok(false);
                }
                c.execute(
                    "INSERT INTO bans (key, until) VALUES ($1, now() + make_interval(secs => $2))
                     ON CONFLICT (key) DO UPDATE SET until = GREATEST(bans.until, excluded.until)",
                    &[&key, &duration],
                )
                .await?;
                c.execute("DELETE FROM ban_failures WHERE key = $1", &[&key]).await?;
                Ok(true)
            })
            .await?;
        if !banned {
            return Ok(None);
        }
        let length = Duration::from_secs(cfg.duration);
        self.bans.write().unwrap_or_else(|p| p.into_inner()).insert(ban::key(ip), Instant::now() + length);
        tracing::warn!(
            address = %ban::key(ip),
            failures = cfg.max_failures,
            window_secs = cfg.window,
            ban_secs = cfg.duration,
            "address banned on all nodes after repeated failed logins"
        );
        Ok(Some(length))
    }

    /// Lifts a shared ban (and forgets the key's failures); true if there was one.
    pub async fn unban(&self, ip: IpAddr) -> Result<bool, ClusterError> {
        let key = ban::key(ip);
        self.bans.write().unwrap_or_else(|p| p.into_inner()).remove(&key);
        let key = key.to_string();
        self.run("unban", async {
            let c = self.client().await?;
            c.execute("DELETE FROM ban_failures WHERE key = $1", &[&key]).await?;
            let n = c.execute("DELETE FROM bans WHERE key = $1 AND until > now()", &[&key]).await?;
            Ok(n > 0)
        })
        .await
    }

    /// Addresses banned in the shared list (as last read), with the time left.
    pub fn banned_list(&self) -> Vec<(IpAddr, Duration)> {
        let now = Instant::now();
        let bans = self.bans.read().unwrap_or_else(|p| p.into_inner());
        bans.iter()
            .filter_map(|(k, until)| until.checked_duration_since(now).map(|left| (*k, left)))
            .collect()
    }

    /// Sessions `user` has on the other live nodes.
    pub async fn sessions_elsewhere(&self, user: &str) -> Result<u32, ClusterError> {
        let stale = (self.refresh * STALE_PERIODS).as_secs_f64().max(3.0);
        let n: i64 = self
            .run_quick("session count", async {
                let c = self.client().await?;
                let row = c
                    .query_one(
                        r#"SELECT COALESCE(sum(s.sessions), 0)::BIGINT FROM cluster_sessions s
                           JOIN cluster_nodes n ON n.node = s.node
                           WHERE s."user" = $1 AND s.node <> $2 AND n.seen > now() - make_interval(secs => $3)"#,
                        &[&user, &self.node, &stale],
                    )
                    .await?;
                Ok(row.try_get(0)?)
            })
            .await?;
        Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
    }

    /// Publishes this node's session count for one user at once (a login),
    /// without waiting for the next heartbeat.
    pub async fn publish_sessions(&self, user: &str, sessions: u32) -> Result<(), ClusterError> {
        let sessions = i64::from(sessions);
        self.run_quick("session count", async {
            let c = self.client().await?;
            c.execute(
                r#"INSERT INTO cluster_sessions (node, "user", sessions) VALUES ($1, $2, $3)
                   ON CONFLICT (node, "user") DO UPDATE SET sessions = excluded.sessions"#,
                &[&self.node, &user, &sessions],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Marks the node alive and replaces its published session counts.
    pub async fn heartbeat(&self, counts: &[(String, u32)]) -> Result<(), ClusterError> {
        let users: Vec<&str> = counts.iter().map(|(u, _)| u.as_str()).collect();
        let sessions: Vec<i64> = counts.iter().map(|(_, n)| i64::from(*n)).collect();
        self.run("heartbeat", async {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO cluster_nodes (node, seen) VALUES ($1, now())
                 ON CONFLICT (node) DO UPDATE SET seen = excluded.seen",
                &[&self.node],
            )
            .await?;
            c.execute(
                r#"INSERT INTO cluster_sessions (node, "user", sessions)
                   SELECT $1, u, n FROM unnest($2::TEXT[], $3::BIGINT[]) AS t(u, n)
                   ON CONFLICT (node, "user") DO UPDATE SET sessions = excluded.sessions"#,
                &[&self.node, &users, &sessions],
            )
            .await?;
            c.execute(
                r#"DELETE FROM cluster_sessions WHERE node = $1 AND NOT ("user" = ANY($2::TEXT[]))"#,
                &[&self.node, &users],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Re-reads the shared ban list.
    pub async fn refresh_bans(&self) -> Result<(), ClusterError> {
        let rows = self
            .run("ban list", async {
                let c = self.client().await?;
                Ok(c.query(
                    "SELECT key, EXTRACT(EPOCH FROM until - now())::FLOAT8 FROM bans WHERE until > now()",
                    &[],
                )
                .await?)
            })
            .await?;
        let now = Instant::now();
        let mut fresh = HashMap::with_capacity(rows.len());
        for row in rows {
            let (Ok(key), Ok(left)) = (row.try_get::<_, String>(0), row.try_get::<_, f64>(1)) else {
                continue;
            };
            // Rows are written by ferroftpd; a foreign one is skipped, not trusted.
            let (Ok(ip), Ok(left)) = (key.parse::<IpAddr>(), Duration::try_from_secs_f64(left)) else {
                continue;
            };
            fresh.insert(ban::key(ip), now + left);
        }
        *self.bans.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Deletes expired bans, old failures and nodes gone for an hour.
    async fn prune(&self) -> Result<(), ClusterError> {
        self.run("cleanup", async {
            let c = self.client().await?;
            c.batch_execute(
                "DELETE FROM bans WHERE until < now() - interval '1 minute';
                 DELETE FROM ban_failures WHERE at < now() - interval '1 day';
                 DELETE FROM cluster_nodes WHERE seen < now() - interval '1 hour';",
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Takes the node out of the shared counts (at shutdown).
    pub async fn leave(&self) {
        let _ = self
            .run("leave", async {
                let c = self.client().await?;
                c.execute("DELETE FROM cluster_nodes WHERE node = $1", &[&self.node]).await?;
                Ok(())
            })
            .await;
    }
}

/// Every `cluster.refresh` seconds: heartbeat with the node's session
/// counts, then a fresh copy of the shared ban list; now and then, cleanup.
pub async fn keep_in_sync(
    cluster: Arc<Cluster>,
    shared: Arc<super::Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(cluster.refresh());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        // Errors are logged by `run`; the next round tries again.
        let _ = cluster.heartbeat(&shared.limits.per_user()).await;
        let _ = cluster.refresh_bans().await;
        rounds += 1;
        if rounds % PRUNE_EVERY == 0 {
            let _ = cluster.prune().await;
        }
    }
    cluster.leave().await;
}
