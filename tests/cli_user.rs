//! The `ferroftpd` binary's user and check-config commands, run as an
//! administrator would: exit codes, messages, and the database they leave.

mod common;

use std::process::Output;

use common::run_cli as run;

use ferroftpd::auth::password::verify_blocking;
use ferroftpd::auth::userdb::{SqliteUserStore, UserStore};

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts the exit code; returns stdout and stderr.
#[track_caller]
fn expect(o: Output, code: i32) -> (String, String) {
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(code), "stdout:\n{out}\nstderr:\n{err}");
    (out, err)
}

#[test]
fn user_lifecycle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("home/bob")).unwrap();
    std::fs::create_dir_all(dir.join("shared")).unwrap();
    let db = dir.join("ferroftpd-users.db");

    // Commands other than add refuse to create a database.
    let (_, err) = expect(run(dir, &["user", "list"], ""), 1);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!db.exists());

    let (out, _) = expect(
        run(
            dir,
            &[
                "user",
                "add",
                "bob",
                "--password-stdin",
                "--root",
                "home/bob",
                "--initial-dir",
                "/shared/",
                "--mount",
                "/shared=shared:ro",
                "--group",
                "staff",
                "--max-sessions",
                "2",
            ],
            "first-pass\n",
        ),
        0,
    );
    assert!(out.contains("added user `bob`"), "{out}");
    let store = SqliteUserStore::open_existing(&db).unwrap();
    let bob = store.get("bob").unwrap().unwrap();
    assert!(verify_blocking("first-pass", &bob.password_hash));
    assert_eq!(bob.root, dir.join("home/bob"), "root stored absolute");
    assert_eq!(bob.initial_dir, "/shared");
    assert_eq!(bob.mounts.len(), 1);
    assert_eq!((bob.mounts[0].virtual_path.as_str(), bob.mounts[0].read_only), ("/shared", true));
    assert_eq!(bob.mounts[0].real_path, dir.join("shared"));
    assert_eq!(bob.groups, ["staff"]);
    assert_eq!(bob.max_sessions, Some(2));
    assert!(bob.enabled && !bob.read_only);

    // Duplicates and bad input.
    let (_, err) = expect(run(dir, &["user", "add", "bob", "--password", "x", "--root", "home"], ""), 1);
    assert!(err.contains("already exists"), "{err}");
    let (_, err) = expect(run(dir, &["user", "add", "eve", "--password", "x", "--root", "nowhere"], ""), 2);
    assert!(err.contains("does not exist"), "{err}");
    let (_, err) = expect(run(dir, &["user", "add", "eve", "--root", "home"], ""), 2);
    assert!(err.contains("--password-stdin"), "{err}");
    let (_, err) = expect(
        run(dir, &["user", "add", "eve", "--password", "x", "--root", "home", "--mount", "pub=shared"], ""),
        2,
    );
    assert!(err.contains("absolute virtual path"), "{err}");
    let (_, err) = expect(run(dir, &["user", "add", "e/ve", "--password", "x", "--root", "home"], ""), 2);
    assert!(err.contains("user name"), "{err}");
    expect(run(dir, &["user", "add", "eve", "--password", "x", "--password-stdin", "--root", "home"], ""), 2);

    let (out, _) = expect(run(dir, &["user", "list"], ""), 0);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("bob") && out.contains("staff") && out.contains("/shared="), "{out}");
    assert!(!out.contains("eve"), "{out}");

    // passwd
    expect(run(dir, &["user", "passwd", "bob", "--password-stdin"], "second-pass\r\n"), 0);
    let bob = store.get("bob").unwrap().unwrap();
    assert!(verify_blocking("second-pass", &bob.password_hash));
    let (_, err) = expect(run(dir, &["user", "passwd", "nobody", "--password", "x"], ""), 1);
    assert!(err.contains("no user `nobody`"), "{err}");
    expect(run(dir, &["user", "passwd", "bob", "--password-stdin"], "\n"), 2);

    // mod
    let (_, err) = expect(run(dir, &["user", "mod", "bob"], ""), 2);
    assert!(err.contains("nothing to change"), "{err}");
    expect(
        run(
            dir,
            &[
                "user",
                "mod",
                "bob",
                "--disable",
                "--read-only",
                "--clear-mounts",
                "--mount",
                "/data=shared",
                "--group",
                "ops",
                "--default-max-sessions",
                "--initial-dir",
                "/data",
            ],
            "",
        ),
        0,
    );
    let bob = store.get("bob").unwrap().unwrap();
    assert!(!bob.enabled && bob.read_only);
    assert_eq!(bob.mounts.len(), 1);
    assert_eq!((bob.mounts[0].virtual_path.as_str(), bob.mounts[0].read_only), ("/data", false));
    assert_eq!(bob.groups, ["staff", "ops"]);
    assert_eq!(bob.max_sessions, None);
    assert_eq!(bob.initial_dir, "/data");
    assert!(verify_blocking("second-pass", &bob.password_hash), "mod keeps the password");
    expect(run(dir, &["user", "mod", "bob", "--enable", "--read-write", "--password", "third"], ""), 0);
    let bob = store.get("bob").unwrap().unwrap();
    assert!(bob.enabled && !bob.read_only);
    assert!(verify_blocking("third", &bob.password_hash));
    expect(run(dir, &["user", "mod", "bob", "--enable", "--disable"], ""), 2);
    expect(run(dir, &["user", "mod", "nobody", "--enable"], ""), 1);

    // del
    let (out, _) = expect(run(dir, &["user", "del", "bob"], ""), 0);
    assert!(out.contains("deleted"), "{out}");
    expect(run(dir, &["user", "del", "bob"], ""), 1);
    let (out, _) = expect(run(dir, &["user", "list"], ""), 0);
    assert!(out.contains("no users"), "{out}");
}

