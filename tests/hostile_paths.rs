//! Escape attempts: `..`, absolute paths, backslashes, NUL and symlinks that
//! point out of the user's root. Every attempt must get an error reply, no
//! outside data may arrive, and afterwards nothing outside the root has
//! changed (content, mtime, mode) or appeared.
//!
//! All attempts run and failures are collected, so one run reports every
//! escape that works.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

use common::*;

/// What must not change outside the root.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    outside_names: Vec<String>,
    base_names: Vec<String>,
    secret: Vec<u8>,
    secret_mtime: SystemTime,
    secret_mode: u32,
    outside_mtime: SystemTime,
}

fn snapshot(paths: &Paths) -> Snapshot {
    let secret = paths.outside.join("secret.txt");
    Snapshot {
        outside_names: dir_names(&paths.outside),
        // The database's journal files come and go; everything else is fixed.
        base_names: dir_names(&paths.base).into_iter().filter(|n| !n.starts_with("users.db")).collect(),
        secret: std::fs::read(&secret).unwrap(),
        secret_mtime: mtime(&secret),
        secret_mode: std::fs::metadata(&secret).unwrap().permissions().mode(),
        outside_mtime: mtime(&paths.outside),
    }
}

fn hostile_server() -> TestServer {
    TestServer::builder()
        .setup(|p: &Paths| {
            symlink("/etc", p.user("evil_abs")).unwrap();
            symlink("../outside", p.user("evil_rel")).unwrap();
            symlink("../outside/secret.txt", p.user("link_to_secret")).unwrap();
            symlink(p.outside.join("secret.txt"), p.user("abs_link_to_secret")).unwrap();
            std::fs::write(p.user("inside.txt"), b"inside").unwrap();
            std::fs::create_dir(p.user("subdir")).unwrap();
            std::fs::create_dir(p.outside.join("outdir")).unwrap();
            // Make the outside mtimes clearly in the past, so a change shows.
            let past = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
            for path in [p.outside.join("secret.txt"), p.outside.join("outdir")] {
                std::fs::File::open(&path).unwrap().set_modified(past).unwrap();
            }
        })
        .start()
}

/// Failures collected over all attempts.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn add(&mut self, what: String) {
        eprintln!("ESCAPE CHECK FAILED: {what}");
        self.0.push(what);
    }

    /// A control-connection command must get 4xx/5xx.
    fn refused(&mut self, ftp: &mut Ftp, line: &str) -> Reply {
        let r = ftp.cmd(line);
        if !r.is_error() {
            self.add(format!("`{line}` got `{r}`, expected an error reply"));
        }
        if r.text().contains("top secret") {
            self.add(format!("`{line}` leaked the secret in its reply: `{r}`"));
        }
        r
    }

    /// A download-type command must be refused before any data flows.
    fn refused_download(&mut self, ftp: &mut Ftp, line: &str) {
        let (first, rest) = ftp.try_download(line);
        if let Some((data, last)) = rest {
            let text = String::from_utf8_lossy(&data);
            let leak = if data.windows(SECRET.len()).any(|w| w == SECRET) {
                " — THE SECRET FILE'S CONTENT ARRIVED"
            } else if text.contains("root:") {
                " — /etc/passwd content arrived"
            } else if text.contains("passwd") || text.contains("hostname") {
                " — a listing of /etc arrived"
            } else {
                ""
            };
            self.add(format!("`{line}` got `{first}` then `{last}` with {} data bytes{leak}", data.len()));
        } else if !first.is_error() {
            self.add(format!("`{line}` got `{first}`, expected an error reply"));
        }
    }

    /// An upload-type command must be refused before any data is accepted.
    fn refused_upload(&mut self, ftp: &mut Ftp, line: &str) {
        let (first, last) = ftp.try_upload(line, b"written through an escape\n");
        if let Some(last) = last {
            self.add(format!("`{line}` got `{first}` then `{last}`: upload accepted"));
        } else if !first.is_error() {
            self.add(format!("`{line}` got `{first}`, expected an error reply"));
        }
    }
}

fn pwd(ftp: &mut Ftp) -> String {
    let r = ftp.expect("PWD", 257);
    let text = r.message().to_string();
    text.split('"').nth(1).unwrap_or("").to_string()
}

fn assert_no_failures(f: Failures) {
    assert!(f.0.is_empty(), "{} escape attempt(s) were not refused:\n{}", f.0.len(), f.0.join("\n"));
}

fn assert_outside_unchanged(before: &Snapshot, paths: &Paths) {
    let after = snapshot(paths);
    assert_eq!(before, &after, "something outside the root changed");
    assert!(!Path::new("/etc/new.txt").exists() && !Path::new("/etc/x").exists());
}

