//! The web admin's test site, shared by the HTTP-level and browser tests:
//! the real binary with a commented config file, an anonymous root, a home
//! for a user the tests add (`homes/bob`, with `in/hello.txt` and
//! `secret/plan.txt`) and one admin account.

use std::net::{SocketAddr, TcpStream};

use ferroftpd::admin::accounts::AdminAccounts;
use suppaftp::{FtpError, FtpStream};

use super::daemon::Daemon;
use super::{CONNECT_TIMEOUT, REPLY_TIMEOUT};

pub const ADMIN: &str = "root";
pub const ADMIN_PW: &str = "admin-pass-1";
/// The first line of the site's config file, which saving must keep.
pub const CONFIG_COMMENT: &str = "# site configuration";

pub fn site() -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["anon", "homes/bob/in", "homes/bob/secret"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("homes/bob/secret/plan.txt"), "top secret\n").unwrap();
    std::fs::write(d.join("homes/bob/in/hello.txt"), "hello\n").unwrap();
    let config = format!(
        "{CONFIG_COMMENT}\n[server]\nlisten = [\"127.0.0.1:0\"]   # any port\n\n\
         [passive]\nport_range = [0, 0]\n\n\
         [auth]\nchain = [\"anonymous\", \"userdb\"]\n\n\
         [anonymous]\nroot = \"{anon}\"\n\n[userdb]\npath = \"{db}\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\nusers = \"{admins}\"\n",
        anon = d.join("anon").display(),
        db = d.join("users.db").display(),
        admins = d.join("admins.db").display(),
    );
    std::fs::write(d.join("ferroftpd.toml"), config).unwrap();
    AdminAccounts::open(d.join("admins.db")).unwrap().set(ADMIN, ADMIN_PW).unwrap();
    let daemon = Daemon::start(d, d.join("ferroftpd.toml").to_str().unwrap());
    (dir, daemon)
}

/// A suppaftp login (passive data connections with timeouts).
pub fn ftp_login(addr: SocketAddr, user: &str, password: &str) -> Result<FtpStream, FtpError> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut ftp = FtpStream::connect_with_stream(stream)?.passive_stream_builder(|addr: SocketAddr| {
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(FtpError::ConnectionError)?;
        s.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(FtpError::ConnectionError)?;
        Ok(s)
    });
    ftp.login(user, password)?;
    Ok(ftp)
}
