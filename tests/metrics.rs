//! The Prometheus endpoint of the real binary (`[metrics]` on an ephemeral
//! loopback port): scraped during a download slowed to about 2 s by a
//! bandwidth limit, every named series is there, one download is active and
//! its bytes grow between two scrapes; afterwards the transfer, the logins
//! (by result and module), an error reply by code, refused connections
//! (access rules, ban), the ban itself and the duration histogram are
//! counted. Other paths are 404.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::admin::ftp_login;
use common::daemon::Daemon;
use common::http;
use common::*;
use ferroftpd::auth::password::hash_password;
use ferroftpd::auth::userdb::{SqliteUserStore, UserRecord, UserStore};

const MIB: usize = 1 << 20;
/// Denied by `[access]`.
const DENIED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Banned after two failed logins.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Every series the README names.
const SERIES: &[&str] = &[
    "ferroftpd_build_info",
    "ferroftpd_sessions",
    "ferroftpd_sessions_total",
    "ferroftpd_logins_total",
    "ferroftpd_transfer_bytes_total",
    "ferroftpd_transfers_total",
    "ferroftpd_active_transfers",
    "ferroftpd_bans_total",
    "ferroftpd_banned_addresses",
    "ferroftpd_connections_refused_total",
    "ferroftpd_replies_total",
    "ferroftpd_transfer_duration_seconds_bucket",
    "ferroftpd_transfer_duration_seconds_sum",
    "ferroftpd_transfer_duration_seconds_count",
];

fn site() -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["anon/pub", "home"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("home/big.bin"), random_bytes(2 * MIB, 9)).unwrap();
    let store = SqliteUserStore::open(d.join("users.db")).unwrap();
    store.put(&UserRecord::new(USER, hash_password(PASSWORD).unwrap(), d.join("home"))).unwrap();
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\
         [passive]\nport_range = [0, 0]\n\
         [auth]\nchain = [\"anonymous\", \"userdb\"]\n\
         [anonymous]\nroot = \"{anon}\"\n\
         [userdb]\npath = \"{db}\"\n\
         [limits]\nfailed_login_delay_ms = 50\n\
         [ban]\nmax_failures = 2\n\
         [access]\ndeny = [\"127.0.0.2\"]\n\
         [bandwidth]\ndownload = \"1 MiB/s\"\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n",
        anon = d.join("anon").display(),
        db = d.join("users.db").display(),
    );
    std::fs::write(d.join("ferroftpd.toml"), config).unwrap();
    let daemon = Daemon::start(d, d.join("ferroftpd.toml").to_str().unwrap());
    (dir, daemon)
}

fn metrics_addr(daemon: &Daemon) -> SocketAddr {
    let url = daemon.log_value("metrics endpoint listening url=");
    url.trim_start_matches("http://").trim_end_matches("/metrics").parse().expect("metrics address")
}

fn scrape(addr: SocketAddr) -> String {
    let r = http::request(addr, "GET", "/metrics", None, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")), "{r:?}");
    r.body
}

/// The value of the sample `name` with exactly `labels` (`a="x",b="y"`,
/// in alphabetical order as the encoder writes them; empty: none).
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() { format!("{name} ") } else { format!("{name}{{{labels}}} ") };
    text.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse().ok())
}

