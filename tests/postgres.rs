//! Shared accounts, bans and session counts through PostgreSQL: a real
//! PostgreSQL cluster (Debian's `postgresql` package, started in a
//! temporary directory on a free port; see common/postgres.rs) and two
//! ferroftpd processes using it, as two nodes behind a load balancer would.
//!
//! - a user added with `ferroftpd user add --db postgres://…` logs in on
//!   both nodes, and is gone from both once deleted;
//! - failed logins on node A ban the address, and node B then refuses it at
//!   accept with 421; B's web admin lists the ban and lifts it on both;
//! - a user's session limit counts the sessions of both nodes;
//! - with the database down, logins are refused with 530 and running
//!   sessions go on; once it is back, logins work again;
//! - the store itself: round trip of every field, concurrent first starts.
//!
//! Without PostgreSQL the tests fail in CI (`CI` set) and are skipped with
//! a message elsewhere.

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::Daemon;
use common::postgres::Postgres;
use common::run_cli as cli;
use common::*;
use ferroftpd::auth::password::hash_password;
use ferroftpd::auth::userdb::{UserRecord, UserStore};
use ferroftpd::auth::userdb_pg::PgUserStore;
use ferroftpd::vfs::MountSpec;
use suppaftp::FtpStream;

const BANNED: (u16, &str) = (421, "Too many failed logins from your address, try again later.");

#[track_caller]
fn cli_ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = cli(dir, args, stdin);
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two nodes sharing the database `url` for users and cluster state.
fn two_nodes(dir: &Path, url: &str, extra: &str) -> (Daemon, Daemon) {
    let start = |name: &str| {
        let config = dir.join(format!("node-{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\nbanner = \"node-{name} ready\"\n\
                 [auth]\nchain = [\"userdb\"]\n[userdb]\nurl = \"{url}\"\n\
                 [cluster]\nnode = \"{name}\"\nrefresh = 1\n\
                 [limits]\nfailed_login_delay_ms = 0\nmax_login_failures = 10\n{extra}"
            ),
        )
        .unwrap();
        Daemon::start(dir, config.to_str().unwrap())
    };
    (start("a"), start("b"))
}

fn suppaftp_login(node: &Daemon, user: &str, password: &str) -> Result<FtpStream, suppaftp::FtpError> {
    let mut ftp = FtpStream::connect(node.addr)?;
    ftp.get_ref().set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    ftp.login(user, password)?;
    Ok(ftp)
}

fn error_code(e: suppaftp::FtpError) -> u32 {
    match e {
        suppaftp::FtpError::UnexpectedResponse(r) => r.status.code(),
        other => panic!("not a reply: {other}"),
    }
}

#[test]
fn a_user_added_on_one_node_logs_in_on_the_other() {
    let Some(pg) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("carol")).unwrap();
    let (a, b) = two_nodes(dir, &pg.url(), "");
    assert!(a.logged("cluster state shared through PostgreSQL"), "{}", a.log_text());

    // Added through the CLI, straight into the shared database.
    let out = cli_ok(
        dir,
        &["user", "add", "carol", "--password-stdin", "--root", "carol", "--db", &pg.url()],
        "carol-pass\n",
    );
    assert!(out.contains("added user `carol`"), "{out}");
    // The CLI can also find the database through a node's configuration.
    let listed = cli_ok(dir, &["user", "list", "--config", "node-a.toml"], "");
    assert!(listed.contains("carol"), "{listed}");

    let mut on_b = suppaftp_login(&b, "carol", "carol-pass").expect("carol logs in on node B");
    on_b.put_file("hello.txt", &mut &b"from B"[..]).expect("upload on B");
    let mut on_a = suppaftp_login(&a, "carol", "carol-pass").expect("carol logs in on node A");
    assert_eq!(on_a.retr_as_buffer("hello.txt").unwrap().into_inner(), b"from B");
    assert_eq!(error_code(suppaftp_login(&b, "carol", "wrong").err().unwrap()), 530);

    // A password change and a deletion apply at the next login, on every node.
    cli_ok(dir, &["user", "passwd", "carol", "--password-stdin", "--db", &pg.url()], "new-pass\n");
    suppaftp_login(&a, "carol", "new-pass").expect("new password on A");
    cli_ok(dir, &["user", "del", "carol", "--db", &pg.url()], "");
    assert_eq!(error_code(suppaftp_login(&b, "carol", "new-pass").err().unwrap()), 530);
    on_a.quit().unwrap();
    on_b.quit().unwrap();
}

