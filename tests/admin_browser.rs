//! The web admin in a real browser: Playwright (admin-tests/, playwright-core
//! from npm) drives Debian's Chromium through login, adding a user and a
//! rule, changing the passive range, and disconnecting a live session; a
//! real FTP client then checks that each change holds. Screenshots of every
//! page go to target/admin-screenshots/.
//!
//! Needs node, `npm ci` in admin-tests/ and /usr/bin/chromium: `.ci/run`
//! installs them. In CI a missing piece fails the test; elsewhere it is
//! skipped with a note.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::admin::{ftp_login, site, ADMIN, ADMIN_PW, CONFIG_COMMENT};
use common::Ftp;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if !repo().join("admin-tests/node_modules/playwright-core").exists() {
        return Some("admin-tests/node_modules is missing (cd admin-tests && npm ci)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is missing".into());
    }
    None
}

#[test]
fn clicking_through_the_admin_changes_what_ftp_clients_get() {
    if let Some(why) = missing() {
        if std::env::var_os("CI").is_some() {
            panic!("browser test cannot run: {why} — .ci/run installs it; this test does not skip in CI");
        }
        eprintln!("skipped: {why}");
        return;
    }
    let (dir, server) = site();
    let d = dir.path();
    let admin = server.admin_addr();

    // A live session for the dashboard to disconnect.
    let mut held = Ftp::connect(server.addr);
    held.send("USER anonymous");
    held.read_reply();
    held.send("PASS guest");
    assert_eq!(held.read_reply().code, 230);

    let port = common::free_passive_port();
    let out = repo().join("target/admin-screenshots");
    let result = Command::new("node")
        .arg(repo().join("admin-tests/run.mjs"))
        .env("ADMIN_URL", format!("http://{admin}/"))
        .env("ADMIN_USER", ADMIN)
        .env("ADMIN_PASSWORD", ADMIN_PW)
        .env("USER_ROOT", d.join("homes/bob"))
        .env("SECRET_DIR", d.join("homes/bob/secret"))
        .env("PASSIVE_PORT", port.to_string())
        .env("OUT_DIR", &out)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success(),
        "browser steps failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    for shot in ["login", "dashboard", "users", "permissions", "settings", "dashboard-after"] {
        assert!(out.join(format!("{shot}.png")).exists(), "screenshot {shot}");
    }

    // The held session was disconnected with 421.
    held.set_read_timeout(Duration::from_secs(10));
    assert_eq!(held.read_reply().code, 421);
    // The user and the rule hold.
    let mut bob = ftp_login(server.addr, "bob", "bob-pw-1").expect("bob logs in");
    assert!(bob.retr_as_buffer("/in/hello.txt").is_ok());
    assert!(bob.retr_as_buffer("/secret/plan.txt").is_err(), "the rule added in the browser denies it");
    // Bob's session holds the one passive port of the new range: let it go.
    let _ = bob.quit();
    // The passive range saved in Settings is in force.
    let mut ftp = Ftp::connect(server.addr);
    ftp.send("USER anonymous");
    ftp.read_reply();
    ftp.send("PASS guest");
    assert_eq!(ftp.read_reply().code, 230);
    ftp.send("PASV");
    let text = ftp.read_reply().text();
    let inner = text
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("227 reply: {text}"));
    let p: Vec<u16> = inner.split(',').map(|x| x.trim().parse().unwrap()).collect();
    assert_eq!(p[4] * 256 + p[5], port);
    // The invalid idle timeout tried last was not saved.
    let saved = std::fs::read_to_string(d.join("ferroftpd.toml")).unwrap();
    assert!(!saved.contains("soon") && saved.starts_with(CONFIG_COMMENT), "{saved}");
}
