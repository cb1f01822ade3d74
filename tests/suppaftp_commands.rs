//! The whole command set against a running server, through the `suppaftp`
//! client where it has an API and through a raw control connection where
//! exact reply codes matter (or where a client would block).

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};
use common::*;
use suppaftp::{FtpError, FtpStream, Mode};

/// A suppaftp client with timeouts on every socket it opens.
fn suppa(server: &TestServer) -> FtpStream {
    let stream = TcpStream::connect_timeout(&server.addr, CONNECT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let ftp = FtpStream::connect_with_stream(stream).expect("greeting");
    ftp.passive_stream_builder(|addr: SocketAddr| {
        assert!(addr.ip().is_loopback(), "server advertised non-loopback data address {addr}");
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(FtpError::ConnectionError)?;
        s.set_read_timeout(Some(Duration::from_secs(60))).map_err(FtpError::ConnectionError)?;
        s.set_write_timeout(Some(Duration::from_secs(60))).map_err(FtpError::ConnectionError)?;
        Ok(s)
    })
}

fn suppa_login(server: &TestServer) -> FtpStream {
    let mut ftp = suppa(server);
    ftp.login(USER, PASSWORD).expect("alice logs in");
    ftp
}

/// The reply code inside a suppaftp error.
fn error_code<T: std::fmt::Debug>(result: Result<T, FtpError>) -> u32 {
    match result {
        Err(FtpError::UnexpectedResponse(r)) => r.status.code(),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

fn get(ftp: &mut FtpStream, path: &str) -> Vec<u8> {
    ftp.retr_as_buffer(path).unwrap_or_else(|e| panic!("RETR {path}: {e}")).into_inner()
}

/// Parses an MLSx line into its facts (lower-cased names) and the name.
fn parse_mlsx(line: &str) -> (std::collections::HashMap<String, String>, String) {
    let (facts, name) = line.split_once(' ').unwrap_or_else(|| panic!("no space in MLSx line {line:?}"));
    let mut map = std::collections::HashMap::new();
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (k, v) = fact.split_once('=').unwrap_or_else(|| panic!("bad fact {fact:?} in {line:?}"));
        map.insert(k.to_ascii_lowercase(), v.to_string());
    }
    (map, name.to_string())
}

/// Parses `YYYYMMDDHHMMSS[.sss]` (UTC).
fn parse_time(text: &str) -> DateTime<Utc> {
    let whole = text.split('.').next().unwrap();
    NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .unwrap_or_else(|e| panic!("bad FTP time {text:?}: {e}"))
        .and_utc()
}

fn assert_time_close(ftp_time: &str, real: SystemTime, what: &str) {
    let got = parse_time(ftp_time);
    let want = DateTime::<Utc>::from(real);
    let diff = (got - want).num_milliseconds().abs();
    assert!(diff < 1000, "{what}: server says {got} (from {ftp_time:?}), file mtime is {want} (UTC)");
}

#[test]
fn login_wrong_password_and_anonymous() {
    let server = TestServer::start();

    let mut ftp = suppa(&server);
    assert_eq!(error_code(ftp.login(USER, "wrong")), 530);
    // The connection stays usable after one failure.
    ftp.login(USER, PASSWORD).expect("right password after a wrong one");
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.quit().unwrap();

    // Unknown users get the same 530.
    let mut ftp = suppa(&server);
    assert_eq!(error_code(ftp.login("nobody", "x")), 530);

    // PASS without USER.
    let mut raw = server.connect();
    raw.expect("PASS secret", 503);
    // Commands that need a login are refused before it.
    raw.expect("PWD", 530);
    raw.expect("RETR x", 530);
    raw.expect("LIST", 530);

    // Anonymous: read-only view of the anonymous root.
    let mut anon = suppa(&server);
    anon.login("anonymous", "guest@example.com").expect("anonymous login");
    assert_eq!(get(&mut anon, "pub/hello.txt"), HELLO);
    let names = anon.nlst(Some("pub")).unwrap();
    assert!(names.iter().any(|n| n.ends_with("hello.txt")), "{names:?}");
    assert_eq!(error_code(anon.put_file("pub/new.txt", &mut Cursor::new(b"x".to_vec()))), 550);
    assert_eq!(error_code(anon.mkdir("newdir")), 550);
    assert_eq!(error_code(anon.rm("pub/hello.txt")), 550);
    assert!(!server.paths.anon_root.join("pub/new.txt").exists());
    assert!(server.paths.anon_root.join("pub/hello.txt").exists());
    // `ftp` is anonymous too.
    let mut ftp_user = suppa(&server);
    ftp_user.login("ftp", "x").expect("`ftp` logs in anonymously");
    assert_eq!(get(&mut ftp_user, "/pub/hello.txt"), HELLO);
}

#[test]
fn navigation_pwd_cwd_cdup_and_x_aliases() {
    let server = TestServer::start();
    std::fs::create_dir_all(server.paths.user("a/b")).unwrap();
    std::fs::write(server.paths.user("a/file.txt"), b"f").unwrap();
    let mut ftp = suppa_login(&server);
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.cwd("a").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/a");
    ftp.cwd("b").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/a/b");
    ftp.cdup().unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/a");
    ftp.cwd("/").unwrap();
    ftp.cwd("a/b/../b/./").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/a/b");
    assert_eq!(error_code(ftp.cwd("/missing")), 550);
    assert_eq!(error_code(ftp.cwd("/a/file.txt")), 550);
    assert_eq!(ftp.pwd().unwrap(), "/a/b", "a failed CWD leaves the directory unchanged");
    // Mount points are directories like any other.
    ftp.cwd("/share").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/share");
    ftp.cwd("/ro").unwrap();
    ftp.cdup().unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/");

    let mut raw = server.login();
    let r = raw.expect("XPWD", 257);
    assert!(r.text().contains("\"/\""), "{r}");
    raw.expect("XCWD a", 250);
    let r = raw.expect("PWD", 257);
    assert!(r.text().contains("\"/a\""), "{r}");
    raw.expect("XMKD x", 257);
    assert!(server.paths.user("a/x").is_dir());
    raw.expect("XRMD x", 250);
    assert!(!server.paths.user("a/x").exists());
    raw.expect("XCUP", 250);
    let r = raw.expect("XPWD", 257);
    assert!(r.text().contains("\"/\""), "{r}");
    raw.expect("CDUP", 250);
    let r = raw.expect("PWD", 257);
    assert!(r.text().starts_with("257 \"/\""), "CDUP at / stays at /: {r}");
    // CWD without an argument is a syntax error.
    raw.expect("CWD", 501);
}

#[test]
fn mkd_rmd_dele_rename() {
    let server = TestServer::start();
    let mut ftp = suppa_login(&server);

    ftp.mkdir("dir").unwrap();
    assert!(server.paths.user("dir").is_dir());
    assert_eq!(error_code(ftp.mkdir("dir")), 550, "MKD of an existing directory");
    let mut raw = server.login();
    let r = raw.expect("MKD dir2", 257);
    assert!(r.text().contains("\"/dir2\""), "MKD reply quotes the new path: {r}");
    let r = raw.expect("MKD we\"ird", 257);
    assert!(r.text().contains("\"/we\"\"ird\""), "a quote in a 257 path is doubled: {r}");
    assert!(server.paths.user("we\"ird").is_dir());

    std::fs::write(server.paths.user("dir/f.txt"), b"content").unwrap();
    assert_eq!(error_code(ftp.rmdir("dir")), 550, "RMD of a non-empty directory");
    assert!(server.paths.user("dir/f.txt").exists());
    assert_eq!(error_code(ftp.rmdir("dir/f.txt")), 550, "RMD of a file");
    assert_eq!(error_code(ftp.rm("dir")), 550, "DELE of a directory");
    assert!(server.paths.user("dir").is_dir());

    ftp.rename("dir/f.txt", "g.txt").unwrap();
    assert!(!server.paths.user("dir/f.txt").exists());
    assert_eq!(std::fs::read(server.paths.user("g.txt")).unwrap(), b"content");
    // Rename over an existing file replaces it.
    std::fs::write(server.paths.user("h.txt"), b"old").unwrap();
    ftp.rename("g.txt", "h.txt").unwrap();
    assert_eq!(std::fs::read(server.paths.user("h.txt")).unwrap(), b"content");
    // Rename a directory.
    ftp.rename("dir", "dir-renamed").unwrap();
    assert!(server.paths.user("dir-renamed").is_dir());

    ftp.rm("h.txt").unwrap();
    assert!(!server.paths.user("h.txt").exists());
    assert_eq!(error_code(ftp.rm("h.txt")), 550, "DELE of a missing file");
    ftp.rmdir("dir-renamed").unwrap();
    assert!(!server.paths.user("dir-renamed").exists());

    // RNTO must follow RNFR.
    raw.expect("RNTO anything", 503);
    raw.expect("RNFR missing.txt", 550);
    raw.expect("RNTO anything", 503);
    std::fs::write(server.paths.user("r.txt"), b"r").unwrap();
    raw.expect("RNFR r.txt", 350);
    raw.expect("NOOP", 200);
    raw.expect("RNTO s.txt", 503);
    assert!(server.paths.user("r.txt").exists(), "RNTO after another command renamed anyway");
    raw.expect("RNFR r.txt", 350);
    raw.expect("RNTO s.txt", 250);
    assert!(server.paths.user("s.txt").exists());
}

#[test]
fn read_only_mount_refuses_changes_and_share_accepts_them() {
    let server = TestServer::start();
    let mut ftp = suppa_login(&server);
    assert_eq!(get(&mut ftp, "/ro/readme.txt"), RO_README);
    assert_eq!(error_code(ftp.put_file("/ro/new.txt", &mut Cursor::new(b"x".to_vec()))), 550);
    assert_eq!(error_code(ftp.put_file("/ro/readme.txt", &mut Cursor::new(b"x".to_vec()))), 550);
    assert_eq!(error_code(ftp.rm("/ro/readme.txt")), 550);
    assert_eq!(error_code(ftp.mkdir("/ro/sub")), 550);
    assert_eq!(error_code(ftp.rename("/ro/readme.txt", "/ro/other.txt")), 550);
    assert_eq!(std::fs::read(server.paths.ro_dir.join("readme.txt")).unwrap(), RO_README);
    assert_eq!(dir_names(&server.paths.ro_dir), ["readme.txt"]);
    // The mount points themselves cannot be removed or renamed.
    assert!(error_code(ftp.rmdir("/share")) >= 500);
    assert!(error_code(ftp.rename("/share", "/share2")) >= 500);

    ftp.put_file("/share/new.txt", &mut Cursor::new(b"shared".to_vec())).unwrap();
    assert_eq!(std::fs::read(server.paths.share_dir.join("new.txt")).unwrap(), b"shared");
    ftp.mkdir("/share/sub").unwrap();
    assert!(server.paths.share_dir.join("sub").is_dir());
    // Renames across mounts are refused (different storage).
    assert!(error_code(ftp.rename("/share/new.txt", "/moved.txt")) >= 500);
    assert!(server.paths.share_dir.join("new.txt").exists());
}

#[test]
fn listings_list_nlst_mlsd_mlst() {
    let server = TestServer::start();
    let content = random_bytes(12345, 1);
    std::fs::write(server.paths.user("data.bin"), &content).unwrap();
    std::fs::write(server.paths.user("other.txt"), b"12").unwrap();
    std::fs::create_dir(server.paths.user("sub")).unwrap();
    let mut ftp = suppa_login(&server);

    let list = ftp.list(None).unwrap();
    for name in ["data.bin", "other.txt", "sub", "ro", "share"] {
        assert!(list.iter().any(|l| l.ends_with(&format!(" {name}"))), "LIST lacks {name}: {list:#?}");
    }
    let data_line = list.iter().find(|l| l.ends_with(" data.bin")).unwrap();
    assert!(data_line.starts_with('-'), "{data_line}");
    assert!(data_line.split_whitespace().any(|w| w == "12345"), "size in LIST line: {data_line}");
    let sub_line = list.iter().find(|l| l.ends_with(" sub")).unwrap();
    assert!(sub_line.starts_with('d'), "{sub_line}");
    // LIST parses as `ls -l` for clients.
    for line in &list {
        line.parse::<suppaftp::list::File>()
            .unwrap_or_else(|e| panic!("unparsable LIST line {line:?}: {e:?}"));
    }
    // `ls` options are ignored.
    let list_la = ftp.list(Some("-la")).unwrap();
    assert!(list_la.iter().any(|l| l.ends_with(" data.bin")), "{list_la:#?}");
    // LIST of a file lists that file.
    let one = ftp.list(Some("data.bin")).unwrap();
    assert_eq!(one.len(), 1, "{one:?}");
    assert!(one[0].ends_with(" data.bin"));

    let mut nlst = ftp.nlst(None).unwrap();
    nlst.sort();
    assert_eq!(nlst, ["data.bin", "other.txt", "ro", "share", "sub"]);
    let mut globbed = ftp.nlst(Some("*.txt")).unwrap();
    globbed.sort();
    assert!(globbed.iter().all(|n| n.ends_with("other.txt")) && globbed.len() == 1, "{globbed:?}");

    let mlsd = ftp.mlsd(None).unwrap();
    let entries: Vec<_> = mlsd.iter().map(|l| parse_mlsx(l)).collect();
    let find = |name: &str| {
        entries
            .iter()
            .find(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("MLSD lacks {name}: {mlsd:#?}"))
            .0
            .clone()
    };
    let data = find("data.bin");
    assert_eq!(data["type"], "file");
    assert_eq!(data["size"], "12345");
    assert_time_close(&data["modify"], mtime(&server.paths.user("data.bin")), "MLSD modify of data.bin");
    for letter in ['r', 'w', 'a', 'd', 'f'] {
        assert!(data["perm"].contains(letter), "perm of a writable file lacks {letter}: {data:?}");
    }
    assert!(!data["unique"].is_empty());
    let other = find("other.txt");
    assert_eq!(other["size"], "2");
    assert_ne!(other["unique"], data["unique"], "unique facts must differ between files");
    let sub = find("sub");
    assert_eq!(sub["type"], "dir");
    for letter in ['e', 'l', 'c', 'm'] {
        assert!(sub["perm"].contains(letter), "perm of a writable dir lacks {letter}: {sub:?}");
    }
    let ro = find("ro");
    assert_eq!(ro["type"], "dir");
    for letter in ['c', 'm', 'd', 'f', 'p'] {
        assert!(!ro["perm"].contains(letter), "read-only mount advertises {letter}: {ro:?}");
    }
    assert!(ro["perm"].contains('e') && ro["perm"].contains('l'), "{ro:?}");
    assert_eq!(find("share")["type"], "dir");
    assert!(
        entries.iter().all(
            |(f, _)| !matches!(f.get("type").map(String::as_str), Some("file")) || f.contains_key("size")
        ),
        "every file has a size fact: {mlsd:#?}"
    );

    // Inside the read-only mount, files are read-only.
    let ro_list = ftp.mlsd(Some("/ro")).unwrap();
    let (readme, name) =
        parse_mlsx(ro_list.iter().find(|l| l.ends_with(" readme.txt")).expect("readme in /ro"));
    assert_eq!(name, "readme.txt");
    assert_eq!(readme["size"], RO_README.len().to_string());
    assert!(readme["perm"].contains('r'));
    for letter in ['w', 'a', 'd', 'f'] {
        assert!(!readme["perm"].contains(letter), "read-only file advertises {letter}: {readme:?}");
    }

    // MLST: facts for one path over the control connection.
    let line = ftp.mlst(Some("data.bin")).unwrap();
    let (facts, name) = parse_mlsx(&line);
    assert!(name == "/data.bin" || name == "data.bin", "MLST names the path: {line}");
    assert_eq!(facts["type"], "file");
    assert_eq!(facts["size"], "12345");
    assert_time_close(&facts["modify"], mtime(&server.paths.user("data.bin")), "MLST modify");
    let (dir, _) = parse_mlsx(&ftp.mlst(Some("sub")).unwrap());
    assert_eq!(dir["type"], "dir");
    let (cwd, _) = parse_mlsx(&ftp.mlst(None).unwrap());
    assert_eq!(cwd["type"], "dir");
    let mut raw = server.login();
    raw.expect("MLST missing.txt", 550);
    // MLSD of a file is an error (RFC 3659).
    raw.epsv();
    let r = raw.cmd("MLSD data.bin");
    assert!(r.code == 501 || r.code == 550, "MLSD of a file: {r}");
    // LIST of a missing path.
    let (first, _) = raw.try_download("LIST missing-dir");
    assert_eq!(first.code, 550, "LIST of a missing path: {first}");
}

#[test]
fn size_mdtm_mfmt() {
    let server = TestServer::start();
    std::fs::write(server.paths.user("f.bin"), random_bytes(4321, 2)).unwrap();
    std::fs::create_dir(server.paths.user("d")).unwrap();
    let mut ftp = suppa_login(&server);
    assert_eq!(ftp.size("f.bin").unwrap(), 4321);
    assert_eq!(error_code(ftp.size("missing")), 550);
    assert_eq!(error_code(ftp.size("d")), 550, "SIZE of a directory");

    let mut raw = server.login();
    let r = raw.expect("MDTM f.bin", 213);
    assert_time_close(r.message(), mtime(&server.paths.user("f.bin")), "MDTM");
    raw.expect("MDTM missing", 550);

    let r = raw.expect("MFMT 20200102030405 f.bin", 213);
    assert!(r.text().contains("Modify=20200102030405"), "{r}");
    let r = raw.expect("MDTM f.bin", 213);
    assert_eq!(r.message(), "20200102030405");
    let expected = parse_time("20200102030405");
    assert_eq!(
        DateTime::<Utc>::from(mtime(&server.paths.user("f.bin"))),
        expected,
        "MFMT sets the real mtime"
    );
    let via_suppa = ftp.mdtm("f.bin").unwrap();
    assert_eq!(via_suppa.and_utc(), expected);
    raw.expect("MFMT 20200102030405 missing", 550);
    let r = raw.cmd("MFMT notatime f.bin");
    assert_eq!(r.code, 501, "MFMT with a bad time: {r}");
    // The read-only mount refuses MFMT.
    raw.expect("MFMT 20200102030405 /ro/readme.txt", 550);
}

#[test]
fn retr_stor_appe_stou() {
    let server = TestServer::start();
    let mut ftp = suppa_login(&server);
    let content = random_bytes(300_000, 3);
    let n = ftp.put_file("up.bin", &mut Cursor::new(content.clone())).unwrap();
    assert_eq!(n, content.len() as u64);
    assert_eq!(std::fs::read(server.paths.user("up.bin")).unwrap(), content);
    assert_eq!(get(&mut ftp, "up.bin"), content);

    // STOR over an existing file replaces it.
    ftp.put_file("up.bin", &mut Cursor::new(b"short".to_vec())).unwrap();
    assert_eq!(std::fs::read(server.paths.user("up.bin")).unwrap(), b"short");

    // APPE appends, and creates a missing file.
    ftp.append_file("up.bin", &mut Cursor::new(b" and more".to_vec())).unwrap();
    assert_eq!(std::fs::read(server.paths.user("up.bin")).unwrap(), b"short and more");
    ftp.append_file("new-by-appe.txt", &mut Cursor::new(b"fresh".to_vec())).unwrap();
    assert_eq!(std::fs::read(server.paths.user("new-by-appe.txt")).unwrap(), b"fresh");

    // Empty files.
    ftp.put_file("empty", &mut Cursor::new(Vec::new())).unwrap();
    assert_eq!(std::fs::metadata(server.paths.user("empty")).unwrap().len(), 0);
    assert!(get(&mut ftp, "empty").is_empty());

    // RETR errors.
    assert_eq!(error_code(ftp.retr_as_buffer("missing")), 550);
    std::fs::create_dir(server.paths.user("adir")).unwrap();
    assert_eq!(error_code(ftp.retr_as_buffer("adir")), 550);
    // STOR onto a directory.
    assert_eq!(error_code(ftp.put_file("adir", &mut Cursor::new(b"x".to_vec()))), 550);

    // STOU: a new unique name, reported in the 150 (and 226) reply.
    let mut raw = server.login();
    let (first, last) = raw.upload("STOU", b"unique one");
    assert_eq!(last.code, 226, "{last}");
    let name = first
        .text()
        .split("FILE: ")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("STOU 150 reply should name the file (`150 FILE: name`): {first}"));
    assert_eq!(std::fs::read(server.paths.user(&name)).unwrap(), b"unique one");
    let (first2, last2) = raw.upload("STOU", b"unique two");
    assert_eq!(last2.code, 226);
    let name2 = first2.text().split("FILE: ").nth(1).unwrap().trim().to_string();
    assert_ne!(name, name2, "STOU chose the same name twice");
    assert_eq!(std::fs::read(server.paths.user(&name)).unwrap(), b"unique one", "STOU overwrote");
    // STOU with a hint that exists picks another name.
    std::fs::write(server.paths.user("hint.txt"), b"keep").unwrap();
    let (first3, last3) = raw.upload("STOU hint.txt", b"third");
    assert_eq!(last3.code, 226);
    let name3 = first3.text().split("FILE: ").nth(1).unwrap().trim().to_string();
    assert_ne!(name3, "hint.txt");
    assert_eq!(std::fs::read(server.paths.user("hint.txt")).unwrap(), b"keep");
    assert_eq!(std::fs::read(server.paths.user(&name3)).unwrap(), b"third");

    // A transfer command without PASV/PORT first.
    raw.expect("RETR up.bin", 425);
}

#[test]
fn rest_resume_for_retr_and_stor() {
    let server = TestServer::start();
    let content = random_bytes(100_000, 4);
    std::fs::write(server.paths.user("whole.bin"), &content).unwrap();
    let mut ftp = suppa_login(&server);

    // REST + RETR: the tail.
    ftp.resume_transfer(40_000).unwrap();
    let tail = get(&mut ftp, "whole.bin");
    assert_eq!(tail.len(), 60_000);
    assert_eq!(tail, &content[40_000..]);
    // REST applies to one transfer only.
    assert_eq!(get(&mut ftp, "whole.bin"), content);

    // REST + STOR: upload half, then the rest from where it stopped.
    ftp.put_file("resumed.bin", &mut Cursor::new(content[..30_000].to_vec())).unwrap();
    let have = ftp.size("resumed.bin").unwrap();
    assert_eq!(have, 30_000);
    ftp.resume_transfer(have).unwrap();
    ftp.put_file("resumed.bin", &mut Cursor::new(content[have..].to_vec())).unwrap();
    assert_eq!(std::fs::read(server.paths.user("resumed.bin")).unwrap(), content);

    let mut raw = server.login();
    raw.expect("REST 5", 350);
    let data = raw.retr("whole.bin");
    assert_eq!(data, &content[5..]);
    // REST beyond the end.
    raw.expect("REST 999999999", 350);
    raw.epsv();
    let r = raw.cmd("RETR whole.bin");
    assert!(r.code == 554 || r.code == 551 || r.code == 550, "RETR with REST beyond EOF: {r}");
    raw.expect("REST abc", 501);
}

#[test]
fn ascii_type_converts_line_endings_both_ways() {
    let server = TestServer::start();
    std::fs::write(server.paths.user("unix.txt"), b"x\ny\n").unwrap();
    std::fs::write(server.paths.user("dos.txt"), b"p\r\nq\r\n").unwrap();
    let mut raw = server.login();
    raw.expect("TYPE A", 200);
    raw.stor("up.txt", b"a\r\nb\r\n");
    assert_eq!(std::fs::read(server.paths.user("up.txt")).unwrap(), b"a\nb\n");
    assert_eq!(raw.retr("unix.txt"), b"x\r\ny\r\n");
    // Existing CR LF is not doubled.
    assert_eq!(raw.retr("dos.txt"), b"p\r\nq\r\n");
    // Listings are the same in either type.
    let list = raw.listing("NLST");
    assert!(list.contains("unix.txt\r\n"), "{list:?}");
    raw.expect("TYPE I", 200);
    assert_eq!(raw.retr("unix.txt"), b"x\ny\n");
    raw.stor("bin.txt", b"a\r\nb\r\n");
    assert_eq!(std::fs::read(server.paths.user("bin.txt")).unwrap(), b"a\r\nb\r\n");
    raw.expect("TYPE A N", 200);
    assert_eq!(raw.retr("unix.txt"), b"x\r\ny\r\n");
    raw.expect("TYPE L 8", 200);
    assert_eq!(raw.retr("unix.txt"), b"x\ny\n");

    // suppaftp in ASCII mode.
    let mut ftp = suppa_login(&server);
    ftp.transfer_type(suppaftp::types::FileType::Ascii(suppaftp::types::FormatControl::Default)).unwrap();
    assert_eq!(get(&mut ftp, "unix.txt"), b"x\r\ny\r\n");
    ftp.transfer_type(suppaftp::types::FileType::Binary).unwrap();
    assert_eq!(get(&mut ftp, "unix.txt"), b"x\ny\n");
}

#[test]
fn informational_and_parameter_commands() {
    let server = TestServer::start();
    std::fs::write(server.paths.user("f.txt"), b"hello").unwrap();
    let mut raw = server.connect();

    // Before login.
    raw.expect("HOST 127.0.0.1", 220);
    let feat = raw.expect("FEAT", 211);
    assert!(feat.lines.len() > 2, "multi-line FEAT: {feat}");
    let features: Vec<&str> = feat.lines[1..feat.lines.len() - 1].iter().map(|l| l.as_str()).collect();
    for f in &features {
        assert!(f.starts_with(' '), "RFC 2389: feature lines start with a space: {f:?}");
    }
    let features: Vec<String> = features.iter().map(|l| l.trim().to_ascii_uppercase()).collect();
    for want in ["EPRT", "EPSV", "MDTM", "MFMT", "PASV", "REST STREAM", "SIZE", "UTF8", "TVFS"] {
        assert!(features.iter().any(|f| f == want), "FEAT lacks {want}: {feat}");
    }
    let mlst = features.iter().find(|f| f.starts_with("MLST ")).unwrap_or_else(|| panic!("no MLST: {feat}"));
    for fact in ["TYPE*", "SIZE*", "MODIFY*", "PERM*", "UNIQUE*"] {
        assert!(mlst.contains(fact), "MLST feature lacks {fact}: {mlst}");
    }
    assert!(!features.iter().any(|f| f.starts_with("AUTH")), "FEAT offers AUTH without TLS: {feat}");
    raw.expect("OPTS UTF8 ON", 200);
    raw.expect("OPTS BOGUS", 501);
    let help = raw.expect("HELP", 214);
    for verb in ["RETR", "STOR", "MLSD", "EPSV", "XPWD"] {
        assert!(help.text().contains(verb), "HELP lacks {verb}: {help}");
    }
    raw.expect("HELP RETR", 214);
    let r = raw.expect("SYST", 215);
    assert!(r.message().starts_with("UNIX"), "{r}");
    raw.expect("NOOP", 200);
    let stat = raw.expect("STAT", 211);
    assert!(stat.lines.len() >= 2, "{stat}");
    raw.expect("FOOBAR", 500);
    raw.expect("FOOBAR with args", 500);
    raw.expect("AUTH TLS", 502);

    raw.login(USER, PASSWORD);
    raw.expect("HOST 127.0.0.1", 503);
    raw.expect("ALLO 1000", 202);
    raw.expect("ALLO", 501);
    raw.expect("MODE S", 200);
    raw.expect("STRU F", 200);
    raw.expect("MODE B", 504);
    raw.expect("STRU R", 504);
    raw.expect("TYPE E", 504);
    raw.expect("TYPE X", 501);
    raw.expect("TYPE I", 200);
    raw.expect("TYPE A", 200);
    let stat = raw.expect("STAT", 211);
    assert!(stat.text().contains(USER), "STAT names the user: {stat}");
    assert!(stat.text().to_ascii_uppercase().contains("ASCII"), "STAT shows TYPE A: {stat}");
    let file_stat = raw.cmd("STAT f.txt");
    assert!(file_stat.code == 213 || file_stat.code == 211, "{file_stat}");
    assert!(file_stat.text().contains("f.txt"), "{file_stat}");
    let dir_stat = raw.cmd("STAT /");
    assert!(matches!(dir_stat.code, 211..=213), "{dir_stat}");
    assert!(dir_stat.text().contains("f.txt"), "{dir_stat}");
    raw.expect("STAT missing", 550);

    raw.expect("SITE CHMOD 600 f.txt", 200);
    let mode = std::fs::metadata(server.paths.user("f.txt")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    raw.expect("SITE CHMOD 644 f.txt", 200);
    let mode = std::fs::metadata(server.paths.user("f.txt")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
    raw.expect("SITE CHMOD 999 f.txt", 501);
    raw.expect("SITE CHMOD 644 missing", 550);
    raw.expect("SITE CHMOD 777 /ro/readme.txt", 550);
    raw.expect("SITE HELP", 214);
    raw.expect("SITE BOGUS", 504);
    raw.expect("ABOR", 225);
    raw.expect("ACCT x", 202);
}

/// STAT of a directory is LIST over the control connection: it shows the
/// virtual directories (mounts) too.
#[test]
fn stat_of_a_directory_shows_what_list_shows() {
    let server = TestServer::start();
    std::fs::write(server.paths.user("f.txt"), b"hello").unwrap();
    let mut raw = server.login();
    let list = raw.listing("LIST /");
    let stat = raw.cmd("STAT /");
    assert!(matches!(stat.code, 211..=213), "{stat}");
    for name in ["f.txt", "ro", "share"] {
        assert!(list.contains(name), "LIST / lacks {name}: {list}");
        assert!(stat.text().contains(name), "STAT / lacks {name}, which LIST / shows: {stat}");
    }
}

/// Downloads and uploads through each data-connection mode.
#[test]
fn data_connection_modes_epsv_pasv_port_eprt() {
    let server = TestServer::start();
    let content = random_bytes(500_000, 5);
    std::fs::write(server.paths.user("f.bin"), &content).unwrap();

    for mode in [Mode::ExtendedPassive, Mode::Passive] {
        let mut ftp = suppa_login(&server);
        ftp.set_mode(mode);
        assert_eq!(get(&mut ftp, "f.bin"), content, "{mode:?} RETR");
        let name = format!("up-{mode:?}.bin");
        ftp.put_file(&name, &mut Cursor::new(content.clone())).unwrap();
        assert_eq!(std::fs::read(server.paths.user(&name)).unwrap(), content, "{mode:?} STOR");
        let list = ftp.nlst(None).unwrap();
        assert!(list.contains(&name), "{mode:?} NLST: {list:?}");
    }

    let mut raw = server.login();
    let addr = raw.pasv();
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "PASV advertises the control connection's address");
    drop(connect_data(addr));
    // A second PASV replaces the first.
    let addr = raw.pasv();
    let data = connect_data(addr);
    raw.expect("RETR f.bin", 150);
    assert_eq!(read_all(data), content);
    raw.expect_final(226);

    // Active: PORT.
    let listener = ActiveListener::bind();
    raw.expect(&format!("PORT {}", listener.port_arg()), 200);
    raw.expect("RETR f.bin", 150);
    let data = listener.accept(Duration::from_secs(20));
    assert_eq!(read_all(data), content);
    raw.expect_final(226);

    let listener = ActiveListener::bind();
    raw.expect(&format!("PORT {}", listener.port_arg()), 200);
    raw.expect("STOR by-port.bin", 150);
    let mut data = listener.accept(Duration::from_secs(20));
    data.write_all(&content).unwrap();
    data.shutdown(Shutdown::Write).unwrap();
    drop(data);
    raw.expect_final(226);
    assert_eq!(std::fs::read(server.paths.user("by-port.bin")).unwrap(), content);

    // Active: EPRT.
    let listener = ActiveListener::bind();
    raw.expect(&format!("EPRT {}", listener.eprt_arg()), 200);
    raw.expect("NLST", 150);
    let data = listener.accept(Duration::from_secs(20));
    let text = String::from_utf8(read_all(data)).unwrap();
    assert!(text.contains("by-port.bin\r\n"), "{text:?}");
    raw.expect_final(226);

    let listener = ActiveListener::bind();
    raw.expect(&format!("EPRT {}", listener.eprt_arg()), 200);
    raw.expect("RETR f.bin", 150);
    let data = listener.accept(Duration::from_secs(20));
    assert_eq!(read_all(data), content);
    raw.expect_final(226);

    // EPSV with an explicit protocol.
    raw.expect("EPSV 2", 522);
    let r = raw.expect("EPSV 1", 229);
    assert!(r.text().contains("(|||"), "{r}");
    raw.expect("PORT 1,2,3", 501);
    raw.expect("EPRT |1|not-an-address|5000|", 501);
}

/// RFC 2428: an EPRT network protocol the server does not support gets 522.
#[test]
fn eprt_with_an_unknown_network_protocol_is_522() {
    let server = TestServer::start();
    let mut raw = server.login();
    let r = raw.cmd("EPRT |9|127.0.0.1|5000|");
    assert_eq!(r.code, 522, "RFC 2428 2: unsupported network protocol must get 522: {r}");
    raw.expect("NOOP", 200);
}

#[test]
fn epsv_all_then_pasv_or_port_is_refused() {
    let server = TestServer::start();
    std::fs::write(server.paths.user("f.txt"), b"data").unwrap();
    let mut raw = server.login();
    raw.expect("EPSV ALL", 200);
    raw.expect("PASV", 503);
    let listener = ActiveListener::bind();
    raw.expect(&format!("PORT {}", listener.port_arg()), 503);
    raw.expect(&format!("EPRT {}", listener.eprt_arg()), 503);
    // EPSV still works.
    assert_eq!(raw.retr("f.txt"), b"data");
}

#[test]
fn port_to_another_address_or_privileged_port_is_refused() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.expect("PORT 127,0,0,2,19,136", 501);
    raw.expect("PORT 127,0,0,1,0,21", 501);
    raw.expect("EPRT |1|127.0.0.2|5000|", 501);
    raw.expect("EPRT |1|127.0.0.1|21|", 501);
    // Nothing was set up: a transfer now has no data connection.
    raw.expect("LIST", 425);
}

#[test]
fn rein_logs_out_and_quit_closes() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.expect("TYPE A", 200);
    raw.expect("REIN", 220);
    raw.expect("PWD", 530);
    raw.expect("CWD /", 530);
    raw.expect("NOOP", 200);
    raw.login(USER, PASSWORD);
    let stat = raw.expect("STAT", 211);
    assert!(stat.text().to_ascii_uppercase().contains("BINARY"), "REIN resets TYPE: {stat}");
    raw.expect("USER someone", 530);
    let r = raw.expect("QUIT", 221);
    assert!(!r.text().is_empty());
    raw.closed_within(Duration::from_secs(5)).expect("QUIT closes the connection");

    // QUIT before login.
    let mut raw = server.connect();
    raw.expect("QUIT", 221);
    raw.closed_within(Duration::from_secs(5)).expect("QUIT closes the connection");
}

