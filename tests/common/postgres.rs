//! A throw-away PostgreSQL cluster for the tests: `initdb` into a temporary
//! directory, `pg_ctl start` on a free port of 127.0.0.1 with its socket in
//! that directory, `pg_ctl stop -m immediate` on drop. PostgreSQL refuses to
//! run as root, so under root (CI) it runs as `nobody` through `runuser`,
//! owning its directories.
//!
//! The programs come from Debian's `postgresql` package
//! (/usr/lib/postgresql/VERSION/bin) or PATH. Without them the tests fail
//! in CI (`CI` set; .ci/run installs the package) and are skipped with a
//! message elsewhere.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The superuser `initdb` creates (trust authentication on 127.0.0.1).
pub const PG_USER: &str = "ferroftpd";

/// The unprivileged account PostgreSQL runs as when the tests run as root.
const RUN_AS: &str = "nobody";

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    as_user: bool,
    stopped: std::cell::Cell<bool>,
    dir: tempfile::TempDir,
}

/// The directory holding `initdb` and `pg_ctl`, newest version first.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Postgres {
    /// Starts a new cluster; `None` (with a message) when PostgreSQL is not
    /// installed outside CI.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is not installed (apt-get install postgresql; .ci/run does this): required in CI"
            );
            eprintln!("SKIPPED: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let as_user = is_root();
        // Under root, in /tmp: a TMPDIR private to root would keep the
        // unprivileged account out.
        let base = if as_user { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir =
            tempfile::Builder::new().prefix("ferroftpd-pg").tempdir_in(base).expect("temporary directory");
        let data = dir.path().join("data");
        let sockets = dir.path().join("sockets");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&sockets).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        if as_user {
            // The account must reach its directories: the temporary
            // directory is root's and private until opened up here.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let user = nix::unistd::User::from_name(RUN_AS)
                .expect("look up the unprivileged user")
                .unwrap_or_else(|| panic!("no `{RUN_AS}` account to run PostgreSQL as"));
            for d in [&data, &sockets] {
                std::os::unix::fs::chown(d, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
            }
        }
        let mut pg = Postgres { bin, data, port: 0, as_user, stopped: std::cell::Cell::new(false), dir };
        let data = pg.data.to_str().unwrap().to_string();
        pg.run(
            "initdb",
            &["-D", &data, "-U", PG_USER, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            Duration::from_secs(120),
        );
        // A free port may be taken between the check and the start: retry.
        for attempt in 0.. {
            pg.port = super::free_port();
            if pg.try_start() {
                return Some(pg);
            }
            let log = pg.dir.path().join("sockets/server.log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(attempt < 3, "PostgreSQL did not start:\n{text}");
        }
        unreachable!()
    }

    fn try_start(&self) -> bool {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().join("sockets").display()
        );
        let log = self.dir.path().join("sockets/server.log");
        let data = self.data.to_str().unwrap();
        let ok = self.try_run(
            "pg_ctl",
            &["-D", data, "-l", log.to_str().unwrap(), "-w", "-t", "60", "-o", &options, "start"],
            Duration::from_secs(90),
        );
        self.stopped.set(!ok);
        ok
    }

    /// Starts the server again after [`Postgres::stop`], on the same port.
    pub fn restart(&self) {
        assert!(self.try_start(), "PostgreSQL did not start again");
    }

    /// A URL for the cluster's default database.
    pub fn url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (a database outage).
    pub fn stop(&self) {
        if self.stopped.replace(true) {
            return;
        }
        let data = self.data.to_str().unwrap().to_string();
        self.try_run(
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "-t", "30", "stop"],
            Duration::from_secs(60),
        );
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_user {
            let mut c = Command::new("runuser");
            c.args(["-u", RUN_AS, "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(self.dir.path()).env_remove("PGDATA").env("LC_ALL", "C");
        cmd
    }

    fn try_run(&self, program: &str, args: &[&str], deadline: Duration) -> bool {
        let mut cmd = self.command(program);
        cmd.args(args);
        let out = super::run(&mut cmd, deadline);
        if !out.status.success() {
            eprintln!(
                "{program} failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    fn run(&self, program: &str, args: &[&str], deadline: Duration) {
        assert!(self.try_run(program, args, deadline), "{program} failed");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