#[test]
fn reads_and_listings_cannot_escape() {
    let server = hostile_server();
    let before = snapshot(&server.paths);
    let mut ftp = server.login();
    let mut f = Failures::default();

    for line in [
        "RETR ../outside/secret.txt",
        "RETR ../../../../etc/passwd",
        "RETR /../outside/secret.txt",
        "RETR /../../../../../../etc/passwd",
        "RETR ..\\outside\\secret.txt",
        "RETR \\..\\..\\outside\\secret.txt",
        "RETR subdir/../../outside/secret.txt",
        "RETR /share/../../outside/secret.txt",
        "RETR ro/../../outside/secret.txt",
        "RETR ....//outside/secret.txt",
        "RETR %2e%2e/outside/secret.txt",
        "RETR evil_rel/secret.txt",
        "RETR link_to_secret",
        "RETR abs_link_to_secret",
        "RETR evil_abs/passwd",
        "RETR evil_abs/../passwd",
        "LIST evil_abs",
        "LIST evil_abs/",
        "LIST evil_rel",
        "LIST evil_rel/",
        "NLST evil_abs",
        "NLST evil_rel",
        "MLSD evil_abs",
        "MLSD evil_rel",
        "LIST ../outside",
    ] {
        f.refused_download(&mut ftp, line);
    }
    // The NLST glob path must not follow the link either.
    f.refused_download(&mut ftp, "NLST evil_rel/*");

    for line in [
        "SIZE link_to_secret",
        "SIZE evil_rel/secret.txt",
        "SIZE ../outside/secret.txt",
        "MDTM evil_rel/secret.txt",
        "MDTM link_to_secret",
        "MLST evil_rel/secret.txt",
        "MLST evil_abs",
        "MLST evil_abs/passwd",
        "STAT evil_rel",
        "STAT evil_abs",
        "STAT evil_abs/passwd",
        "STAT evil_rel/secret.txt",
        "CWD evil_abs",
        "CWD evil_rel",
        "CWD evil_rel/outdir",
        "CWD link_to_secret",
    ] {
        f.refused(&mut ftp, line);
        if pwd(&mut ftp) != "/" {
            f.add(format!("after `{line}` the directory is {}", pwd(&mut ftp)));
            ftp.expect("CWD /", 250);
        }
    }

    // `..` at the root stays at the root.
    for line in ["CWD ..", "CWD ../..", "CDUP", "CWD /..", "CWD \\..", "CWD ../outside/.."] {
        let r = ftp.cmd(line);
        let now = pwd(&mut ftp);
        if now != "/" {
            f.add(format!("`{line}` (got `{r}`) left the directory at {now:?}, expected /"));
            ftp.expect("CWD /", 250);
        }
    }
    let listing = ftp.listing("NLST ..");
    for name in ["outside", "users.db", "anon"] {
        if listing.lines().any(|l| l.trim_start_matches('/') == name || l.ends_with(&format!("/{name}"))) {
            f.add(format!("NLST .. at the root shows {name}: {listing:?}"));
        }
    }

    // NUL inside a path, sent raw.
    for line in [&b"RETR inside.txt\0../outside/secret.txt\r\n"[..], b"CWD evil_rel\0\r\n", b"SIZE \0\r\n"] {
        ftp.send_bytes(line);
        let r = ftp.read_reply();
        if r.code != 501 && r.code != 500 {
            f.add(format!("{:?} got `{r}`, expected 501 (or 500)", String::from_utf8_lossy(line)));
        }
    }
    ftp.expect("NOOP", 200);
    // The file inside still reads normally.
    assert_eq!(ftp.retr("inside.txt"), b"inside");

    assert_outside_unchanged(&before, &server.paths);
    assert_no_failures(f);
}