#[test]
fn utf8_file_names_round_trip() {
    let server = TestServer::start();
    let name = "žluťoučký kůň.txt";
    let renamed = "日本語 ファイル.txt";
    let dir = "adresář s mezerou";
    let mut ftp = suppa_login(&server);
    ftp.put_file(name, &mut Cursor::new("úpěl ďábelské ódy\n".as_bytes().to_vec())).unwrap();
    assert_eq!(std::fs::read(server.paths.user(name)).unwrap(), "úpěl ďábelské ódy\n".as_bytes());
    assert!(ftp.nlst(None).unwrap().iter().any(|n| n == name));
    assert!(ftp.list(None).unwrap().iter().any(|l| l.ends_with(&format!(" {name}"))));
    assert!(ftp.mlsd(None).unwrap().iter().any(|l| l.ends_with(&format!("; {name}"))));
    assert_eq!(get(&mut ftp, name), "úpěl ďábelské ódy\n".as_bytes());
    assert_eq!(ftp.size(name).unwrap(), "úpěl ďábelské ódy\n".len());
    ftp.rename(name, renamed).unwrap();
    assert!(server.paths.user(renamed).exists() && !server.paths.user(name).exists());
    ftp.mkdir(dir).unwrap();
    assert!(server.paths.user(dir).is_dir());
    ftp.cwd(dir).unwrap();
    assert_eq!(ftp.pwd().unwrap(), format!("/{dir}"));
    ftp.rename(format!("/{renamed}").as_str(), renamed).unwrap();
    assert!(server.paths.user(&format!("{dir}/{renamed}")).exists());
    ftp.rm(renamed).unwrap();
    ftp.cdup().unwrap();
    ftp.rmdir(dir).unwrap();
    assert!(!server.paths.user(dir).exists());

    // Invalid UTF-8 on the wire is refused, and the session goes on.
    let mut raw = server.login();
    raw.send_bytes(b"MKD \xff\xfe\r\n");
    let r = raw.read_reply();
    assert!(r.code == 500 || r.code == 501, "invalid UTF-8: {r}");
    raw.expect("NOOP", 200);
    assert_eq!(dir_names(&server.paths.user_root), Vec::<String>::new());
}

