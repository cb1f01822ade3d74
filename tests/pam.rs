//! The `pam` authentication module through the real libpam, with a private
//! PAM stack: pam_wrapper (Debian's libpam-wrapper, preloaded) points libpam
//! at a service directory of the test's own, whose stack uses pam_matrix (a
//! password file) and the system's pam_listfile (a list of locked users).
//! The machine's own accounts and /etc/pam.d are never touched.
//!
//! Cases: good password, bad password, unknown user (same reply and about
//! the same time as a wrong password), a locked account, and the chain's
//! order with a virtual user and a PAM user of the same name.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{CONNECT_TIMEOUT, REPLY_TIMEOUT};
use ferroftpd::auth::password::hash_password;
use ferroftpd::auth::userdb::{SqliteUserStore, UserRecord, UserStore};
use suppaftp::{FtpError, FtpStream};

/// Where Debian (and others) put the wrapper and its test module.
const WRAPPER_DIRS: &[&str] =
    &["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"];
/// The system's PAM modules.
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/security",
    "/usr/lib/aarch64-linux-gnu/security",
    "/lib/x86_64-linux-gnu/security",
    "/usr/lib64/security",
    "/usr/lib/security",
];

/// Failed logins are answered this long after PASS.
const FAIL_DELAY_MS: u64 = 600;

fn find(dirs: &[&str], rel: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| Path::new(d).join(rel)).find(|p| p.exists())
}

/// The wrapper library, pam_matrix and pam_listfile; this test does not
/// skip: `.ci/run` installs libpam-wrapper.
fn pam_parts() -> (PathBuf, PathBuf, PathBuf) {
    let missing = |what: &str| -> ! {
        panic!("{what} not found: install Debian's libpam-wrapper (.ci/run does) — this test does not skip")
    };
    let wrapper = find(WRAPPER_DIRS, "libpam_wrapper.so").unwrap_or_else(|| missing("libpam_wrapper.so"));
    let matrix = find(WRAPPER_DIRS, "pam_wrapper/pam_matrix.so").unwrap_or_else(|| missing("pam_matrix.so"));
    let listfile =
        find(MODULE_DIRS, "pam_listfile.so").unwrap_or_else(|| missing("pam_listfile.so (libpam-modules)"));
    (wrapper, matrix, listfile)
}

/// A test site: PAM users `carol` (password `pam-pw`), `dave` (locked),
/// `bob` (`pam-pw`) and `erin` (`pam-pw`, no root directory); the virtual
/// user `bob` (`db-pw`) in the user database; each root holds a file that
/// says who served it.
struct Site {
    dir: tempfile::TempDir,
    wrapper: PathBuf,
    /// Configuration files written so far (each start gets its own).
    configs: AtomicUsize,
}

impl Site {
    fn new() -> Site {
        let (wrapper, matrix, listfile) = pam_parts();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("passdb"),
            "carol:pam-pw:ftptest\ndave:pam-pw:ftptest\nbob:pam-pw:ftptest\nerin:pam-pw:ftptest\n",
        )
        .unwrap();
        std::fs::write(d.join("locked"), "dave\n").unwrap();
        std::fs::create_dir(d.join("services")).unwrap();
        let passdb = d.join("passdb");
        let stack = format!(
            "auth required {m} passdb={p}\n\
             account required {l} item=user sense=deny file={locked} onerr=fail\n\
             account required {m} passdb={p}\n",
            m = matrix.display(),
            p = passdb.display(),
            l = listfile.display(),
            locked = d.join("locked").display(),
        );
        std::fs::write(d.join("services/ftptest"), stack).unwrap();
        for user in ["carol", "dave", "bob"] {
            std::fs::create_dir_all(d.join("pam").join(user)).unwrap();
            std::fs::write(d.join("pam").join(user).join("from-pam.txt"), "pam\n").unwrap();
        }
        std::fs::create_dir_all(d.join("db/bob")).unwrap();
        std::fs::write(d.join("db/bob/from-db.txt"), "db\n").unwrap();
        let store = SqliteUserStore::open(d.join("users.db")).unwrap();
        store.put(&UserRecord::new("bob", hash_password("db-pw").unwrap(), d.join("db/bob"))).unwrap();
        Site { dir, wrapper, configs: AtomicUsize::new(0) }
    }

    /// Adds a PAM user with password `pam-pw` (pam_matrix reads its file on
    /// every call).
    fn add_pam_user(&self, name: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(self.dir.path().join("passdb")).unwrap();
        writeln!(f, "{name}:pam-pw:ftptest").unwrap();
    }

    /// Starts the server with `chain`.
    fn start(&self, chain: &[&str]) -> Daemon {
        let root = format!("root = \"{}/%u\"", self.dir.path().join("pam").display());
        self.start_with(chain, &root, "")
    }

    /// Starts the server with `chain`, `pam_root` (the `root` or `home` line
    /// of `[pam]`) and `extra` configuration at the end.
    fn start_with(&self, chain: &[&str], pam_root: &str, extra: &str) -> Daemon {
        let d = self.dir.path();
        let chain = chain.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
             [limits]\nfailed_login_delay_ms = {FAIL_DELAY_MS}\nmax_login_failures = 10\n\n\
             [ban]\nmax_failures = 0\n\n\
             [auth]\nchain = [{chain}]\n\n\
             [userdb]\npath = \"{db}\"\n\n\
             [pam]\nservice = \"ftptest\"\n{pam_root}\ngroups = [\"pamusers\"]\n{extra}",
            db = d.join("users.db").display(),
        );
        let file = d.join(format!("ferroftpd-{}.toml", self.configs.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&file, config).unwrap();
        let wrapper = self.wrapper.to_string_lossy().into_owned();
        let services = d.join("services").to_string_lossy().into_owned();
        Daemon::start_with_env(
            d,
            file.to_str().unwrap(),
            &[("LD_PRELOAD", &wrapper), ("PAM_WRAPPER", "1"), ("PAM_WRAPPER_SERVICE_DIR", &services)],
        )
    }
}

