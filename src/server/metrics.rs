//! Prometheus metrics (`[metrics]`): process-wide counters and gauges, and
//! the `GET /metrics` endpoint that exposes them in the Prometheus text
//! format (version 0.0.4).
//!
//! Memory is what this server is measured by, so metrics cost an idle
//! session nothing: every series is one process-wide atomic created at
//! start (label sets are fixed and small, their children fetched once),
//! sessions reach them through the [`Shared`] state they already hold, and
//! the gauges that describe sessions (`ferroftpd_sessions`,
//! `ferroftpd_banned_addresses`) are read from the admission counters and
//! the ban list at scrape time instead of being kept up to date. A running
//! transfer holds one [`TransferMeter`] (inside its already boxed state) and
//! adds its bytes per chunk with one relaxed atomic add, so a scrape during
//! a transfer shows its progress. Without `[metrics]` nothing is created
//! and every hook is a test of `None`.
//!
//! The text format 0.0.4 rather than OpenMetrics: OpenMetrics names a
//! counter's family without its `_total`, so the counter
//! `ferroftpd_sessions_total` and the gauge `ferroftpd_sessions` would be
//! two families of one name, which parsers reject; Prometheus scrapes both
//! formats.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::config::MetricsConfig;

use super::Shared;

/// The label `module` of a failed login whose user no module knows.
pub const NO_MODULE: &str = "none";

/// Upper bounds of the transfer-duration buckets, in seconds: from a small
/// file on a LAN to a large one over a slow link.
/// Error replies whose series exist from the start (others, such as the
/// TLS policy's, appear when first sent): the codes of the commands every
/// client uses and of the storage errors.
const COMMON_ERRORS: &[&str] = &[
    "421", "425", "426", "450", "451", "452", "500", "501", "502", "503", "504", "530", "550", "552", "553",
];

const DURATION_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// Which way a file transfer moves data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Download,
    Upload,
}

impl Direction {
    const ALL: [Direction; 2] = [Direction::Download, Direction::Upload];

    /// The direction of a file-transfer command; `None` for listings.
    pub fn of_command(command: &str) -> Option<Direction> {
        match command {
            "RETR" => Some(Direction::Download),
            "STOR" | "APPE" | "STOU" => Some(Direction::Upload),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "upload",
        }
    }
}