#[test]
fn db_location_from_flag_or_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("etc/data")).unwrap();
    std::fs::create_dir_all(dir.join("etc/ftp-root")).unwrap();
    // Relative paths in the file resolve against the file's directory.
    std::fs::write(dir.join("etc/ferroftpd.toml"), "[userdb]\npath = \"data/users.db\"\n").unwrap();

    expect(
        run(
            dir,
            &["user", "add", "amy", "--config", "etc/ferroftpd.toml", "--password", "p", "--root", "."],
            "",
        ),
        0,
    );
    assert!(dir.join("etc/data/users.db").is_file());
    let (out, _) = expect(run(dir, &["user", "-c", "etc/ferroftpd.toml", "list"], ""), 0);
    assert!(out.contains("amy"), "{out}");

    expect(run(dir, &["user", "add", "ann", "--db", "other.db", "--password", "p", "--root", "."], ""), 0);
    let (out, _) = expect(run(dir, &["user", "list", "--db", "other.db"], ""), 0);
    assert!(out.contains("ann") && !out.contains("amy"), "{out}");

    std::fs::write(dir.join("broken.toml"), "[userdb]\npth = \"x\"\n").unwrap();
    let (_, err) = expect(run(dir, &["user", "list", "--config", "broken.toml"], ""), 2);
    assert!(err.contains("broken.toml:2:1") && err.contains("did you mean `path`?"), "{err}");
}

#[test]
fn check_config_good_and_bad() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("srv")).unwrap();
    std::fs::write(
        dir.join("good.toml"),
        "[server]\nlisten = [\"127.0.0.1:2121\"]\n[anonymous]\nroot = \"srv\"\nupload_dirs = [\"/incoming\"]\n",
    )
    .unwrap();
    let (out, _) = expect(run(dir, &["check-config", "good.toml"], ""), 0);
    assert_eq!(out.trim(), "good.toml: OK");

    std::fs::write(dir.join("bad.toml"), "[anonymous]\nroot = \"srv\"\n\n[limits]\nmax_clinets = 10\n")
        .unwrap();
    let (out, err) = expect(run(dir, &["check-config", "bad.toml"], ""), 2);
    assert!(!out.contains("OK"), "{out}");
    assert!(err.contains("bad.toml:5:1: unknown key `max_clinets` in [limits]"), "{err}");
    assert!(err.contains("did you mean `max_clients`?"), "{err}");

    std::fs::write(dir.join("type.toml"), "[anonymous]\nroot = \"srv\"\n[timeouts]\nidle = \"5m\"\n")
        .unwrap();
    let (_, err) = expect(run(dir, &["check-config", "type.toml"], ""), 2);
    assert!(err.contains("type.toml:4:8:") && err.contains("idle = 300"), "{err}");

    std::fs::write(dir.join("dir.toml"), "[anonymous]\nroot = \"missing\"\n").unwrap();
    let (_, err) = expect(run(dir, &["check-config", "dir.toml"], ""), 2);
    assert!(err.contains("dir.toml:2:1: anonymous.root: directory"), "{err}");

    let (_, err) = expect(run(dir, &["check-config", "absent.toml"], ""), 2);
    assert!(err.contains("absent.toml: cannot read"), "{err}");

    // serve refuses a bad file the same way, before binding anything.
    let (_, err) = expect(run(dir, &["serve", "--config", "bad.toml"], ""), 2);
    assert!(err.contains("bad.toml:5:1"), "{err}");
}