#[test]
fn a_ban_made_on_one_node_is_refused_on_the_other() {
    let Some(pg) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("root")).unwrap();
    let store = PgUserStore::open(&pg.url()).unwrap();
    store.put(&UserRecord::new(USER, hash_password(PASSWORD).unwrap(), dir.join("root"))).unwrap();
    ferroftpd::admin::accounts::AdminAccounts::open(dir.join("admins.db"))
        .unwrap()
        .set("root", "admin-pw-1")
        .unwrap();
    let (a, b) = two_nodes(
        dir,
        &pg.url(),
        "[ban]\nmax_failures = 3\nwindow = 60\nduration = 60\n\
         [admin]\nlisten = \"127.0.0.1:0\"\nusers = \"admins.db\"\n",
    );

    // B works before the ban; a session open there goes on after it.
    let mut open_on_b = Ftp::connect(b.addr);
    open_on_b.login(USER, PASSWORD);
    // Failures on two nodes add up: one on B, two on A.
    let mut ftp = Ftp::connect(b.addr);
    ftp.expect(&format!("USER {USER}"), 331);
    ftp.expect("PASS wrong", 530);
    let mut ftp = Ftp::connect(a.addr);
    ftp.expect(&format!("USER {USER}"), 331);
    ftp.expect("PASS wrong", 530);
    ftp.expect(&format!("USER {USER}"), 331);
    let r = ftp.cmd("PASS wrong");
    assert_eq!((r.code, r.message()), BANNED, "the third failure over both nodes bans");
    assert!(
        wait_until(Duration::from_secs(5), || a.logged("address banned on all nodes")),
        "{}",
        a.log_text()
    );

    // B refuses the address at accept within its refresh period.
    let mut last = None;
    let refused = wait_until(Duration::from_secs(10), || {
        let ftp = Ftp::connect_any(b.addr);
        let banned = (ftp.greeting.code, ftp.greeting.message()) == BANNED;
        last = Some(ftp.greeting.to_string());
        banned
    });
    assert!(refused, "node B still admits the banned address; last greeting: {last:?}\n{}", b.log_text());
    let mut refused_by_b = Ftp::connect_any(b.addr);
    assert_eq!((refused_by_b.greeting.code, refused_by_b.greeting.message()), BANNED);
    refused_by_b.closed_within(Duration::from_secs(5)).expect("closed at once");
    let again = Ftp::connect_any(a.addr);
    assert_eq!((again.greeting.code, again.greeting.message()), BANNED);
    open_on_b.expect("NOOP", 200);

    // B's web admin lists the ban made on A; lifting it there lifts it on
    // both nodes.
    let admin = b.admin_addr();
    let cookie = http::login(admin, "root", "admin-pw-1");
    let page = http::request(admin, "GET", "/", Some(&cookie), &[]);
    assert_eq!(
        page.field("ip").as_deref(),
        Some("127.0.0.1"),
        "an Unban button for the shared ban:\n{}",
        page.body
    );
    let csrf = page.field("csrf").expect("a CSRF field");
    let r =
        http::request(admin, "POST", "/bans/unban", Some(&cookie), &[("csrf", &csrf), ("ip", "127.0.0.1")]);
    assert!(r.status == 303 || r.status == 200, "{}", r.body);
    for node in [&b, &a] {
        assert!(
            wait_until(Duration::from_secs(10), || Ftp::connect_any(node.addr).greeting.code == 220),
            "still banned after the unban:\n{}",
            node.log_text()
        );
    }
    Ftp::connect(a.addr).login(USER, PASSWORD);
}

