//! The permission commands of the `ferroftpd` binary as an administrator
//! uses them: `perm explain`, `check-config` rule warnings, a user's own
//! rules, and `reload` of a running server (new rules for sessions already
//! logged in; a broken file keeps the old rules).

mod common;

use std::io::Cursor;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::daemon::Daemon;
use common::{wait_until, CONNECT_TIMEOUT, REPLY_TIMEOUT};
use suppaftp::{FtpError, FtpStream};

const DEADLINE: Duration = Duration::from_secs(60);

/// Runs the binary in `dir`; returns exit code, stdout, stderr.
fn ferroftpd(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferroftpd"));
    cmd.args(args).current_dir(dir).env_remove("RUST_LOG");
    let out: Output = common::run(&mut cmd, DEADLINE);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = ferroftpd(dir, args);
    assert_eq!(code, 0, "{args:?}\nstdout:\n{out}\nstderr:\n{err}");
    out
}

/// A directory with `srv/pub` (a.iso, readme.txt), `home/alice/docs` and a
/// user database holding alice (password `pw`, group staff).
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for sub in ["srv/pub", "srv/incoming", "home/alice/docs"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("srv/pub/a.iso"), b"iso").unwrap();
    std::fs::write(d.join("srv/pub/readme.txt"), b"readme").unwrap();
    std::fs::write(d.join("home/alice/docs/secret.txt"), b"secret").unwrap();
    ok(
        d,
        &[
            "user",
            "add",
            "alice",
            "--db",
            "users.db",
            "--password",
            "pw",
            "--root",
            "home/alice",
            "--mount",
            "/pub=srv/pub:ro",
            "--group",
            "staff",
        ],
    );
    tmp
}

const BASE: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\npid_file = \"ferroftpd.pid\"\n\
                    [anonymous]\nroot = \"srv\"\n[userdb]\npath = \"users.db\"\n";