fn has_series(text: &str, name: &str) -> bool {
    text.lines().any(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
}

/// Scrapes until `cond` holds (bounded); returns the last scrape.
fn scrape_until(addr: SocketAddr, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(addr);
        if cond(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn scraped_during_a_transfer_every_series_is_there_and_counts_add_up() {
    let (_dir, daemon) = site();
    let addr = metrics_addr(&daemon);
    assert!(addr.ip().is_loopback(), "{addr}");

    let idle = scrape(addr);
    for name in SERIES {
        assert!(has_series(&idle, name), "no {name} at start:\n{idle}");
    }
    assert_eq!(http::request(addr, "GET", "/", None, &[]).status, 404);
    assert_eq!(http::request(addr, "GET", "/metrics/x", None, &[]).status, 404);

    // A 2 MiB download at 1 MiB/s, scraped while it runs.
    let ftp_addr = daemon.addr;
    let download = std::thread::spawn(move || {
        let mut ftp = ftp_login(ftp_addr, USER, PASSWORD).expect("login");
        let data = ftp.retr_as_buffer("big.bin").expect("RETR").into_inner();
        let _ = ftp.quit();
        data.len()
    });
    let dl = r#"direction="download""#;
    let first = scrape_until(addr, "an active download", |t| {
        sample(t, "ferroftpd_active_transfers", dl) == Some(1.0)
    });
    for name in SERIES {
        assert!(has_series(&first, name), "no {name} during the transfer:\n{first}");
    }
    assert!(sample(&first, "ferroftpd_sessions", "").unwrap() >= 1.0, "{first}");
    let before = sample(&first, "ferroftpd_transfer_bytes_total", dl).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let second = scrape(addr);
    let during = sample(&second, "ferroftpd_transfer_bytes_total", dl).unwrap();
    assert_eq!(sample(&second, "ferroftpd_active_transfers", dl), Some(1.0), "{second}");
    assert!(during > before, "bytes did not grow during the transfer: {before} then {during}");
    assert!(during < (2 * MIB) as f64, "the download was not slowed: {during} bytes already");
    assert_eq!(download.join().unwrap(), 2 * MIB);

    // A wrong password, an error reply, an anonymous login.
    let mut ftp = Ftp::connect(daemon.addr);
    ftp.expect(&format!("USER {USER}"), 331);
    ftp.expect("PASS wrong", 530);
    ftp.login(USER, PASSWORD);
    ftp.expect("RETR missing.bin", 550);
    ftp.expect("QUIT", 221);
    let mut anon = Ftp::connect(daemon.addr);
    anon.login("anonymous", "guest@example.org");
    anon.expect("QUIT", 221);

    // Refused at connect by the address rules.
    let denied = Ftp::connect_from(DENIED, daemon.addr);
    assert_eq!(denied.greeting.code, 421, "{}", denied.greeting);
    // Two failed logins of an unknown user ban the address; it is refused next.
    let mut attacker = Ftp::connect_from(ATTACKER, daemon.addr);
    attacker.expect("USER nobody", 331);
    attacker.expect("PASS x", 530);
    attacker.expect("USER nobody", 331);
    attacker.expect("PASS y", 421);
    let banned = Ftp::connect_from(ATTACKER, daemon.addr);
    assert_eq!(banned.greeting.code, 421, "{}", banned.greeting);

    let done =
        scrape_until(addr, "every session closed", |t| sample(t, "ferroftpd_sessions", "") == Some(0.0));
    let expect = |name: &str, labels: &str, value: f64| {
        assert_eq!(sample(&done, name, labels), Some(value), "{name}{{{labels}}} in\n{done}");
    };
    expect("ferroftpd_active_transfers", dl, 0.0);
    expect("ferroftpd_transfers_total", r#"direction="download",result="complete""#, 1.0);
    expect("ferroftpd_transfers_total", r#"direction="download",result="failed""#, 0.0);
    expect("ferroftpd_transfer_bytes_total", dl, (2 * MIB) as f64);
    expect("ferroftpd_transfer_duration_seconds_count", dl, 1.0);
    let secs = sample(&done, "ferroftpd_transfer_duration_seconds_sum", dl).unwrap();
    assert!((0.5..30.0).contains(&secs), "a 2 MiB download at 1 MiB/s took {secs} s");
    expect("ferroftpd_transfer_duration_seconds_bucket", r#"direction="download",le="0.1""#, 0.0);
    expect("ferroftpd_transfer_duration_seconds_bucket", r#"direction="download",le="+Inf""#, 1.0);
    expect("ferroftpd_logins_total", r#"module="userdb",result="success""#, 2.0);
    expect("ferroftpd_logins_total", r#"module="userdb",result="failure""#, 1.0);
    expect("ferroftpd_logins_total", r#"module="anonymous",result="success""#, 1.0);
    expect("ferroftpd_logins_total", r#"module="none",result="failure""#, 2.0);
    expect("ferroftpd_replies_total", r#"code="550""#, 1.0);
    expect("ferroftpd_replies_total", r#"code="530""#, 2.0);
    expect("ferroftpd_replies_total", r#"code="421""#, 1.0);
    expect("ferroftpd_connections_refused_total", r#"reason="access""#, 1.0);
    expect("ferroftpd_connections_refused_total", r#"reason="ban""#, 1.0);
    expect("ferroftpd_connections_refused_total", r#"reason="limits""#, 0.0);
    expect("ferroftpd_bans_total", "", 1.0);
    expect("ferroftpd_banned_addresses", "", 1.0);
    // Admitted: the download, the two raw sessions and the attacker's.
    expect("ferroftpd_sessions_total", "", 4.0);
}
