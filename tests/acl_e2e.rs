//! Permission rules end to end: a real server, real clients (suppaftp, and
//! a raw control connection where exact reply codes matter), every
//! operation allowed and denied, and the three set-ups the rules exist for:
//! a drop box, one forbidden file in a writable tree, and anonymous
//! read-only access with one hidden upload directory.

mod common;

use std::io::Cursor;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::*;
use ferroftpd::config::{Config, RuleSpec};
use ferroftpd::perm::rules::parse_rule_text;
use ferroftpd::perm::Operation;
use suppaftp::{FtpError, FtpStream};

/// A rule for the configuration, from one line of TOML.
fn rule(text: &str) -> RuleSpec {
    parse_rule_text(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn add_rules(config: &mut Config, rules: &[String]) {
    config.acl.rule.extend(rules.iter().map(|r| rule(r)));
}

/// A suppaftp client with timeouts on every socket it opens.
fn suppa(server: &TestServer, user: &str, password: &str) -> FtpStream {
    let stream = TcpStream::connect_timeout(&server.addr, CONNECT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let ftp = FtpStream::connect_with_stream(stream).expect("greeting");
    let mut ftp = ftp.passive_stream_builder(|addr: SocketAddr| {
        assert!(addr.ip().is_loopback(), "server advertised non-loopback data address {addr}");
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(FtpError::ConnectionError)?;
        s.set_read_timeout(Some(Duration::from_secs(60))).map_err(FtpError::ConnectionError)?;
        s.set_write_timeout(Some(Duration::from_secs(60))).map_err(FtpError::ConnectionError)?;
        Ok(s)
    });
    ftp.login(user, password).unwrap_or_else(|e| panic!("{user} logs in: {e}"));
    ftp
}

/// The reply code inside a suppaftp error.
#[track_caller]
fn code<T: std::fmt::Debug>(result: Result<T, FtpError>) -> u32 {
    match result {
        Err(FtpError::UnexpectedResponse(r)) => r.status.code(),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

fn put(ftp: &mut FtpStream, path: &str, content: &[u8]) -> Result<u64, FtpError> {
    ftp.put_file(path, &mut Cursor::new(content.to_vec()))
}

fn get(ftp: &mut FtpStream, path: &str) -> Result<Vec<u8>, FtpError> {
    ftp.retr_as_buffer(path).map(|c| c.into_inner())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Every operation, allowed and denied, through the verb that asks for it.
/// alice may do nothing in her root except: in `allow-OP`, exactly OP; in
/// `deny-OP`, everything but OP. So each verb passes only if it asks for
/// the right operation on the right path.
#[test]
fn every_operation_allowed_and_denied() {
    let ops = Operation::ALL;
    let server = TestServer::builder()
        .setup(move |p| {
            for op in ops {
                for kind in ["allow", "deny"] {
                    let dir = p.user(&format!("{kind}-{op}"));
                    std::fs::create_dir_all(dir.join("d")).unwrap();
                    std::fs::write(dir.join("f"), b"0123456789").unwrap();
                }
            }
            std::fs::create_dir_all(p.user("src")).unwrap();
            std::fs::create_dir_all(p.user("into")).unwrap();
            for f in ["f1", "f2", "f3"] {
                std::fs::write(p.user("src").join(f), b"to be renamed").unwrap();
            }
        })
        .config(|c| c.permissions.default = ferroftpd::config::DefaultDecision::Deny)
        .config(move |c| {
            let root = display(&c.userdb.path.with_file_name("user"));
            let mut rules = vec![
                format!(r#"who = ["alice"], tree = "{root}", deny = ["full"]"#),
                format!(r#"who = ["alice"], tree = "{root}/src", allow = ["rename-from"]"#),
                // The directory alone: RNTO must ask rename-to of the directory, not of the new name.
                format!(r#"who = ["alice"], path = "{root}/into", allow = ["rename-to"]"#),
            ];
            for op in ops {
                rules.push(format!(r#"who = ["alice"], tree = "{root}/allow-{op}", only = ["{op}"]"#));
                let others: Vec<String> =
                    ops.iter().filter(|o| **o != op).map(|o| format!("\"{o}\"")).collect();
                rules.push(format!(
                    r#"who = ["alice"], tree = "{root}/deny-{op}", allow = [{}], deny = ["{op}"]"#,
                    others.join(", ")
                ));
            }
            add_rules(c, &rules);
        })
        .start();
    let mut ftp = server.login();
    let mut src = ["/src/f1", "/src/f2"].into_iter();

    for op in ops {
        for allowed in [true, false] {
            let dir = format!("/{}-{op}", if allowed { "allow" } else { "deny" });
            let (verb, code) = match op {
                Operation::List => {
                    let (first, rest) = ftp.try_download(&format!("LIST {dir}"));
                    ("LIST", rest.map_or(first.code, |(_, last)| last.code))
                }
                Operation::Read => {
                    let (first, rest) = ftp.try_download(&format!("RETR {dir}/f"));
                    ("RETR", rest.map_or(first.code, |(_, last)| last.code))
                }
                Operation::Write => {
                    let (first, last) = ftp.try_upload(&format!("STOR {dir}/new"), b"new");
                    ("STOR new", last.map_or(first.code, |l| l.code))
                }
                Operation::Overwrite => {
                    let (first, last) = ftp.try_upload(&format!("STOR {dir}/f"), b"replaced");
                    ("STOR existing", last.map_or(first.code, |l| l.code))
                }
                Operation::Append => {
                    let (first, last) = ftp.try_upload(&format!("APPE {dir}/f"), b"more");
                    ("APPE", last.map_or(first.code, |l| l.code))
                }
                Operation::Delete => ("DELE", ftp.cmd(&format!("DELE {dir}/f")).code),
                Operation::RenameFrom => {
                    let code = ftp.cmd(&format!("RNFR {dir}/f")).code;
                    if code == 350 {
                        ftp.expect("ABOR", 225); // forget the RNFR
                    }
                    ("RNFR", code)
                }
                Operation::RenameTo => {
                    let from = src.next().expect("a source file");
                    ftp.expect(&format!("RNFR {from}"), 350);
                    ("RNTO", ftp.cmd(&format!("RNTO {dir}/renamed")).code)
                }
                Operation::MakeDir => ("MKD", ftp.cmd(&format!("MKD {dir}/newdir")).code),
                Operation::RemoveDir => ("RMD", ftp.cmd(&format!("RMD {dir}/d")).code),
                Operation::ChangeDir => ("CWD", ftp.cmd(&format!("CWD {dir}")).code),
                Operation::Stat => {
                    let codes = ["SIZE", "MDTM", "MLST"].map(|v| ftp.cmd(&format!("{v} {dir}/f")).code);
                    let want = if allowed { [213, 213, 250] } else { [550; 3] };
                    assert_eq!(codes, want, "stat: SIZE, MDTM, MLST in {dir}");
                    ("SIZE/MDTM/MLST", codes[0])
                }
                Operation::SetTime => ("MFMT", ftp.cmd(&format!("MFMT 20200102030405 {dir}/f")).code),
                Operation::Chmod => ("SITE CHMOD", ftp.cmd(&format!("SITE CHMOD 600 {dir}/f")).code),
            };
            if allowed {
                assert!(
                    (200..300).contains(&code) || code == 350,
                    "{op}: {verb} in {dir} should succeed, got {code}"
                );
            } else {
                assert_eq!(code, 550, "{op}: {verb} in {dir} should be refused");
            }
        }
    }

    ftp.expect("RNFR /src/f3", 350);
    ftp.expect("RNTO /into/f3", 250);

    // What the allowed operations did, on disk; the refused ones left no trace.
    let user = |p: &str| server.paths.user(p);
    assert!(user("allow-write-new/new").exists() && !user("deny-write-new/new").exists());
    assert_eq!(std::fs::read(user("allow-overwrite/f")).unwrap(), b"replaced");
    assert_eq!(std::fs::read(user("deny-overwrite/f")).unwrap(), b"0123456789");
    assert_eq!(std::fs::read(user("allow-append/f")).unwrap(), b"0123456789more");
    assert!(!user("allow-delete/f").exists() && user("deny-delete/f").exists());
    assert!(user("allow-rename-to/renamed").exists() && !user("deny-rename-to/renamed").exists());
    assert!(user("allow-mkdir/newdir").is_dir() && !user("deny-mkdir/newdir").exists());
    assert!(!user("allow-rmdir/d").exists() && user("deny-rmdir/d").exists());
}

/// A drop box: bob can upload new files and do nothing else, not even see
/// what is there (his rule lives in the user database, with his account).
#[test]
fn drop_box_user_uploads_but_cannot_list_or_download() {
    let server = TestServer::builder()
        .setup(|p| std::fs::write(p.user("earlier.txt"), b"someone else's upload").unwrap())
        .alice(|a| {
            let root = display(&a.root);
            a.mounts.clear();
            a.rules = vec![format!(r#"{{ tree = "{root}", only = ["upload-only"] }}"#)];
        })
        .start();
    let mut ftp = suppa(&server, USER, PASSWORD);

    assert_eq!(put(&mut ftp, "report.pdf", b"%PDF drop").unwrap(), 9);
    assert_eq!(std::fs::read(server.paths.user("report.pdf")).unwrap(), b"%PDF drop");
    ftp.cwd("/").expect("chdir is part of upload-only");

    assert_eq!(code(ftp.list(None)), 550);
    assert_eq!(code(ftp.nlst(None)), 550);
    assert_eq!(code(ftp.mlsd(None)), 550);
    assert_eq!(code(get(&mut ftp, "report.pdf")), 550);
    assert_eq!(code(get(&mut ftp, "earlier.txt")), 550);
    assert_eq!(code(ftp.size("earlier.txt")), 550, "not even its size");
    assert_eq!(code(ftp.mdtm("earlier.txt")), 550);
    assert_eq!(code(put(&mut ftp, "earlier.txt", b"overwritten")), 550, "no overwrite");
    assert_eq!(code(ftp.append_file("earlier.txt", &mut Cursor::new(b"x".to_vec()))), 550);
    assert_eq!(code(ftp.rm("earlier.txt")), 550);
    assert_eq!(code(ftp.rename("earlier.txt", "mine.txt")), 550);
    assert_eq!(code(ftp.mkdir("sub")), 550);
    assert_eq!(std::fs::read(server.paths.user("earlier.txt")).unwrap(), b"someone else's upload");
    let _ = ftp.quit();
}

/// alice may do anything in her tree except touch one file, which she
/// does not even see.
#[test]
fn one_file_denied_inside_a_writable_tree() {
    let server = TestServer::builder()
        .setup(|p| {
            std::fs::create_dir(p.user("docs")).unwrap();
            std::fs::write(p.user("docs/secret.txt"), b"classified").unwrap();
            std::fs::write(p.user("docs/notes.txt"), b"notes").unwrap();
        })
        .config(|c| {
            let secret = display(&c.userdb.path.with_file_name("user").join("docs/secret.txt"));
            add_rules(c, &[format!(r#"who = ["alice"], path = "{secret}", deny = ["full"]"#)]);
        })
        .start();
    let mut ftp = suppa(&server, USER, PASSWORD);

    let mut names = ftp.nlst(Some("/docs")).unwrap();
    names.sort();
    assert_eq!(names, ["notes.txt"], "the denied file is hidden");
    let list = ftp.list(Some("/docs")).unwrap().join("\n");
    assert!(list.contains("notes.txt") && !list.contains("secret"), "{list}");
    let mlsd = ftp.mlsd(Some("/docs")).unwrap();
    assert!(mlsd.iter().any(|l| l.ends_with(" notes.txt")), "{mlsd:?}");
    assert!(mlsd.iter().all(|l| !l.contains("secret")), "{mlsd:?}");

    assert_eq!(code(get(&mut ftp, "/docs/secret.txt")), 550);
    assert_eq!(code(ftp.size("/docs/secret.txt")), 550);
    assert_eq!(code(put(&mut ftp, "/docs/secret.txt", b"mine now")), 550);
    assert_eq!(code(ftp.append_file("/docs/secret.txt", &mut Cursor::new(b"x".to_vec()))), 550);
    assert_eq!(code(ftp.rm("/docs/secret.txt")), 550);
    assert_eq!(code(ftp.rename("/docs/secret.txt", "/docs/public.txt")), 550);
    // Renaming another file over it is an overwrite of it: refused too.
    assert_eq!(code(ftp.rename("/docs/notes.txt", "/docs/secret.txt")), 550);
    assert_eq!(
        code(ftp.custom_command("MFMT 20200101000000 /docs/secret.txt", &[suppaftp::Status::File])),
        550
    );
    assert_eq!(code(ftp.site("CHMOD 777 /docs/secret.txt")), 550);
    assert_eq!(std::fs::read(server.paths.user("docs/secret.txt")).unwrap(), b"classified");

    // Everything else in the tree works.
    assert_eq!(get(&mut ftp, "/docs/notes.txt").unwrap(), b"notes");
    put(&mut ftp, "/docs/new.txt", b"new").unwrap();
    put(&mut ftp, "/docs/new.txt", b"newer").unwrap();
    ftp.append_file("/docs/new.txt", &mut Cursor::new(b"!".to_vec())).unwrap();
    assert_eq!(ftp.size("/docs/new.txt").unwrap(), 6);
    ftp.rename("/docs/new.txt", "/docs/renamed.txt").unwrap();
    ftp.mkdir("/docs/sub").unwrap();
    ftp.rmdir("/docs/sub").unwrap();
    ftp.rm("/docs/renamed.txt").unwrap();
    ftp.cwd("/docs").unwrap();
    let _ = ftp.quit();
}

/// Anonymous users read everything, upload into /incoming, and cannot see
/// what is in /incoming (not even what they uploaded themselves).
#[test]
fn anonymous_read_only_with_a_hidden_upload_directory() {
    let server = TestServer::builder()
        .setup(|p| {
            std::fs::create_dir(p.anon_root.join("incoming")).unwrap();
            std::fs::write(p.anon_root.join("incoming/earlier.bin"), b"earlier").unwrap();
        })
        .config(|c| {
            let incoming = display(&c.anonymous.root.join("incoming"));
            add_rules(
                c,
                &[
                    format!(r#"who = ["anonymous"], tree = "{incoming}", only = ["upload-only"]"#),
                    // The directory itself stays visible in listings of /.
                    format!(r#"who = ["anonymous"], path = "{incoming}", allow = ["stat"]"#),
                ],
            );
        })
        .start();
    let mut ftp = suppa(&server, "anonymous", "guest@example.org");

    let mut root = ftp.nlst(None).unwrap();
    root.sort();
    assert_eq!(root, ["incoming", "pub"]);
    assert_eq!(get(&mut ftp, "/pub/hello.txt").unwrap(), HELLO);
    assert_eq!(code(put(&mut ftp, "/pub/mine.txt", b"x")), 550, "read-only outside incoming");
    assert_eq!(code(ftp.mkdir("/pub/d")), 550);

    ftp.cwd("/incoming").unwrap();
    put(&mut ftp, "upload.bin", b"anonymous upload").unwrap();
    assert_eq!(std::fs::read(server.anon("incoming/upload.bin")).unwrap(), b"anonymous upload");
    assert_eq!(code(ftp.list(None)), 550);
    assert_eq!(code(ftp.nlst(Some("/incoming"))), 550);
    assert_eq!(code(ftp.mlsd(Some("/incoming"))), 550);
    for name in ["upload.bin", "earlier.bin"] {
        assert_eq!(code(get(&mut ftp, name)), 550, "{name}");
        assert_eq!(code(ftp.size(name)), 550, "{name}");
        assert_eq!(code(put(&mut ftp, name, b"overwrite")), 550, "{name}");
        assert_eq!(code(ftp.rm(name)), 550, "{name}");
    }
    assert_eq!(code(ftp.mkdir("sub")), 550);
    assert_eq!(std::fs::read(server.anon("incoming/earlier.bin")).unwrap(), b"earlier");
    let _ = ftp.quit();
}

/// A rule names a real directory: it protects it through every virtual
/// directory that reaches it.
#[test]
fn a_rule_protects_a_directory_through_every_mount() {
    let server = TestServer::builder()
        .setup(|p| {
            std::fs::create_dir(p.share_dir.join("locked")).unwrap();
            std::fs::write(p.share_dir.join("locked/f.txt"), b"locked").unwrap();
        })
        .alice(|a| {
            let share = a.mounts.iter().find(|m| m.virtual_path == "/share").unwrap().real_path.clone();
            a.mounts.push(ferroftpd::vfs::MountSpec {
                virtual_path: "/again".into(),
                real_path: share,
                read_only: false,
            });
        })
        .config(|c| {
            let locked = display(&c.userdb.path.with_file_name("share").join("locked"));
            add_rules(c, &[format!(r#"who = ["*"], tree = "{locked}", deny = ["read", "delete"]"#)]);
        })
        .start();
    let mut ftp = suppa(&server, USER, PASSWORD);
    for path in ["/share/locked/f.txt", "/again/locked/f.txt"] {
        assert_eq!(code(get(&mut ftp, path)), 550, "{path}");
        assert_eq!(code(ftp.rm(path)), 550, "{path}");
    }
    assert_eq!(ftp.size("/again/locked/f.txt").unwrap(), 6, "what the rule does not name stays allowed");
    let _ = ftp.quit();
}

trait AnonPath {
    fn anon(&self, rel: &str) -> std::path::PathBuf;
}

impl AnonPath for TestServer {
    fn anon(&self, rel: &str) -> std::path::PathBuf {
        self.paths.anon_root.join(rel)
    }
}