/// Starts a RETR of a big file over EPSV and reads its first bytes; the
/// server then blocks on the full data connection, so the transfer stays
/// in progress.
fn start_big_retr(raw: &mut Ftp, path: &str) -> TcpStream {
    let addr = raw.epsv();
    let mut data = connect_data(addr);
    raw.expect(&format!("RETR {path}"), 150);
    let mut first = vec![0u8; 64 * 1024];
    data.read_exact(&mut first).expect("first bytes of the transfer");
    data
}

const BIG: usize = 20 * 1024 * 1024;

#[test]
fn abor_during_a_long_retr() {
    let server = TestServer::start();
    let content = random_bytes(BIG, 6);
    std::fs::write(server.paths.user("big.bin"), &content).unwrap();
    std::fs::write(server.paths.user("small.txt"), b"small").unwrap();
    let mut raw = server.login();

    for (round, abor) in [b"ABOR\r\n".to_vec(), b"\xff\xf4\xff\xf2ABOR\r\n".to_vec()].into_iter().enumerate()
    {
        let mut data = start_big_retr(&mut raw, "big.bin");
        raw.send_bytes(&abor);
        raw.expect_abort_replies(&format!("round {round}: ABOR during RETR"));
        // The server closed the data connection: reading ends (EOF or reset)
        // well before the whole file.
        data.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut rest = Vec::new();
        let got = match data.read_to_end(&mut rest) {
            Ok(_) => rest.len(),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("round {round}: data connection still open 20 s after ABOR")
            }
            Err(_) => rest.len(),
        };
        assert!(got + 64 * 1024 < BIG, "round {round}: the whole file arrived despite ABOR");
        // The session goes on.
        raw.expect("NOOP", 200);
        assert_eq!(raw.retr("small.txt"), b"small");
    }
    // ABOR with no transfer.
    let r = raw.cmd("ABOR");
    assert!(r.code == 225 || r.code == 226, "{r}");
}

#[test]
fn stat_and_noop_are_answered_during_a_transfer() {
    let server = TestServer::start();
    let content = random_bytes(BIG, 7);
    std::fs::write(server.paths.user("big.bin"), &content).unwrap();
    let mut raw = server.login();
    let mut data = start_big_retr(&mut raw, "big.bin");

    let stat = raw.cmd("STAT");
    assert!(matches!(stat.code, 211 | 213), "STAT during a transfer: {stat}");
    assert!(stat.text().contains("big.bin"), "STAT names the transfer: {stat}");
    raw.expect("NOOP", 200);
    // Any other command waits for the transfer and is answered after it.
    raw.send("PWD");

    let mut rest = Vec::new();
    data.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    data.read_to_end(&mut rest).expect("rest of the transfer");
    assert_eq!(rest.len() + 64 * 1024, BIG);
    assert_eq!(&rest[..], &content[64 * 1024..], "content after STAT/NOOP");
    let done = raw.read_reply();
    assert_eq!(done.code, 226, "{done}");
    let pwd = raw.read_reply();
    assert_eq!(pwd.code, 257, "the deferred PWD is answered after the transfer: {pwd}");
    raw.expect("NOOP", 200);
}
