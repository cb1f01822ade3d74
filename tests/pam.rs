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

/// A test site: PAM users `carol` (password `pam-pw`), `dave` (locked) and
/// `bob` (`pam-pw`); the virtual user `bob` (`db-pw`) in the user database;
/// each with a root holding a file that says who served it.
struct Site {
    dir: tempfile::TempDir,
    wrapper: PathBuf,
}

impl Site {
    fn new() -> Site {
        let (wrapper, matrix, listfile) = pam_parts();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("passdb"), "carol:pam-pw:ftptest\ndave:pam-pw:ftptest\nbob:pam-pw:ftptest\n")
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
        Site { dir, wrapper }
    }

    /// Starts the server with `chain`.
    fn start(&self, chain: &[&str]) -> Daemon {
        let d = self.dir.path();
        let chain = chain.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
             [limits]\nfailed_login_delay_ms = {FAIL_DELAY_MS}\nmax_login_failures = 10\n\n\
             [ban]\nmax_failures = 0\n\n\
             [auth]\nchain = [{chain}]\n\n\
             [userdb]\npath = \"{db}\"\n\n\
             [pam]\nservice = \"ftptest\"\nroot = \"{root}/%u\"\ngroups = [\"pamusers\"]\n",
            db = d.join("users.db").display(),
            root = d.join("pam").display(),
        );
        let file = d.join(format!("ferroftpd-{}.toml", chain.len()));
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