#[test]
fn writes_cannot_escape() {
    let server = hostile_server();
    let before = snapshot(&server.paths);
    let mut ftp = server.login();
    let mut f = Failures::default();

    for line in [
        "STOR evil_rel/new.txt",
        "STOR evil_rel/secret.txt",
        "STOR ../outside/new.txt",
        "STOR /../outside/new.txt",
        "STOR ..\\outside\\new.txt",
        "STOR evil_rel/outdir/new.txt",
        "APPE evil_rel/secret.txt",
        "APPE evil_rel/new.txt",
        "STOU evil_rel/new.txt",
    ] {
        f.refused_upload(&mut ftp, line);
    }
    // REST + STOR into the secret through the link.
    ftp.expect("REST 5", 350);
    f.refused_upload(&mut ftp, "STOR evil_rel/secret.txt");

    for line in [
        "MKD evil_rel/x",
        "MKD evil_rel/outdir/x",
        "MKD ../outside/x",
        "RMD evil_rel/outdir",
        "DELE evil_rel/secret.txt",
        "DELE ../outside/secret.txt",
        "RNFR evil_rel/secret.txt",
        "MFMT 20000101000000 evil_rel/secret.txt",
        "MFMT 20000101000000 link_to_secret",
        "MFMT 20000101000000 abs_link_to_secret",
        "MFMT 20000101000000 evil_rel/outdir",
        "SITE CHMOD 777 evil_rel/secret.txt",
        "SITE CHMOD 777 link_to_secret",
        "SITE CHMOD 777 abs_link_to_secret",
        "SITE CHMOD 777 evil_rel",
        "SITE CHMOD 777 evil_abs",
    ] {
        f.refused(&mut ftp, line);
    }
    // Renaming an inside file into the outside directory.
    ftp.expect("RNFR inside.txt", 350);
    f.refused(&mut ftp, "RNTO evil_rel/moved.txt");
    ftp.expect("RNFR inside.txt", 350);
    f.refused(&mut ftp, "RNTO ../outside/moved.txt");
    assert!(server.paths.user("inside.txt").exists() || server.paths.user("outside/moved.txt").exists());
    assert_outside_unchanged(&before, &server.paths);

    // Operations on the links themselves may succeed (they are entries inside
    // the root), but must never reach what they point to.
    for (line, upload) in [
        ("STOR link_to_secret", true),
        ("APPE link_to_secret", true),
        ("APPE abs_link_to_secret", true),
        ("RNFR link_to_secret", false),
        ("RNTO renamed_link", false),
        ("DELE renamed_link", false),
        ("DELE link_to_secret", false),
        ("DELE abs_link_to_secret", false),
        ("RMD evil_rel", false),
        ("DELE evil_rel", false),
        ("DELE evil_abs", false),
    ] {
        if upload {
            let (first, last) = ftp.try_upload(line, b"through the link\n");
            eprintln!("{line}: {first} / {last:?}");
        } else {
            let r = ftp.cmd(line);
            eprintln!("{line}: {r}");
        }
        let after = snapshot(&server.paths);
        if after != before {
            f.add(format!("`{line}` changed something outside the root: {before:?} → {after:?}"));
        }
    }
    assert!(Path::new("/etc/passwd").exists(), "DELE through evil_abs removed /etc/passwd?!");
    ftp.expect("NOOP", 200);

    assert_outside_unchanged(&before, &server.paths);
    assert_no_failures(f);
}

/// The anonymous user cannot leave the anonymous root either (and cannot
/// reach alice's files).
#[test]
fn anonymous_cannot_escape() {
    let server = hostile_server();
    std::fs::write(server.paths.user("alice-only.txt"), b"alice").unwrap();
    symlink("../user", server.paths.anon_root.join("to_user")).unwrap();
    let before = snapshot(&server.paths);
    let mut ftp = server.connect();
    ftp.login("anonymous", "guest@example.com");
    let mut f = Failures::default();
    for line in [
        "RETR ../user/alice-only.txt",
        "RETR ../outside/secret.txt",
        "RETR /../../outside/secret.txt",
        "RETR to_user/alice-only.txt",
        "LIST to_user",
        "LIST ../user",
        "RETR ../users.db",
    ] {
        f.refused_download(&mut ftp, line);
    }
    f.refused(&mut ftp, "CWD to_user");
    f.refused(&mut ftp, "SIZE ../users.db");
    assert_eq!(ftp.retr("pub/hello.txt"), HELLO);
    assert_outside_unchanged(&before, &server.paths);
    assert_no_failures(f);
}

/// A NUL inside a path argument is an error in the argument: 501 (RFC 959
/// "syntax error in parameters or arguments"), and nothing is touched.
#[test]
fn nul_in_a_path_is_501() {
    let server = hostile_server();
    let before = snapshot(&server.paths);
    let mut ftp = server.login();
    let mut wrong = Vec::new();
    for line in [
        &b"RETR inside.txt\0../outside/secret.txt\r\n"[..],
        b"DELE inside.txt\0x\r\n",
        b"MKD new\0dir\r\n",
        b"CWD subdir\0\r\n",
    ] {
        ftp.send_bytes(line);
        let r = ftp.read_reply();
        if r.code != 501 {
            wrong.push(format!("{:?} got `{r}`", String::from_utf8_lossy(line)));
        }
    }
    ftp.expect("NOOP", 200);
    assert!(server.paths.user("inside.txt").exists());
    assert!(!server.paths.user("new").exists());
    assert_outside_unchanged(&before, &server.paths);
    assert!(wrong.is_empty(), "expected 501 for a NUL in a path:\n{}", wrong.join("\n"));
}
