//! The server started as its binary (`ferroftpd serve`), for tests that
//! need a separate process: signals, reload by pid file, an environment of
//! its own (a preloaded PAM wrapper). Killed on drop; its log is collected.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wait_until;

/// How long the server may take to start listening.
const DEADLINE: Duration = Duration::from_secs(60);

/// A server started as the binary, killed on drop; its stderr is collected.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
}

impl Daemon {
    pub fn start(dir: &Path, config: &str) -> Daemon {
        Daemon::start_with_env(dir, config, &[])
    }

    /// Started with extra environment variables.
    pub fn start_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferroftpd"))
            .args(["serve", "--config", config, "--log-level", "info"])
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferroftpd serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut addr = None;
        let found = wait_until(DEADLINE, || {
            addr = log.lock().unwrap().iter().find_map(|l| {
                let (_, rest) = l.split_once("listening addr=")?;
                rest.split_whitespace().next()?.parse().ok()
            });
            addr.is_some()
        });
        let mut daemon = Daemon { child, log, addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
        assert!(found, "server did not start:\n{}", daemon.log_text());
        daemon.addr = addr.unwrap();
        daemon
    }

    /// The first word after `marker` in a log line, waiting for it.
    pub fn log_value(&self, marker: &str) -> String {
        let mut value = None;
        let found = wait_until(DEADLINE, || {
            value = self.log.lock().unwrap().iter().find_map(|l| {
                let (_, rest) = l.split_once(marker)?;
                rest.split_whitespace().next().map(String::from)
            });
            value.is_some()
        });
        assert!(found, "no `{marker}` in the log:\n{}", self.log_text());
        value.unwrap()
    }

    /// The web admin's address, from its log line.
    pub fn admin_addr(&self) -> SocketAddr {
        let url = self.log_value("admin listening url=");
        url.trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .parse()
            .expect("admin address")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args(["-s", name, &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits (bounded) for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(within, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Whether a line containing `needle` has been logged.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Kills the server with SIGKILL (no clean-up of any kind) and waits
    /// for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