#[test]
fn session_limits_count_both_nodes_and_an_outage_fails_logins_closed() {
    let Some(pg) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("root")).unwrap();
    let mut one = UserRecord::new("solo", hash_password("pw").unwrap(), dir.join("root"));
    one.max_sessions = Some(1);
    PgUserStore::open(&pg.url()).unwrap().put(&one).unwrap();
    let (a, b) = two_nodes(dir, &pg.url(), "");

    let mut on_a = suppaftp_login(&a, "solo", "pw").expect("first session, on A");
    assert_eq!(
        error_code(suppaftp_login(&b, "solo", "pw").err().expect("a second session on B is refused")),
        421
    );
    assert!(b.logged("too many sessions for this user on all nodes"), "{}", b.log_text());
    // Once the session on A ends, B admits the user (after A's next heartbeat).
    on_a.quit().unwrap();
    let mut on_b = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            on_b = suppaftp_login(&b, "solo", "pw").ok();
            on_b.is_some()
        }),
        "B still counts the session that ended on A"
    );
    let mut on_b = on_b.unwrap();

    // The database goes down: the open session goes on, new logins fail
    // closed (530, as a wrong password) with the cause in the log.
    pg.stop();
    on_b.noop().expect("a running session outlives the database");
    on_b.pwd().expect("PWD without the database");
    let code = error_code(suppaftp_login(&a, "solo", "pw").err().expect("no login without the database"));
    assert_eq!(code, 530);
    assert!(wait_until(Duration::from_secs(5), || a.logged("userdb lookup failed")), "{}", a.log_text());
    let _ = on_b.quit();
}

#[test]
fn store_round_trip_and_concurrent_first_start() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    // Two nodes starting at once on an empty database: one migrates, the
    // other waits for it and finds the schema in place.
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgUserStore::open(&url).map(|_| ()))
        })
        .collect();
    for o in openers {
        o.join().unwrap().expect("concurrent open");
    }
    let store = PgUserStore::open(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut r = UserRecord::new("dave", "$argon2id$fake", dir.path());
    r.initial_dir = "/home".into();
    r.mounts = vec![
        MountSpec { virtual_path: "/pub".into(), real_path: dir.path().join("pub"), read_only: true },
        MountSpec { virtual_path: "/a/b".into(), real_path: dir.path().join("b"), read_only: false },
    ];
    r.groups = vec!["staff".into(), "admins".into()];
    r.max_sessions = Some(3);
    r.read_only = true;
    r.shaping.download_rate = Some(ferroftpd::config::Rate(2 << 20));
    r.shaping.quota_bytes = Some(1 << 40);
    r.shaping.quota_files = Some(100);
    r.shaping.allow_from = vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
    r.rules = vec![format!(r#"{{ tree = "{}", deny = ["delete"] }}"#, dir.path().join("pub").display())];
    store.put(&r).unwrap();
    let bob = UserRecord::new("bob", "$h", dir.path());
    store.put(&bob).unwrap();
    assert_eq!(store.get("dave").unwrap().as_ref(), Some(&r));
    assert_eq!(store.list().unwrap(), vec![bob.clone(), r.clone()]);
    // put replaces, children included.
    let mut r2 = r.clone();
    r2.mounts.truncate(1);
    r2.groups = vec!["x".into()];
    r2.rules.clear();
    r2.shaping.allow_from.clear();
    r2.enabled = false;
    store.put(&r2).unwrap();
    assert_eq!(store.get("dave").unwrap(), Some(r2));
    assert!(store.delete("dave").unwrap());
    assert!(!store.delete("dave").unwrap());
    assert_eq!(store.list().unwrap(), vec![bob]);
    // Invalid records never reach the database.
    assert!(store.put(&UserRecord::new("a b", "$h", dir.path())).is_err());
    // A name with quotes or SQL is just a name.
    assert_eq!(store.get("x' OR '1'='1").unwrap(), None);

    // A database that cannot be reached is an error naming it, without
    // its password.
    let down = format!("postgres://ferroftpd:pw-secret@127.0.0.1:{}/postgres", free_port());
    let e = PgUserStore::open(&down).unwrap_err().to_string();
    assert!(e.contains("127.0.0.1") && !e.contains("pw-secret"), "{e}");
}
