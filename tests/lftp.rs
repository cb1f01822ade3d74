//! lftp mirrors a local tree (subfolders, small files, odd names and a
//! 50 MB random file) up to the server and back down; every file must come
//! back byte for byte, in the same tree shape.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// Settings that keep a failing lftp from retrying or waiting for long.
const SETTINGS: &str = "set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 20; \
                        set net:reconnect-interval-base 1; set net:persist-retries 0; \
                        set cmd:fail-exit yes; set xfer:clobber on";

fn lftp(server: &TestServer, script: &str) -> Output {
    require_program("lftp");
    let mut cmd = Command::new("lftp");
    cmd.args([
        "-u",
        &format!("{USER},{PASSWORD}"),
        "-p",
        &server.port.to_string(),
        "127.0.0.1",
        "-e",
        &format!("{SETTINGS}; {script}; quit"),
    ]);
    // No user configuration may change the behaviour.
    cmd.env("HOME", server.paths.base.join("lftp-home"))
        .env("LFTP_HOME", server.paths.base.join("lftp-home"));
    run(&mut cmd, Duration::from_secs(300))
}

fn lftp_ok(server: &TestServer, script: &str) -> Output {
    let out = lftp(server, script);
    assert!(out.status.success(), "lftp `{script}` failed: {}", describe(&out));
    out
}

/// Builds the local tree to mirror.
fn make_tree(root: &Path, big: usize) {
    let files: &[(&str, Vec<u8>)] = &[
        ("a.txt", b"alpha\n".to_vec()),
        ("b.txt", b"bravo\nwith two lines\n".to_vec()),
        ("empty.txt", Vec::new()),
        ("name with spaces.txt", b"spaces\n".to_vec()),
        ("žluťoučký kůň.txt", "úpěl ďábelské ódy\n".as_bytes().to_vec()),
        ("sub1/c.txt", b"charlie\n".to_vec()),
        ("sub1/deep/d.bin", random_bytes(70_000, 21)),
        ("sub1/deep/deeper/e.bin", random_bytes(1_000_003, 22)),
        ("sub2/f.txt", b"foxtrot\n".to_vec()),
        ("big.bin", random_bytes(big, 23)),
    ];
    for (rel, content) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
}

fn assert_same_tree(a: &Path, b: &Path, what: &str) {
    let (ta, tb) = (tree(a), tree(b));
    let names = |t: &[(String, Option<Vec<u8>>)]| {
        t.iter().map(|(n, c)| format!("{n}{}", if c.is_none() { "/" } else { "" })).collect::<Vec<_>>()
    };
    assert_eq!(names(&ta), names(&tb), "{what}: tree shape differs");
    for ((name, ca), (_, cb)) in ta.iter().zip(tb.iter()) {
        if let (Some(ca), Some(cb)) = (ca, cb) {
            assert!(ca == cb, "{what}: {name} differs ({} vs {} bytes)", ca.len(), cb.len());
        }
    }
}

#[test]
fn mirror_up_and_back_down_byte_for_byte() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("local");
    let back = work.path().join("back");
    make_tree(&local, 50 * 1024 * 1024);

    lftp_ok(&server, &format!("mirror -R '{}' remote", local.display()));
    let remote = server.paths.user("remote");
    assert_same_tree(&local, &remote, "uploaded tree on the server");

    lftp_ok(&server, &format!("mirror remote '{}'", back.display()));
    assert_same_tree(&local, &back, "tree mirrored back");

    // A second mirror finds nothing to do and changes nothing.
    lftp_ok(&server, &format!("mirror -R '{}' remote", local.display()));
    assert_same_tree(&local, &remote, "tree after a repeated mirror");

    // Deletions propagate with --delete.
    std::fs::remove_file(local.join("sub2/f.txt")).unwrap();
    lftp_ok(&server, &format!("mirror -R --delete '{}' remote", local.display()));
    assert!(!remote.join("sub2/f.txt").exists());
    assert_same_tree(&local, &remote, "tree after mirror --delete");
}

#[test]
fn active_mode_transfers_and_file_commands() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("local");
    let back = work.path().join("back");
    make_tree(&local, 3 * 1024 * 1024);

    let out = lftp_ok(
        &server,
        &format!(
            "debug 9; set ftp:passive-mode off; set ftp:port-range 1024-65535; mirror -R '{}' remote; \
             mirror remote '{}'",
            local.display(),
            back.display()
        ),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("---> PORT") || log.contains("---> EPRT"), "lftp used active mode:\n{log}");
    assert!(!log.contains("---> PASV") && !log.contains("---> EPSV"), "lftp used passive mode:\n{log}");
    assert_same_tree(&local, &server.paths.user("remote"), "active-mode upload");
    assert_same_tree(&local, &back, "active-mode download");

    // Everyday commands: mkdir, mv, rm, rmdir, cls.
    let out = lftp_ok(
        &server,
        "mkdir made; mv remote/a.txt made/a-moved.txt; rm remote/b.txt; rmdir remote/empty-dir; \
         cls -1 made",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("a-moved.txt"), "{}", describe(&out));
    assert_eq!(std::fs::read(server.paths.user("made/a-moved.txt")).unwrap(), b"alpha\n");
    assert!(!server.paths.user("remote/b.txt").exists());
    assert!(!server.paths.user("remote/empty-dir").exists());
    // A failing command makes lftp fail (cmd:fail-exit).
    let out = lftp(&server, "rm no-such-file");
    assert!(!out.status.success(), "rm of a missing file should fail: {}", describe(&out));
}
