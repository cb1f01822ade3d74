//! A hostile client against a running server: FTP bounce, passive-port
//! theft from another address (127.0.0.2), `..` in every position, a
//! symlink to `/`, symlinks swapped in during transfers, NUL/CR/LF in names,
//! very long names and paths, over-long lines, commands before login, RNTO
//! without RNFR, REST beyond the end, STOR into a read-only mount, writes by
//! anonymous. Every case checks the exact reply and that nothing outside
//! what it may touch changed. (tests/hostile_paths.rs holds ~70 more escape
//! attempts through links and separators.)

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Everything below the test directory except the user database (whose
/// journal files come and go): names, the content of every file and the
/// target of every symlink (never followed).
fn snapshot(paths: &Paths) -> Vec<(String, Option<Vec<u8>>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((format!("{rel} -> {}", target.display()), None));
            } else if meta.is_dir() {
                out.push((rel, None));
                walk(root, &path, out);
            } else {
                out.push((rel, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    let mut out = Vec::new();
    walk(&paths.base, &paths.base, &mut out);
    out.retain(|(name, _)| !name.starts_with("users.db"));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Asserts the snapshot is unchanged, naming what differs.
fn assert_unchanged(before: &[(String, Option<Vec<u8>>)], paths: &Paths, what: &str) {
    let after = snapshot(paths);
    if before != after {
        let gone: Vec<_> = before.iter().filter(|e| !after.contains(e)).map(|e| &e.0).collect();
        let new: Vec<_> = after.iter().filter(|e| !before.contains(e)).map(|e| &e.0).collect();
        panic!("{what}: the file tree changed; removed or altered {gone:?}, added or altered {new:?}");
    }
}

/// Sends `line` and asserts the exact reply (code and text).
fn exact(ftp: &mut Ftp, line: &str, code: u16, text: &str) {
    let r = ftp.cmd(line);
    assert_eq!((r.code, r.message()), (code, text), "`{}`", line.escape_debug());
}

/// Raw bytes as one command; asserts the exact reply.
fn exact_raw(ftp: &mut Ftp, bytes: &[u8], code: u16, text: &str) {
    ftp.send_bytes(bytes);
    let r = ftp.read_reply();
    assert_eq!((r.code, r.message()), (code, text), "{:?}", String::from_utf8_lossy(bytes));
}

const THIEF: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

#[test]
fn bounce_attempts_are_refused_and_nothing_is_contacted() {
    let server = TestServer::start();
    let before = snapshot(&server.paths);
    // A service on another address that a bounce would reach.
    let victim = TcpListener::bind((THIEF, 0)).unwrap();
    victim.set_nonblocking(true).unwrap();
    let vport = victim.local_addr().unwrap().port();
    let mut ftp = server.login();
    let foreign = "Data connections only to your own address.";
    let privileged = "Data connections only to ports 1024 and above.";
    exact(&mut ftp, &format!("PORT 127,0,0,2,{},{}", vport >> 8, vport & 0xff), 501, foreign);
    exact(&mut ftp, &format!("EPRT |1|127.0.0.2|{vport}|"), 501, foreign);
    exact(&mut ftp, "PORT 127,0,0,1,0,21", 501, privileged);
    exact(&mut ftp, "PORT 127,0,0,1,3,255", 501, privileged);
    exact(&mut ftp, "EPRT |1|127.0.0.1|25|", 501, privileged);
    exact(&mut ftp, "EPRT |2|::1|25|", 501, foreign);
    exact(&mut ftp, "PORT 127,0,0,2,0,25", 501, foreign);
    // Nothing was set up, so a transfer has nowhere to go.
    exact(&mut ftp, "RETR /ro/readme.txt", 425, "Use PORT, EPRT, PASV or EPSV first.");
    exact(&mut ftp, "STOR bounced.txt", 425, "Use PORT, EPRT, PASV or EPSV first.");
    std::thread::sleep(Duration::from_millis(200)); // time for a stray connection to arrive
    assert!(victim.accept().is_err(), "the server connected to 127.0.0.2");
    // The client's own address still works.
    let listener = ActiveListener::bind();
    exact(
        &mut ftp,
        &format!("PORT {}", listener.port_arg()),
        200,
        "PORT command successful. Consider using EPSV.",
    );
    ftp.expect("RETR /ro/readme.txt", 150);
    let data = listener.accept(Duration::from_secs(10));
    assert_eq!(read_all(data), RO_README);
    ftp.expect_final(226);
    assert_unchanged(&before, &server.paths, "bounce attempts");
}

#[test]
fn passive_connection_theft_from_another_address_fails() {
    let server = TestServer::start();
    let mut ftp = server.login();
    for command in ["EPSV", "PASV"] {
        let addr = if command == "EPSV" { ftp.epsv() } else { ftp.pasv() };
        // The thief connects first, before the client even asks for data.
        let mut thief = connect_from(THIEF, addr);
        ftp.expect("RETR /ro/readme.txt", 150);
        let data = connect_data(addr);
        assert_eq!(read_all(data), RO_README, "{command}: the real client's data");
        ftp.expect_final(226);
        // The thief got nothing but a closed connection.
        let mut stolen = Vec::new();
        let _ = thief.read_to_end(&mut stolen);
        assert!(stolen.is_empty(), "{command}: the thief received {} bytes", stolen.len());
    }
    // An upload: the thief tries to inject its content.
    let addr = ftp.epsv();
    let mut thief = connect_from(THIEF, addr);
    let _ = thief.write_all(b"injected by the thief");
    let _ = thief.shutdown(Shutdown::Write);
    ftp.expect("STOR mine.txt", 150);
    let mut data = connect_data(addr);
    data.write_all(b"the real upload").unwrap();
    drop(data);
    ftp.expect_final(226);
    assert_eq!(std::fs::read(server.paths.user("mine.txt")).unwrap(), b"the real upload");
    // After the transfer, the port is closed: a late thief finds nothing.
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
            || wait_until(Duration::from_secs(2), || TcpStream::connect(addr).is_err()),
        "the passive port still accepts connections after the transfer"
    );
}

/// The virtual path the server would resolve `arg` to from `cwd` (a model
/// of `..` handling, to predict each reply).
fn model(cwd: &str, arg: &str) -> String {
    let mut parts: Vec<&str> = if arg.starts_with('/') { Vec::new() } else { cwd.split('/').collect() };
    for c in arg.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

#[test]
fn dot_dot_in_every_position_never_leaves_the_root() {
    let server = TestServer::builder()
        .setup(|p| {
            std::fs::create_dir_all(p.user("a/b")).unwrap();
            std::fs::write(p.user("a/b/in.txt"), b"inside").unwrap();
            std::fs::write(p.user("top.txt"), b"top").unwrap();
        })
        .start();
    let before = snapshot(&server.paths);
    let mut ftp = server.login();
    exact(&mut ftp, "CWD /a/b", 250, "Directory successfully changed.");
    let dots =
        ["..", "../..", "../../..", "../../../../../../..", "./..", "../.", ".././..", "..//..", "..\\.."];
    let names = ["in.txt", "top.txt", "outside/secret.txt", "secret.txt", "b/in.txt", "a/b/in.txt"];
    let mut checked = 0;
    for d in dots {
        for name in names {
            let d = d.replace('\\', "/");
            for arg in [
                format!("{d}/{name}"),                // leading
                format!("/{d}/{name}"),               // after the root
                format!("a/{d}/{name}"),              // in the middle
                format!("/a/b/{d}/{name}"),           // in the middle, absolute
                format!("{name}/{d}"),                // trailing
                format!("{d}/a/{d}/b/{d}/{name}"),    // everywhere
                format!("/{d}/{d}/{name}/../{name}"), // after the name
            ] {
                let target = model("/a/b", &arg);
                let want: Option<&[u8]> = match target.as_str() {
                    "/a/b/in.txt" => Some(b"inside"),
                    "/top.txt" => Some(b"top"),
                    _ => None,
                };
                let (first, rest) = ftp.try_download(&format!("RETR {arg}"));
                match (want, rest) {
                    (Some(content), Some((data, last))) => {
                        assert_eq!(data, content, "RETR {arg}");
                        assert_eq!(last.code, 226, "RETR {arg}: {last}");
                    }
                    (None, None) => {
                        let text = if target.ends_with(".txt") {
                            "No such file or directory."
                        } else {
                            first.message()
                        };
                        assert_eq!(
                            (first.code, first.message()),
                            (550, text),
                            "RETR {arg} (resolves to {target})"
                        );
                    }
                    (want, rest) => {
                        panic!("RETR {arg} (→ {target}): expected {want:?}, got {first} {rest:?}")
                    }
                }
                checked += 1;
            }
        }
    }
    // The directory never moves above the root.
    for d in dots {
        let r = ftp.cmd(&format!("CWD {d}"));
        assert_eq!(r.code, 250, "CWD {d}: {r}");
        let want = model("/a/b", &d.replace('\\', "/"));
        assert_eq!(ftp.cmd("PWD").message(), format!("\"{want}\" is the current directory."), "CWD {d}");
        exact(&mut ftp, "CWD /a/b", 250, "Directory successfully changed.");
    }
    eprintln!("{checked} RETR paths with `..` checked");
    assert_unchanged(&before, &server.paths, "`..` in every position");
}

#[test]
fn a_symlink_to_the_system_root_leads_nowhere() {
    let server = TestServer::builder()
        .setup(|p| {
            symlink("/", p.user("slash")).unwrap();
            symlink("/", p.user("ro_link")).ok();
        })
        .start();
    let before = snapshot(&server.paths);
    let mut ftp = server.login();
    let denied = (550, "Permission denied.");
    for line in ["RETR slash/etc/passwd", "RETR slash/etc/hostname", "RETR slash/proc/self/environ"] {
        let (first, rest) = ftp.try_download(line);
        assert!(rest.is_none(), "`{line}` sent data");
        assert_eq!((first.code, first.message()), denied, "`{line}`");
    }
    for line in ["LIST slash", "NLST slash/", "MLSD slash", "LIST slash/etc"] {
        let (first, rest) = ftp.try_download(line);
        assert!(rest.is_none(), "`{line}` listed the system root");
        assert_eq!((first.code, first.message()), denied, "`{line}`");
    }
    for line in
        ["CWD slash", "CWD slash/etc", "SIZE slash/etc/passwd", "MDTM slash/etc/passwd", "MKD slash/tmp/x"]
    {
        let r = ftp.cmd(line);
        assert_eq!((r.code, r.message()), denied, "`{line}`");
    }
    let (first, rest) = ftp.try_upload("STOR slash/tmp/ferroftpd-escape.txt", b"escaped");
    assert!(rest.is_none(), "upload through a link to / accepted");
    assert_eq!((first.code, first.message()), denied);
    assert!(!Path::new("/tmp/ferroftpd-escape.txt").exists());
    exact(&mut ftp, "PWD", 257, "\"/\" is the current directory.");
    assert_unchanged(&before, &server.paths, "symlink to /");
}

/// A file replaced by a symlink to a secret while it is being downloaded:
/// the download goes on with the file that was opened, and the next one is
/// refused. A directory swapped for a symlink during an upload: the upload
/// cannot land outside.
#[test]
fn symlinks_swapped_in_during_transfers_lead_nowhere() {
    let big = random_bytes(16 * 1024 * 1024, 71);
    let content = big.clone();
    let server = TestServer::builder()
        .setup(move |p| {
            std::fs::write(p.user("victim.bin"), &content).unwrap();
            std::fs::create_dir(p.user("dir")).unwrap();
            std::fs::write(p.user("dir/old.txt"), b"old content").unwrap();
        })
        .start();
    let secret_path = server.paths.outside.join("secret.txt");
    let mut ftp = server.login();

    // Download: swap after the first bytes.
    let addr = ftp.epsv();
    let mut data = connect_data(addr);
    ftp.expect("RETR victim.bin", 150);
    let mut got = vec![0u8; 64 * 1024];
    data.read_exact(&mut got).unwrap();
    std::fs::rename(server.paths.user("victim.bin"), server.paths.user("moved.bin")).unwrap();
    symlink(&secret_path, server.paths.user("victim.bin")).unwrap();
    data.read_to_end(&mut got).unwrap();
    ftp.expect_final(226);
    assert!(got == big, "the download changed content mid-way ({} bytes)", got.len());
    assert!(!got.windows(SECRET.len()).any(|w| w == SECRET));
    let before = snapshot(&server.paths);
    let (first, rest) = ftp.try_download("RETR victim.bin");
    assert!(rest.is_none(), "the swapped-in link was followed");
    assert_eq!((first.code, first.message()), (550, "Permission denied."));

    // Upload replacing dir/old.txt: `dir` becomes a link to the outside
    // directory while the data flows.
    let addr = ftp.epsv();
    let mut data = connect_data(addr);
    ftp.expect("STOR dir/old.txt", 150);
    data.write_all(&random_bytes(256 * 1024, 72)).unwrap();
    std::fs::rename(server.paths.user("dir"), server.paths.user("dir.real")).unwrap();
    symlink(&server.paths.outside, server.paths.user("dir")).unwrap();
    data.write_all(&random_bytes(256 * 1024, 73)).unwrap();
    drop(data);
    // The upload lands in the directory it was opened in (now `dir.real`),
    // never behind the link.
    let last = ftp.read_reply();
    assert_eq!((last.code, last.message()), (226, "Transfer complete."), "commit after the swap");
    assert_eq!(std::fs::read(&secret_path).unwrap(), SECRET);
    assert_eq!(dir_names(&server.paths.outside), ["secret.txt"], "a file landed outside");
    assert_eq!(dir_names(&server.paths.user("dir.real")), ["old.txt"], "temporary files left behind");
    assert_eq!(std::fs::metadata(server.paths.user("dir.real/old.txt")).unwrap().len(), 512 * 1024);
    // And a new upload through the link is refused.
    let (first, rest) = ftp.try_upload("STOR dir/new.txt", b"through the link");
    assert!(rest.is_none());
    assert_eq!((first.code, first.message()), (550, "Permission denied."));
    let mut after = before.clone();
    after.retain(|(n, _)| !n.starts_with("user/dir"));
    let mut now = snapshot(&server.paths);
    now.retain(|(n, _)| !n.starts_with("user/dir"));
    assert_eq!(after, now, "something besides the swapped directory changed");
}

#[test]
fn control_characters_in_names_are_refused() {
    let server = TestServer::start();
    let before = snapshot(&server.paths);
    let mut ftp = server.login();
    let invalid = "invalid character in argument";
    for bytes in [
        &b"MKD a\0b\r\n"[..],
        b"MKD a\rb\r\n",
        b"MKD \ra\r\n",
        b"DELE x\0\r\n",
        b"RNFR \0\r\n",
        b"CWD \rsub\r\n",
        b"SIZE a\0/../../outside/secret.txt\r\n",
        b"MLST a\rb\r\n",
    ] {
        exact_raw(&mut ftp, bytes, 501, invalid);
    }
    // Uploads: refused before 150.
    for bytes in [&b"STOR a\0b\r\n"[..], b"STOR a\rb\r\n", b"APPE a\0\r\n"] {
        let addr = ftp.epsv();
        let _data = connect_data(addr);
        exact_raw(&mut ftp, bytes, 501, invalid);
    }
    // LF ends a line, whatever comes before it: `MKD a\nb` is two commands.
    ftp.send_bytes(b"NOOP\nXQZW b\r\n");
    assert_eq!(ftp.read_reply().code, 200);
    let r = ftp.read_reply();
    assert_eq!((r.code, r.message()), (500, "'XQZW' not understood"));
    exact(&mut ftp, "NOOP", 200, "NOOP ok.");
    assert_unchanged(&before, &server.paths, "control characters");
}

#[test]
fn very_long_names_and_paths_get_exact_replies() {
    let server = TestServer::builder().config(|c| c.limits.max_line_length = 16 * 1024).start();
    let before = snapshot(&server.paths);
    let mut ftp = server.login();
    let long_name = "n".repeat(256); // one byte over NAME_MAX
    let not_allowed = (553, "File name not allowed.");
    for line in [format!("MKD {long_name}"), format!("RNFR {long_name}"), format!("SIZE {long_name}")] {
        let r = ftp.cmd(&line);
        assert_eq!((r.code, r.message()), not_allowed, "{} ({} bytes)", &line[..4], line.len());
    }
    let (first, rest) = ftp.try_upload(&format!("STOR {long_name}"), b"x");
    assert!(rest.is_none());
    assert_eq!((first.code, first.message()), not_allowed, "STOR of a 256-byte name");
    let (first, rest) = ftp.try_download(&format!("RETR {long_name}"));
    assert!(rest.is_none());
    assert_eq!((first.code, first.message()), not_allowed, "RETR of a 256-byte name");
    // 255 bytes is still a name.
    let max_name = "m".repeat(255);
    exact(&mut ftp, &format!("MKD {max_name}"), 257, &format!("\"/{max_name}\" created."));
    exact(&mut ftp, &format!("RMD {max_name}"), 250, "Directory removed.");

    // A path over 4096 bytes, well under the line limit.
    let long_path = "d/".repeat(2100);
    let too_long = (501, "File name too long.");
    for line in [format!("CWD {long_path}"), format!("SIZE {long_path}"), format!("MKD {long_path}x")] {
        let r = ftp.cmd(&line);
        assert_eq!((r.code, r.message()), too_long, "{}… ({} bytes)", &line[..4], line.len());
    }
    let (first, _) = ftp.try_upload(&format!("STOR {long_path}x"), b"x");
    assert_eq!((first.code, first.message()), too_long);
    // `..` cannot shorten a long path below the limit on the way out.
    let r = ftp.cmd(&format!("CWD {}{}", "../".repeat(1400), "ro"));
    assert_eq!((r.code, r.message()), too_long, "a 4200-byte path of `..`");
    exact(&mut ftp, "PWD", 257, "\"/\" is the current directory.");
    assert_unchanged(&before, &server.paths, "long names");
}

#[test]
fn over_long_lines_get_500_exactly_once() {
    let server = TestServer::start();
    let mut ftp = server.connect();
    for len in [2049usize, 10_000, 1 << 20] {
        let line = format!("USER {}\r\n", "u".repeat(len));
        ftp.send_bytes(line.as_bytes());
        let r = ftp.read_reply();
        assert_eq!((r.code, r.message()), (500, "Command line too long."), "{len}-byte line");
        exact(&mut ftp, "NOOP", 200, "NOOP ok.");
    }
    // Just under the limit (2048 with CR LF not counted) is parsed.
    let name = "u".repeat(2048 - 5);
    exact(&mut ftp, &format!("USER {name}"), 331, "Please specify the password.");
}

#[test]
fn commands_before_login_get_530_and_touch_nothing() {
    let server = TestServer::builder().setup(|p| std::fs::write(p.user("f.txt"), b"f").unwrap()).start();
    let before = snapshot(&server.paths);
    let mut ftp = server.connect();
    let login = (530, "Please login with USER and PASS.");
    for line in [
        "RETR f.txt",
        "STOR new.txt",
        "APPE f.txt",
        "STOU",
        "LIST",
        "NLST",
        "MLSD",
        "MLST f.txt",
        "CWD /ro",
        "CDUP",
        "PWD",
        "MKD d",
        "RMD ro",
        "DELE f.txt",
        "RNFR f.txt",
        "RNTO g.txt",
        "SIZE f.txt",
        "MDTM f.txt",
        "MFMT 20000101000000 f.txt",
        "SITE CHMOD 777 f.txt",
        "STAT f.txt",
        "PASV",
        "EPSV",
        "PORT 127,0,0,1,100,100",
        "EPRT |1|127.0.0.1|25700|",
        "REST 10",
        "ALLO 100",
    ] {
        exact(&mut ftp, line, login.0, login.1);
    }
    exact(&mut ftp, "PASS secret", 503, "Login with USER first.");
    exact(&mut ftp, "USER alice", 331, "Please specify the password.");
    exact(&mut ftp, "RETR f.txt", login.0, login.1);
    assert_unchanged(&before, &server.paths, "commands before login");
}

#[test]
fn rename_and_restart_misuse() {
    let server = TestServer::builder()
        .setup(|p| {
            std::fs::write(p.user("a.txt"), b"0123456789").unwrap();
            std::fs::write(p.user("b.txt"), b"b").unwrap();
        })
        .start();
    let before = snapshot(&server.paths);
    let mut ftp = server.login();
    exact(&mut ftp, "RNTO b.txt", 503, "RNFR required first.");
    exact(&mut ftp, "RNFR a.txt", 350, "Ready for RNTO.");
    exact(&mut ftp, "NOOP", 200, "NOOP ok.");
    exact(&mut ftp, "RNTO b.txt", 503, "RNFR required first.");
    exact(&mut ftp, "RNFR missing.txt", 550, "No such file or directory.");
    exact(&mut ftp, "RNTO b.txt", 503, "RNFR required first.");
    // REST beyond the end: refused before any data, for RETR and STOR.
    exact(&mut ftp, "REST 11", 350, "Restarting at 11. Send STOR or RETR.");
    let (first, rest) = ftp.try_download("RETR a.txt");
    assert!(rest.is_none());
    assert_eq!((first.code, first.message()), (554, "Restart offset beyond end of file."));
    exact(
        &mut ftp,
        "REST 18446744073709551615",
        350,
        "Restarting at 18446744073709551615. Send STOR or RETR.",
    );
    let (first, rest) = ftp.try_upload("STOR a.txt", b"overwrite at a huge offset");
    assert!(rest.is_none());
    assert_eq!((first.code, first.message()), (554, "Restart offset beyond end of file."));
    exact(&mut ftp, "REST 18446744073709551616", 501, "REST needs a decimal byte offset");
    exact(&mut ftp, "REST -1", 501, "REST needs a decimal byte offset");
    // REST applies to one transfer: the next RETR is whole.
    assert_eq!(ftp.retr("a.txt"), b"0123456789");
    assert_unchanged(&before, &server.paths, "RNTO and REST misuse");
}

#[test]
fn read_only_mount_and_anonymous_refuse_every_write() {
    let server = TestServer::builder()
        .setup(|p| {
            std::fs::create_dir(p.ro_dir.join("sub")).unwrap();
            std::fs::write(p.share_dir.join("s.txt"), b"shared").unwrap();
        })
        .start();
    let before = snapshot(&server.paths);
    let denied = (550, "Permission denied.");
    let mut ftp = server.login();
    for (who, ftp) in [("alice in /ro", &mut ftp)] {
        for line in ["STOR /ro/new.txt", "STOR /ro/readme.txt", "APPE /ro/readme.txt", "STOU /ro/x"] {
            let (first, rest) = ftp.try_upload(line, b"written");
            assert!(rest.is_none(), "{who}: `{line}` accepted data");
            assert_eq!((first.code, first.message()), denied, "{who}: `{line}`");
        }
        for line in [
            "MKD /ro/d",
            "RMD /ro/sub",
            "DELE /ro/readme.txt",
            "RNFR /ro/readme.txt",
            "MFMT 20000101000000 /ro/readme.txt",
            "SITE CHMOD 777 /ro/readme.txt",
        ] {
            let r = ftp.cmd(line);
            assert_eq!((r.code, r.message()), denied, "{who}: `{line}`");
        }
        exact(ftp, "RNFR /share/s.txt", 350, "Ready for RNTO.");
        exact(ftp, "RNTO /ro/s.txt", 550, "Permission denied.");
        exact(ftp, "RNFR /ro/readme.txt", 550, "Permission denied.");
    }
    let mut anon = server.connect();
    anon.login("anonymous", "guest@example.com");
    for line in ["STOR new.txt", "STOR pub/hello.txt", "APPE pub/hello.txt", "STOU"] {
        let (first, rest) = anon.try_upload(line, b"written");
        assert!(rest.is_none(), "anonymous: `{line}` accepted data");
        assert_eq!((first.code, first.message()), denied, "anonymous: `{line}`");
    }
    for line in [
        "MKD d",
        "RMD pub",
        "DELE pub/hello.txt",
        "RNFR pub/hello.txt",
        "MFMT 20000101000000 pub/hello.txt",
        "SITE CHMOD 777 pub/hello.txt",
    ] {
        let r = anon.cmd(line);
        assert_eq!((r.code, r.message()), denied, "anonymous: `{line}`");
    }
    assert_eq!(anon.retr("pub/hello.txt"), HELLO);
    assert_unchanged(&before, &server.paths, "read-only mount and anonymous");
}