#[test]
fn explain_names_the_deciding_rule_and_its_line() {
    let tmp = setup();
    let d = tmp.path();
    std::fs::write(
        d.join("ftp.toml"),
        format!(
            "{BASE}\n[[acl.rule]]\nwho = [\"*\"]\ntree = \"srv/pub\"\nallow = [\"read-only\"]\n\n\
             [[acl.rule]]\nwho = [\"*\"]\npattern = \"srv/pub/*.iso\"\ndeny = [\"read\"]\n\n\
             [[acl.rule]]\nwho = [\"@staff\"]\npath = \"srv/pub/a.iso\"\nallow = [\"read\"]\n"
        ),
    )
    .unwrap();

    // alice through her mount: the file rule for her group wins.
    let out = ok(d, &["perm", "explain", "-c", "ftp.toml", "alice", "/pub/a.iso", "read"]);
    assert!(out.contains("decision:   ALLOWED"), "{out}");
    assert!(out.contains("decided by: rule ftp.toml:19:"), "{out}");
    assert!(out.contains("(path at depth"), "{out}");
    let ranked: Vec<&str> = out.lines().filter(|l| l.contains("ftp.toml:")).collect();
    assert!(ranked.iter().any(|l| l.starts_with("  * allow  ftp.toml:19")), "{out}");
    assert!(ranked.iter().any(|l| l.starts_with("    deny   ftp.toml:14")), "{out}");
    assert!(ranked.iter().any(|l| l.starts_with("    allow  ftp.toml:9")), "{out}");

    // Anonymous, by real path: the pattern wins over the tree.
    let real = d.join("srv/pub/a.iso").display().to_string();
    let out = ok(d, &["perm", "explain", "--config", "ftp.toml", "ftp", &real, "read"]);
    assert!(out.contains("DENIED") && out.contains("decided by: rule ftp.toml:14:"), "{out}");
    assert!(out.contains("/a.iso (virtual)") && out.contains("read as a real path"), "{out}");

    // The read-only mount is a hard limit; no rule: the account's default.
    let out = ok(d, &["perm", "explain", "-c", "ftp.toml", "alice", "/pub/readme.txt", "delete"]);
    assert!(out.contains("DENIED") && out.contains("read-only virtual directory"), "{out}");
    let out = ok(d, &["perm", "explain", "-c", "ftp.toml", "alice", "/docs/secret.txt", "delete"]);
    assert!(out.contains("ALLOWED") && out.contains("permissions.default = \"allow\""), "{out}");
    let out = ok(d, &["perm", "explain", "-c", "ftp.toml", "anonymous", "/incoming/x", "write-new"]);
    assert!(out.contains("DENIED") && out.contains("the `account` module: read-only account"), "{out}");

    let (code, _, err) = ferroftpd(d, &["perm", "explain", "-c", "ftp.toml", "alice", "/x", "rmdr"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown operation `rmdr`"), "{err}");
    let (code, _, err) = ferroftpd(d, &["perm", "explain", "-c", "ftp.toml", "bob", "/x", "read"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no module of auth.chain knows the user `bob`"), "{err}");
}

#[test]
fn check_config_reports_dead_and_shadowed_rules() {
    let tmp = setup();
    let d = tmp.path();
    std::fs::write(
        d.join("ftp.toml"),
        format!(
            "{BASE}\n[[acl.rule]]\nwho = [\"*\"]\ntree = \"srv/pub\"\ndeny = [\"delete\"]\n\n\
             [[acl.rule]]\nwho = [\"*\"]\ntree = \"srv/pub\"\nallow = [\"delete\"]\n\n\
             [[acl.rule]]\nwho = [\"bob\"]\ntree = \"srv\"\ndeny = [\"read\"]\n\n\
             [[acl.rule]]\nwho = [\"alice\"]\ntree = \"/nowhere/at/all\"\ndeny = [\"read\"]\n"
        ),
    )
    .unwrap();
    let out = ok(d, &["check-config", "ftp.toml"]);
    assert!(out.starts_with("ftp.toml: OK, with 3 rule warnings"), "{out}");
    assert!(out.contains("ftp.toml:14: warning: rule is shadowed: it never decides anything: same place, decided by ftp.toml:9 (delete)"), "{out}");
    assert!(
        out.contains(
            "ftp.toml:19: warning: rule can never match: who names no account that can log in: `bob`"
        ),
        "{out}"
    );
    assert!(
        out.contains("ftp.toml:24: warning: rule can never match: tree = \"/nowhere/at/all\" lies outside"),
        "{out}"
    );
    let (code, out, err) = ferroftpd(d, &["check-config", "--strict", "ftp.toml"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("3 rule warning(s)"), "{err}");

    // A rule that does not compile is an error at its line, as any other.
    std::fs::write(
        d.join("bad.toml"),
        format!("{BASE}\n[[acl.rule]]\nwho = [\"*\"]\ntree = \"srv\"\nonly = [\"uplaod-only\"]\n"),
    )
    .unwrap();
    let (code, _, err) = ferroftpd(d, &["check-config", "bad.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:12:9: acl.rule.only: unknown operation `uplaod-only`"), "{err}");
    assert!(err.contains("did you mean `upload-only`?"), "{err}");
}

#[test]
fn a_users_own_rules() {
    let tmp = setup();
    let d = tmp.path();
    let docs = d.join("home/alice/docs").display().to_string();
    let rule = format!(r#"tree = "{docs}", deny = ["delete"]"#);
    ok(
        d,
        &[
            "user",
            "mod",
            "alice",
            "--db",
            "users.db",
            "--rule",
            &rule,
            "--rule",
            &format!(r#"path = "{docs}", deny = ["rmdir"]"#),
        ],
    );
    let out = ok(d, &["user", "rules", "alice", "--db", "users.db"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.starts_with(&format!("  1  {{ {rule} }}")), "{out}");
    let list = ok(d, &["user", "list", "--db", "users.db"]);
    assert!(list.lines().next().unwrap().contains("RULES"), "{list}");

    std::fs::write(d.join("ftp.toml"), BASE).unwrap();
    let out = ok(d, &["perm", "explain", "-c", "ftp.toml", "alice", "/docs/secret.txt", "delete"]);
    assert!(out.contains("DENIED") && out.contains("`alice`'s own rule #1 (user database)"), "{out}");

    ok(d, &["user", "mod", "alice", "--db", "users.db", "--del-rule", "1"]);
    let out = ok(d, &["user", "rules", "alice", "--db", "users.db"]);
    assert!(out.trim_start().starts_with("1  { path"), "{out}");
    let (code, _, err) = ferroftpd(d, &["user", "mod", "alice", "--db", "users.db", "--del-rule", "5"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = ferroftpd(
        d,
        &["user", "mod", "alice", "--db", "users.db", "--rule", "tree = \"/x\", allow = [\"raed\"]"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown operation `raed`"), "{err}");
    let (code, _, err) = ferroftpd(
        d,
        &[
            "user",
            "mod",
            "alice",
            "--db",
            "users.db",
            "--rule",
            "who = [\"*\"], tree = \"/x\", allow = [\"read\"]",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("leave out `who`"), "{err}");
    ok(d, &["user", "mod", "alice", "--db", "users.db", "--clear-rules"]);
    assert!(ok(d, &["user", "rules", "alice", "--db", "users.db"]).contains("no rules"));
}

fn login(addr: SocketAddr) -> FtpStream {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut ftp = FtpStream::connect_with_stream(stream).expect("greeting").passive_stream_builder(
        |addr: SocketAddr| {
            let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(FtpError::ConnectionError)?;
            s.set_read_timeout(Some(Duration::from_secs(60))).map_err(FtpError::ConnectionError)?;
            Ok(s)
        },
    );
    ftp.login("alice", "pw").expect("alice logs in");
    ftp
}

fn reads(ftp: &mut FtpStream, path: &str) -> bool {
    ftp.retr_as_buffer(path).is_ok()
}

#[test]
fn reload_applies_to_logged_in_sessions_and_a_broken_file_keeps_the_old_rules() {
    let tmp = setup();
    let d = tmp.path();
    let secret = d.join("home/alice/docs/secret.txt").display().to_string();
    let deny_read = format!("\n[[acl.rule]]\nwho = [\"alice\"]\npath = \"{secret}\"\ndeny = [\"read\"]\n");
    std::fs::write(d.join("ftp.toml"), BASE).unwrap();
    let server = Daemon::start(d, "ftp.toml");
    assert!(wait_until(DEADLINE, || d.join("ferroftpd.pid").exists()), "no pid file");
    let mut ftp = login(server.addr);
    assert!(reads(&mut ftp, "/docs/secret.txt"));

    // A new rule: the session already logged in gets it at its next command.
    std::fs::write(d.join("ftp.toml"), format!("{BASE}{deny_read}")).unwrap();
    let out = ok(d, &["reload", "-c", "ftp.toml"]);
    assert!(out.contains("sent SIGHUP"), "{out}");
    assert!(
        wait_until(DEADLINE, || !reads(&mut ftp, "/docs/secret.txt")),
        "the new rule never applied:\n{}",
        server.log_text()
    );
    // The log is written by another process: wait for the lines, don't race them.
    assert!(
        wait_until(DEADLINE, || {
            let log = server.log_text();
            log.contains("configuration reloaded") && log.contains("ftp.toml:9 (path = ")
        }),
        "{}",
        server.log_text()
    );
    let denied = server.log_text();
    assert!(
        denied.contains("permission denied") && denied.contains("ftp.toml:9 (path = "),
        "the log names the rule:\n{denied}"
    );

    // A broken file: `reload -c` refuses to signal; a signal anyway keeps the old rules.
    std::fs::write(
        d.join("ftp.toml"),
        format!("{BASE}\n[[acl.rule]]\nwho = [\"*\"]\ntree = \"srv\"\nallow = [\"reed\"]\n"),
    )
    .unwrap();
    let (code, _, err) = ferroftpd(d, &["reload", "-c", "ftp.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown operation `reed`") && err.contains("not signalled"), "{err}");
    ok(d, &["reload", "--pid-file", "ferroftpd.pid"]);
    assert!(
        wait_until(DEADLINE, || server
            .log_text()
            .contains("reload failed; keeping the previous configuration")),
        "{}",
        server.log_text()
    );
    assert!(!reads(&mut ftp, "/docs/secret.txt"), "the old rules stay in force");
    let mut again = login(server.addr);
    assert!(!reads(&mut again, "/docs/secret.txt"), "new sessions too");
    let _ = again
        .put_file("/docs/new.txt", &mut Cursor::new(b"still writable".to_vec()))
        .expect("other rights unchanged");
    let _ = ftp.quit();
    let _ = again.quit();

    // A stale pid file (the server was killed) is recognised.
    drop(server);
    let (code, _, err) = ferroftpd(d, &["reload", "--pid-file", "ferroftpd.pid"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn reload_without_a_pid_file_says_how() {
    let tmp = setup();
    let d = tmp.path();
    std::fs::write(d.join("ftp.toml"), "[anonymous]\nroot = \"srv\"\n").unwrap();
    let (code, _, err) = ferroftpd(d, &["reload", "-c", "ftp.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sets no server.pid_file") && err.contains("kill -HUP"), "{err}");
}

/// Every TOML example of the README's Permissions section is a valid
/// configuration, so the documentation cannot drift from the code.
#[test]
fn readme_permission_examples_parse() {
    let readme = include_str!("../README.md");
    let section = readme.split("\n## Permissions").nth(1).expect("README has a Permissions section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let blocks: Vec<&str> = section
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(toml, _)| toml))
        .collect();
    assert!(blocks.len() >= 5, "found {} examples", blocks.len());
    for block in blocks {
        let text =
            format!("[auth]\nchain = [\"userdb\"]\n[userdb]\npath = \"/tmp/ferroftpd-readme.db\"\n{block}");
        if let Err(e) = ferroftpd::config::parse_str(&text, Path::new("README.md")) {
            panic!("README example does not parse:\n{block}\n{e}");
        }
    }
}