fn connect(addr: SocketAddr) -> FtpStream {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    FtpStream::connect_with_stream(stream).expect("greeting").passive_stream_builder(|addr: SocketAddr| {
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(FtpError::ConnectionError)?;
        s.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(FtpError::ConnectionError)?;
        Ok(s)
    })
}

/// Logs in; on success returns the names in the root, on failure the
/// reply's text and how long it took.
fn login(addr: SocketAddr, user: &str, password: &str) -> Result<Vec<String>, (String, Duration)> {
    let mut ftp = connect(addr);
    let started = Instant::now();
    match ftp.login(user, password) {
        Ok(()) => {
            let names = ftp.nlst(None).expect("NLST");
            let _ = ftp.quit();
            Ok(names)
        }
        Err(e) => Err((e.to_string(), started.elapsed())),
    }
}

#[test]
fn good_and_bad_passwords_through_libpam() {
    let site = Site::new();
    let server = site.start(&["pam"]);
    let names = login(server.addr, "carol", "pam-pw")
        .unwrap_or_else(|e| panic!("carol: {e:?}\n{}", server.log_text()));
    assert_eq!(names, ["from-pam.txt"], "carol's root is the template's");
    let (text, _) = login(server.addr, "carol", "wrong").expect_err("wrong password accepted");
    assert!(text.contains("530"), "{text}");
    let log = server.log_text();
    assert!(
        log.contains("module=\"pam\"") || log.contains("module=pam"),
        "login logged with its module:\n{log}"
    );
}

#[test]
fn unknown_user_looks_like_a_wrong_password() {
    let site = Site::new();
    let server = site.start(&["pam"]);
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        wrong.push(login(server.addr, "carol", "wrong").expect_err("wrong password"));
        unknown.push(login(server.addr, "nobody", "whatever").expect_err("unknown user"));
    }
    // Same reply text.
    assert_eq!(wrong[0].0, unknown[0].0);
    // Both padded to the configured delay; PAM's own delay is switched off.
    for (_, t) in wrong.iter().chain(&unknown) {
        assert!(*t >= Duration::from_millis(FAIL_DELAY_MS), "{t:?}");
        assert!(*t < Duration::from_millis(FAIL_DELAY_MS + 1500), "{t:?}");
    }
    let median = |v: &[(String, Duration)]| {
        let mut t: Vec<Duration> = v.iter().map(|x| x.1).collect();
        t.sort();
        t[t.len() / 2]
    };
    let (w, u) = (median(&wrong), median(&unknown));
    let gap = w.abs_diff(u);
    assert!(gap < Duration::from_millis(250), "wrong password {w:?} vs unknown user {u:?}");
}

#[test]
fn a_locked_account_is_refused_with_the_right_password() {
    let site = Site::new();
    let server = site.start(&["pam"]);
    let (text, _) = login(server.addr, "dave", "pam-pw").expect_err("locked account accepted");
    assert!(text.contains("530"), "{text}");
    assert!(server.log_text().contains("account not usable"), "{}", server.log_text());
}

#[test]
fn the_first_module_in_the_chain_decides() {
    let site = Site::new();
    {
        let server = site.start(&["userdb", "pam"]);
        assert_eq!(login(server.addr, "bob", "db-pw").expect("virtual bob"), ["from-db.txt"]);
        assert!(login(server.addr, "bob", "pam-pw").is_err(), "userdb decides for bob");
        // carol is unknown to userdb: PAM gets its turn.
        assert_eq!(login(server.addr, "carol", "pam-pw").expect("PAM carol"), ["from-pam.txt"]);
    }
    {
        let server = site.start(&["pam", "userdb"]);
        assert_eq!(login(server.addr, "bob", "pam-pw").expect("PAM bob"), ["from-pam.txt"]);
        assert!(login(server.addr, "bob", "db-pw").is_err(), "PAM decides for bob");
    }
}

