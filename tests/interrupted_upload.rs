//! Uploads that die half-way: a client killed with SIGKILL while replacing
//! a file must leave the old file intact and no temporary file visible; a
//! new file's partial upload must be resumable.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A background client, killed if the test ends early (curl's own
/// `--max-time` bounds it too).
struct Background(Option<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts a slow curl upload (200 KB/s) in the background.
fn slow_upload(local: &Path, url: &str, resume: bool) -> Background {
    require_program("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "120", "--noproxy", "*", "--limit-rate", "200k"]);
    if resume {
        cmd.args(["-C", "-"]);
    }
    cmd.arg("-T").arg(local).arg(url);
    Background(Some(
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start curl"),
    ))
}

/// SIGKILL, then reap.
fn kill9(mut background: Background) {
    let mut child = background.0.take().expect("running client");
    assert!(child.try_wait().unwrap().is_none(), "curl ended before it could be killed");
    child.kill().expect("kill curl"); // SIGKILL on Unix
    let _ = child.wait();
}

/// Names in a real directory that were not there before.
fn new_names(dir: &Path, before: &[String]) -> Vec<String> {
    dir_names(dir).into_iter().filter(|n| !before.contains(n)).collect()
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Waits (bounded) until `path`'s size has stopped changing.
fn wait_size_stable(path: &Path) -> u64 {
    let mut last = size_of(path);
    let mut stable_polls = 0;
    let settled = wait_until(Duration::from_secs(15), || {
        let now = size_of(path);
        if now == last {
            stable_polls += 1;
        } else {
            stable_polls = 0;
            last = now;
        }
        stable_polls >= 10 // 200 ms without change
    });
    assert!(settled, "{} kept growing after the client was killed", path.display());
    last
}

#[test]
fn killed_client_replacing_a_file_leaves_the_old_file() {
    let server = TestServer::start();
    let old = random_bytes(1024 * 1024, 31);
    let target = server.paths.user("target.bin");
    std::fs::write(&target, &old).unwrap();
    let old_mtime = mtime(&target);
    let before = dir_names(&server.paths.user_root);

    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("new.bin");
    std::fs::write(&local, random_bytes(5 * 1024 * 1024, 32)).unwrap();

    let child = slow_upload(&local, &server.url("target.bin"), false);
    // Ready when the upload has visibly started: a new (temporary) file with
    // data in it, or the target itself changing. Some implementations show
    // neither; then three seconds of upload is the best we can do.
    let started = wait_until(Duration::from_secs(3), || {
        new_names(&server.paths.user_root, &before).iter().any(|n| size_of(&server.paths.user(n)) > 150_000)
            || size_of(&target) != old.len() as u64
            || mtime(&target) != old_mtime
    });
    eprintln!("upload visibly started before the kill: {started}");
    kill9(child);

    // The server notices the dead client and discards the upload; its
    // temporary file disappears (bounded wait).
    let cleaned =
        wait_until(Duration::from_secs(15), || new_names(&server.paths.user_root, &before).is_empty());
    assert_eq!(std::fs::read(&target).unwrap(), old, "the old file was damaged by the interrupted upload");
    assert!(
        cleaned,
        "temporary upload files left on disk: {:?}",
        new_names(&server.paths.user_root, &before)
    );
    let mut ftp = server.login();
    let mut listed: Vec<String> = ftp.listing("NLST").lines().map(str::to_string).collect();
    listed.sort();
    assert_eq!(listed, ["ro", "share", "target.bin"], "LIST shows only the real files");
    let mlsd = ftp.listing("MLSD");
    assert_eq!(mlsd.lines().count(), 3, "MLSD shows only the real files: {mlsd}");
    assert_eq!(ftp.cmd("SIZE target.bin").message(), old.len().to_string());
    assert_eq!(ftp.retr("target.bin"), old);
}

#[test]
fn killed_client_uploading_a_new_file_can_resume() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("new.bin");
    let content = random_bytes(5 * 1024 * 1024, 33);
    std::fs::write(&local, &content).unwrap();
    let remote = server.paths.user("fresh.bin");

    let child = slow_upload(&local, &server.url("fresh.bin"), false);
    let started = wait_until(Duration::from_secs(20), || size_of(&remote) >= 100_000);
    kill9(child);
    assert!(started, "the upload never showed up as fresh.bin on disk");
    let partial = wait_size_stable(&remote);
    assert!(partial > 0 && partial < content.len() as u64, "partial size {partial}");
    assert_eq!(std::fs::read(&remote).unwrap(), &content[..partial as usize], "partial content");
    let mut ftp = server.login();
    assert_eq!(ftp.expect("SIZE fresh.bin", 213).message(), partial.to_string());

    // curl -C - asks SIZE and sends the rest.
    let out = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "--noproxy", "*", "-C", "-", "-T"])
            .arg(&local)
            .arg(server.url("fresh.bin")),
        Duration::from_secs(90),
    );
    assert!(out.status.success(), "resume failed: {}", describe(&out));
    assert_eq!(std::fs::read(&remote).unwrap(), content, "resumed upload differs from the original");
    let mut names = dir_names(&server.paths.user_root);
    names.sort();
    assert_eq!(names, ["fresh.bin"], "stray files after the resumed upload");
}

#[test]
fn abor_during_a_replacing_stor_keeps_the_old_file() {
    let server = TestServer::start();
    let old = random_bytes(300_000, 34);
    std::fs::write(server.paths.user("keep.bin"), &old).unwrap();
    let mut ftp = server.login();
    let addr = ftp.epsv();
    let mut data = connect_data(addr);
    ftp.expect("STOR keep.bin", 150);
    data.write_all(&random_bytes(200_000, 35)).unwrap();
    ftp.send("ABOR");
    ftp.expect_abort_replies("ABOR during STOR");
    let _ = data.shutdown(Shutdown::Both);
    drop(data);
    assert_eq!(std::fs::read(server.paths.user("keep.bin")).unwrap(), old, "ABOR damaged the old file");
    assert!(
        wait_until(Duration::from_secs(10), || dir_names(&server.paths.user_root) == ["keep.bin"]),
        "files after ABOR: {:?}",
        dir_names(&server.paths.user_root)
    );
    ftp.expect("NOOP", 200);
    assert_eq!(ftp.retr("keep.bin"), old);
}

/// A client that closes the data connection early but keeps its control
/// connection has sent a complete (shorter) file as far as FTP can tell:
/// the replacement is committed, and no temporary file remains.
#[test]
fn completed_replacement_commits_atomically() {
    let server = TestServer::start();
    std::fs::write(server.paths.user("doc.txt"), b"old version").unwrap();
    let mut ftp = server.login();
    ftp.stor("doc.txt", b"new");
    assert_eq!(std::fs::read(server.paths.user("doc.txt")).unwrap(), b"new");
    assert_eq!(dir_names(&server.paths.user_root), ["doc.txt"]);
}
