//! Quotas with real clients: an upload over the byte quota gets 552 and
//! leaves nothing behind (an overwritten file stays intact), ALLO over it
//! is refused before any data, the file quota refuses one file too many,
//! and usage follows DELE, RNTO and RMD. `SITE QUOTA` reports it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn quota_reply(ftp: &mut Ftp) -> (u64, u64) {
    let text = ftp.expect("SITE QUOTA", 200).text();
    let number = |prefix: &str| -> u64 {
        let line = text.lines().find(|l| l.contains(prefix)).unwrap_or_else(|| panic!("{text}"));
        let (_, rest) = line.split_once(prefix).unwrap();
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    (number("Bytes: "), number("Files: "))
}

fn server(bytes: u64, files: u64) -> TestServer {
    TestServer::builder()
        .setup(|p| std::fs::write(p.user("existing.txt"), b"0123456789").unwrap())
        .alice(move |a| {
            a.shaping.quota_bytes = Some(bytes);
            a.shaping.quota_files = Some(files);
        })
        .start()
}

#[test]
fn an_upload_over_the_quota_gets_552_and_leaves_nothing() {
    let server = server(100_000, 10);
    let mut ftp = server.login();
    assert_eq!(quota_reply(&mut ftp), (10, 1));
    // A new file too large: 552, the partial removed.
    let (first, last) = ftp.try_upload("STOR big.bin", &random_bytes(300_000, 1));
    assert_eq!(first.code, 150, "{first}");
    assert_eq!(last.map(|r| r.code), Some(552));
    assert!(!server.paths.user("big.bin").exists(), "partial upload left behind");
    // Over an existing file: the old content stays.
    let (_, last) = ftp.try_upload("STOR existing.txt", &random_bytes(300_000, 2));
    assert_eq!(last.map(|r| r.code), Some(552));
    assert_eq!(std::fs::read(server.paths.user("existing.txt")).unwrap(), b"0123456789");
    // The aborted replacement's temporary file is removed off the async
    // workers, possibly just after the 552: wait for it (bounded).
    let leftovers = || -> Vec<_> {
        std::fs::read_dir(&server.paths.user_root).unwrap().map(|e| e.unwrap().file_name()).collect()
    };
    assert!(wait_until(Duration::from_secs(10), || leftovers().len() == 1), "{:?}", leftovers());
    assert_eq!(quota_reply(&mut ftp), (10, 1), "failed uploads cost nothing");
    // Within the quota it works and is counted.
    ftp.stor("ok.bin", &random_bytes(50_000, 3));
    assert_eq!(quota_reply(&mut ftp), (50_010, 2));
    // ALLO says no before any data is sent.
    ftp.expect("ALLO 60000", 552);
    ftp.expect("ALLO 40000", 200);
}

#[test]
fn the_file_quota_and_usage_after_dele_rnto_rmd() {
    let server = server(1_000_000, 3);
    let mut ftp = server.login();
    ftp.stor("a.txt", b"aaaa");
    ftp.stor("b.txt", b"bb");
    assert_eq!(quota_reply(&mut ftp), (16, 3));
    let (first, _) = ftp.try_upload("STOR c.txt", b"c");
    assert_eq!(first.code, 552, "{first}");
    assert!(!server.paths.user("c.txt").exists());
    // Overwriting is not a new file.
    ftp.stor("a.txt", b"AAAAAAAA");
    assert_eq!(quota_reply(&mut ftp), (20, 3));
    // RNTO over an existing file frees it.
    ftp.expect("RNFR b.txt", 350);
    ftp.expect("RNTO a.txt", 250);
    assert_eq!(quota_reply(&mut ftp), (12, 2));
    ftp.expect("DELE a.txt", 250);
    assert_eq!(quota_reply(&mut ftp), (10, 1));
    ftp.expect("MKD d", 257);
    ftp.stor("d/x", b"xyz");
    ftp.expect("DELE d/x", 250);
    ftp.expect("RMD d", 250);
    assert_eq!(quota_reply(&mut ftp), (10, 1));
    // A second session shares the count; it matches a fresh walk.
    let mut other = server.login();
    assert_eq!(quota_reply(&mut other), (10, 1));
    other.stor("y", b"12345");
    assert_eq!(quota_reply(&mut ftp), (15, 2));
    assert_eq!(ferroftpd::vfs::quota::count(&server.paths.user_root).unwrap(), (15, 2));
    ftp.expect("SITE HELP", 214);
}

#[test]
fn user_quota_command_shows_usage() {
    let server = server(1 << 20, 100);
    std::fs::write(server.paths.user("f"), vec![0u8; 1000]).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferroftpd"));
    cmd.args(["user", "quota", USER, "--db"]).arg(&server.paths.userdb);
    let out = run(&mut cmd, Duration::from_secs(30));
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bytes: 1010 of 1048576"), "{text}");
    assert!(text.contains("files: 2 of 100"), "{text}");
}

#[test]
fn user_mod_sets_rates_networks_and_quotas() {
    let server = TestServer::start();
    let ferroftpd = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferroftpd"));
        cmd.args(args).arg("--db").arg(&server.paths.userdb);
        run(&mut cmd, Duration::from_secs(30))
    };
    let out = ferroftpd(&[
        "user",
        "mod",
        USER,
        "--download-rate",
        "2 MiB/s",
        "--upload-rate",
        "500 kB/s",
        "--allow-from",
        "10.0.0.0/8",
        "--allow-from",
        "2001:db8::/32",
        "--quota-bytes",
        "1 GiB",
        "--quota-files",
        "7",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = ferroftpd(&["user", "quota", USER]);
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "bytes: 0 of 1073741824",
        "files: 0 of 7",
        "download rate: 2 MiB/s",
        "upload rate: 500000 B/s",
        "allow from: 10.0.0.0/8 2001:db8::/32",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    let bad = ferroftpd(&["user", "mod", USER, "--download-rate", "2 MiB"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a rate"), "{}", describe(&bad));
    let out = ferroftpd(&[
        "user",
        "mod",
        USER,
        "--download-rate",
        "default",
        "--clear-allow-from",
        "--quota-files",
        "none",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&ferroftpd(&["user", "quota", USER]).stdout).into_owned();
    assert!(text.contains("download rate: default") && text.contains("allow from: anywhere"), "{text}");
    assert!(text.contains("files: 0 of unlimited"), "{text}");
}