/// How a file transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All the data went through (an upload was committed).
    Complete,
    /// ABOR, a disconnect, or a client that vanished before the commit.
    Aborted,
    /// The data connection or the storage failed.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Complete, Outcome::Aborted, Outcome::Failed];

    fn label(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        }
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_clients` or `limits.max_clients_per_ip`.
    Limits,
    /// The `[access]` rules.
    Access,
    /// A banned address.
    Ban,
}

impl Refusal {
    const ALL: [Refusal; 3] = [Refusal::Limits, Refusal::Access, Refusal::Ban];

    fn label(self) -> &'static str {
        match self {
            Refusal::Limits => "limits",
            Refusal::Access => "access",
            Refusal::Ban => "ban",
        }
    }
}

/// Every series of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions: IntGauge,
    accepted: IntCounter,
    logins: IntCounterVec,
    bytes: [IntCounter; 2],
    transfers: [[IntCounter; 3]; 2],
    active: [IntGauge; 2],
    durations: [Histogram; 2],
    bans: IntCounter,
    banned: IntGauge,
    refused: [IntCounter; 3],
    replies: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every series; `modules` are the authentication
    /// modules whose login series exist from the start (others appear at
    /// their first login).
    pub fn new(modules: &[&str]) -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| registry.register(c);

        let build = IntGaugeVec::new(
            Opts::new("ferroftpd_build_info", "The server's version; always 1."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        reg(Box::new(build))?;

        let sessions = IntGauge::new("ferroftpd_sessions", "Control connections open now.")?;
        reg(Box::new(sessions.clone()))?;
        let accepted = IntCounter::new(
            "ferroftpd_sessions_total",
            "Control connections accepted since start (refused ones excluded).",
        )?;
        reg(Box::new(accepted.clone()))?;

        let logins = IntCounterVec::new(
            Opts::new("ferroftpd_logins_total", "Login attempts by result and authentication module."),
            &["result", "module"],
        )?;
        for module in modules.iter().copied().chain([NO_MODULE]) {
            for result in ["success", "failure"] {
                if module == NO_MODULE && result == "success" {
                    continue;
                }
                logins.with_label_values(&[result, module]);
            }
        }
        reg(Box::new(logins.clone()))?;

        let bytes_vec = IntCounterVec::new(
            Opts::new("ferroftpd_transfer_bytes_total", "File data moved by RETR, STOR, APPE and STOU."),
            &["direction"],
        )?;
        let bytes = Direction::ALL.map(|d| bytes_vec.with_label_values(&[d.label()]));
        reg(Box::new(bytes_vec))?;

        let transfers_vec = IntCounterVec::new(
            Opts::new("ferroftpd_transfers_total", "File transfers ended, by direction and result."),
            &["direction", "result"],
        )?;
        let transfers = Direction::ALL
            .map(|d| Outcome::ALL.map(|o| transfers_vec.with_label_values(&[d.label(), o.label()])));
        reg(Box::new(transfers_vec))?;

        let active_vec = IntGaugeVec::new(
            Opts::new("ferroftpd_active_transfers", "File transfers running now."),
            &["direction"],
        )?;
        let active = Direction::ALL.map(|d| active_vec.with_label_values(&[d.label()]));
        reg(Box::new(active_vec))?;

        let durations_vec = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "ferroftpd_transfer_duration_seconds",
                "Time from the 150 reply to the end of a file transfer.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["direction"],
        )?;
        let durations = Direction::ALL.map(|d| durations_vec.with_label_values(&[d.label()]));
        reg(Box::new(durations_vec))?;

        let bans =
            IntCounter::new("ferroftpd_bans_total", "Addresses banned for failed logins since start.")?;
        reg(Box::new(bans.clone()))?;
        let banned = IntGauge::new("ferroftpd_banned_addresses", "Addresses banned now.")?;
        reg(Box::new(banned.clone()))?;

        let refused_vec = IntCounterVec::new(
            Opts::new("ferroftpd_connections_refused_total", "Connections refused at accept, by reason."),
            &["reason"],
        )?;
        let refused = Refusal::ALL.map(|r| refused_vec.with_label_values(&[r.label()]));
        reg(Box::new(refused_vec))?;

        let replies = IntCounterVec::new(
            Opts::new("ferroftpd_replies_total", "Error replies (4xx and 5xx) sent, by code."),
            &["code"],
        )?;
        for code in COMMON_ERRORS {
            replies.with_label_values(&[code]);
        }
        reg(Box::new(replies.clone()))?;

        Ok(Metrics {
            registry,
            sessions,
            accepted,
            logins,
            bytes,
            transfers,
            active,
            durations,
            bans,
            banned,
            refused,
            replies,
        })
    }

    /// A control connection was admitted.
    pub fn accepted(&self) {
        self.accepted.inc();
    }

    pub fn refused(&self, reason: Refusal) {
        self.refused[reason as usize].inc();
    }

    /// A login attempt decided by `module` ([`NO_MODULE`]: the user is unknown).
    pub fn login(&self, success: bool, module: &str) {
        let result = if success { "success" } else { "failure" };
        // A lookup under a read lock: logins are rare next to their hashing.
        self.logins.with_label_values(&[result, module]).inc();
    }

    pub fn banned(&self) {
        self.bans.inc();
    }

    /// Counts a reply if it is an error (4xx, 5xx).
    pub fn reply(&self, code: u16) {
        if (400..600).contains(&code) {
            let mut buf = [0u8; 3];
            let text = code_text(code, &mut buf);
            self.replies.with_label_values(&[text]).inc();
        }
    }

    /// The counter a transfer in `direction` adds its bytes to as they move.
    pub fn bytes_counter(&self, direction: Direction) -> IntCounter {
        self.bytes[direction as usize].clone()
    }

    /// The exposition: every series, with the gauges read now.
    pub fn render(&self, sessions: u64, banned: u64) -> Result<String, prometheus::Error> {
        self.sessions.set(i64::try_from(sessions).unwrap_or(i64::MAX));
        self.banned.set(i64::try_from(banned).unwrap_or(i64::MAX));
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// A three-digit reply code as text, without allocating.
fn code_text(code: u16, buf: &mut [u8; 3]) -> &str {
    let code = code.min(999);
    buf[0] = b'0' + (code / 100) as u8;
    buf[1] = b'0' + (code / 10 % 10) as u8;
    buf[2] = b'0' + (code % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("000")
}

/// A running file transfer: counted active while it lives; when dropped,
/// ends it with the outcome set by [`TransferMeter::finish`], else as
/// aborted (ABOR and disconnects drop the transfer without finishing it).
#[derive(Debug)]
pub struct TransferMeter {
    metrics: Arc<Metrics>,
    direction: Direction,
    started: Instant,
    outcome: Outcome,
}

impl TransferMeter {
    pub fn start(metrics: &Arc<Metrics>, direction: Direction) -> TransferMeter {
        metrics.active[direction as usize].inc();
        TransferMeter {
            metrics: metrics.clone(),
            direction,
            started: Instant::now(),
            outcome: Outcome::Aborted,
        }
    }

    pub fn finish(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for TransferMeter {
    fn drop(&mut self) {
        let d = self.direction as usize;
        self.metrics.active[d].dec();
        self.metrics.transfers[d][self.outcome as usize].inc();
        self.metrics.durations[d].observe(self.started.elapsed().as_secs_f64());
    }
}

/// Binds the endpoint's address (a failure stops the start).
pub async fn bind(config: &MetricsConfig) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("metrics: cannot listen on {}", config.listen))
}

/// Serves `GET /metrics` until `stop` resolves; every other path is 404.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not found; metrics are at /metrics.\n") })
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
        tracing::error!(error = %e, "metrics endpoint stopped");
    }
}

async fn scrape(State(shared): State<Arc<Shared>>) -> Response {
    let Some(metrics) = &shared.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let sessions = u64::from(shared.limits.connections());
    // With [cluster], the shared bans too (as this node last read them).
    let shared_bans = shared.cluster.as_ref().map_or(0, |c| c.banned_list().len());
    let banned = (shared.bans.banned_count() + shared_bans) as u64;
    match metrics.render(sessions, banned) {
        Ok(body) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The endpoint's address as a URL, for the log.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exposed_from_the_start() {
        let m = Metrics::new(&["anonymous", "userdb"]).unwrap();
        let text = m.render(3, 1).unwrap();
        for line in [
            "ferroftpd_sessions 3",
            "ferroftpd_sessions_total 0",
            "ferroftpd_banned_addresses 1",
            "ferroftpd_bans_total 0",
            r#"ferroftpd_logins_total{module="userdb",result="success"} 0"#,
            r#"ferroftpd_logins_total{module="none",result="failure"} 0"#,
            r#"ferroftpd_transfer_bytes_total{direction="upload"} 0"#,
            r#"ferroftpd_transfers_total{direction="download",result="aborted"} 0"#,
            r#"ferroftpd_active_transfers{direction="download"} 0"#,
            r#"ferroftpd_connections_refused_total{reason="ban"} 0"#,
            r#"ferroftpd_transfer_duration_seconds_count{direction="upload"} 0"#,
            "# TYPE ferroftpd_sessions gauge",
            "# TYPE ferroftpd_sessions_total counter",
            "# TYPE ferroftpd_transfer_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(
            text.contains(&format!(r#"ferroftpd_build_info{{version="{}"}} 1"#, env!("CARGO_PKG_VERSION")))
        );
    }

    #[test]
    fn a_dropped_meter_counts_an_aborted_transfer_and_errors_count_by_code() {
        let m = Arc::new(Metrics::new(&[]).unwrap());
        let meter = TransferMeter::start(&m, Direction::Upload);
        m.bytes_counter(Direction::Upload).inc_by(10);
        assert_eq!(m.active[1].get(), 1);
        drop(meter);
        TransferMeter::start(&m, Direction::Download).finish(Outcome::Complete);
        assert_eq!((m.active[0].get(), m.active[1].get()), (0, 0));
        assert_eq!(m.transfers[1][Outcome::Aborted as usize].get(), 1);
        assert_eq!(m.transfers[0][Outcome::Complete as usize].get(), 1);
        assert_eq!(m.durations[0].get_sample_count(), 1);
        m.reply(550);
        m.reply(550);
        m.reply(226);
        m.reply(421);
        let text = m.render(0, 0).unwrap();
        assert!(text.contains("ferroftpd_replies_total{code=\"550\"} 2"), "{text}");
        assert!(text.contains("ferroftpd_replies_total{code=\"421\"} 1"), "{text}");
        assert!(!text.contains("code=\"226\""), "{text}");
        assert!(text.contains("ferroftpd_replies_total{code=\"530\"} 0"), "{text}");
        assert!(text.contains("ferroftpd_transfer_bytes_total{direction=\"upload\"} 10"), "{text}");
    }
}