#[test]
fn a_missing_root_is_answered_as_a_wrong_password() {
    let site = Site::new();
    let server = site.start(&["pam"]);
    let (wrong, _) = login(server.addr, "carol", "wrong").expect_err("wrong password");
    let (missing, took) = login(server.addr, "erin", "pam-pw").expect_err("erin has no root");
    assert_eq!(missing, wrong, "same reply as a wrong password");
    assert!(took >= Duration::from_millis(FAIL_DELAY_MS), "same delay as a wrong password: {took:?}");
    let log = server.log_text();
    assert!(
        log.lines().any(|l| l.contains("root directory unavailable") && l.contains("erin")),
        "the log says why:\n{log}"
    );
}

#[test]
fn acl_rules_apply_to_pam_users_by_group_and_name() {
    let site = Site::new();
    let pam = site.dir.path().join("pam");
    let root = format!("root = \"{}/%u\"", pam.display());
    let rules = format!(
        "\n[[acl.rule]]\nwho = [\"@pamusers\"]\ntree = \"{carol}\"\ndeny = [\"write-new\"]\n\n\
         [[acl.rule]]\nwho = [\"bob\"]\ntree = \"{bob}\"\ndeny = [\"list\"]\n",
        carol = pam.join("carol").display(),
        bob = pam.join("bob").display(),
    );
    let server = site.start_with(&["pam"], &root, &rules);

    // carol, by her group from [pam]: may list, may not upload.
    let mut ftp = connect(server.addr);
    ftp.login("carol", "pam-pw").unwrap_or_else(|e| panic!("carol: {e}\n{}", server.log_text()));
    assert_eq!(ftp.nlst(None).unwrap(), ["from-pam.txt"]);
    let refused = ftp.put_file("new.txt", &mut &b"x"[..]).expect_err("group rule denies write-new");
    assert!(refused.to_string().contains("550"), "{refused}");
    assert!(!pam.join("carol/new.txt").exists());
    let _ = ftp.quit();

    // bob, by name: may upload, may not list.
    let mut ftp = connect(server.addr);
    ftp.login("bob", "pam-pw").unwrap_or_else(|e| panic!("bob: {e}\n{}", server.log_text()));
    ftp.put_file("new.txt", &mut &b"x"[..]).expect("no rule against bob's uploads");
    assert!(pam.join("bob/new.txt").exists());
    assert!(ftp.nlst(None).is_err(), "name rule denies list");
    let _ = ftp.quit();
}

/// Two accounts of this machine from its user database (read only): one
/// whose home is an existing directory other than `/` with something in
/// it, one whose home does
/// not exist (Debian's `nobody`: `/nonexistent`).
fn system_users() -> (Option<(String, PathBuf)>, Option<String>) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entries: Vec<(String, PathBuf)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7).then(|| (f[0].to_string(), PathBuf::from(f[5])))
        })
        .filter(|(name, _)| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        .collect();
    let not_empty = |h: &Path| std::fs::read_dir(h).map(|mut d| d.next().is_some()).unwrap_or(false);
    let with_home = entries
        .iter()
        .find(|(n, h)| n != "root" && h != Path::new("/") && h.is_absolute() && not_empty(h))
        .cloned();
    let without = entries.iter().find(|(_, h)| h.is_absolute() && !h.exists()).map(|(n, _)| n.clone());
    (with_home, without)
}

#[test]
fn home_directories_from_the_system_user_database() {
    let site = Site::new();
    let (with_home, without) = system_users();
    let Some((user, home)) = with_home else {
        panic!("/etc/passwd has no account with an existing home directory to map");
    };
    site.add_pam_user(&user);
    if let Some(u) = &without {
        site.add_pam_user(u);
    }
    // Read-only: the home is a real system directory.
    let server = site.start_with(&["pam"], "home = true\nread_only = true\nunix_groups = true", "");
    let mut ftp = connect(server.addr);
    ftp.login(user.as_str(), "pam-pw").unwrap_or_else(|e| panic!("{user}: {e}\n{}", server.log_text()));
    // Names from the home directory (the server may leave out links that
    // lead outside it, so a subset).
    let there: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let names = ftp.nlst(None).expect("NLST of the home directory");
    assert!(
        !names.is_empty() && names.iter().all(|n| there.contains(n)),
        "{user}'s root is {}: {names:?}",
        home.display()
    );
    let refused = ftp.mkdir("ferroftpd-test").expect_err("read_only = true");
    assert!(refused.to_string().contains("550"), "{refused}");
    let _ = ftp.quit();
    match without {
        Some(u) => {
            let (text, _) = login(server.addr, &u, "pam-pw").expect_err("home does not exist");
            let (wrong, _) = login(server.addr, &user, "wrong").expect_err("wrong password");
            assert_eq!(text, wrong);
        }
        None => println!("no account without a home in /etc/passwd: that case is not checked here"),
    }
    // A PAM user unknown to the system's user database has no home.
    let (text, _) = login(server.addr, "carol", "pam-pw").expect_err("carol has no system account");
    assert!(text.contains("530"), "{text}");
    assert!(server.log_text().contains("no home for this user"), "{}", server.log_text());
}
