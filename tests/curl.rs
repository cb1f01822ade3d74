//! curl as an FTP client: listing, download, upload, resume in both
//! directions, passive (EPSV, PASV) and active mode, anonymous access.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// Runs curl with the given arguments (plus a time limit); never hangs.
fn curl(args: &[&str]) -> Output {
    require_program("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["--max-time", "60", "--connect-timeout", "10", "--noproxy", "*", "-sS"]).args(args);
    run(&mut cmd, Duration::from_secs(90))
}

/// Runs curl and requires success.
fn curl_ok(args: &[&str]) -> Output {
    let out = curl(args);
    assert!(out.status.success(), "curl {args:?} failed: {}", describe(&out));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn list_get_and_put_over_epsv() {
    let server = TestServer::start();
    let content = random_bytes(1_000_000, 11);
    std::fs::write(server.paths.user("file.bin"), &content).unwrap();
    std::fs::create_dir(server.paths.user("sub")).unwrap();
    std::fs::write(server.paths.user("sub/inner.txt"), b"inner\n").unwrap();
    let local = tempfile::tempdir().unwrap();

    let out = curl_ok(&["-v", &server.url("")]);
    let listing = String::from_utf8_lossy(&out.stdout);
    for name in ["file.bin", "sub", "ro", "share"] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {name}"))),
            "listing lacks {name}:\n{listing}"
        );
    }
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("EPSV"), "curl uses EPSV by default:\n{verbose}");

    // A sub-directory listing, and a names-only listing.
    let out = curl_ok(&[&server.url("sub/")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("inner.txt"));
    let out = curl_ok(&["--list-only", &server.url("")]);
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    names.sort();
    assert_eq!(names, ["file.bin", "ro", "share", "sub"]);

    let got = local.path().join("got.bin");
    curl_ok(&["-o", s(&got), &server.url("file.bin")]);
    assert_eq!(std::fs::read(&got).unwrap(), content);
    let got_inner = local.path().join("inner.txt");
    curl_ok(&["-o", s(&got_inner), &server.url("sub/inner.txt")]);
    assert_eq!(std::fs::read(&got_inner).unwrap(), b"inner\n");

    let upload = local.path().join("upload.bin");
    let up_content = random_bytes(777_777, 12);
    std::fs::write(&upload, &up_content).unwrap();
    curl_ok(&["-T", s(&upload), &server.url("uploaded.bin")]);
    assert_eq!(std::fs::read(server.paths.user("uploaded.bin")).unwrap(), up_content);
    // Upload over an existing file replaces it.
    std::fs::write(&upload, b"replacement").unwrap();
    curl_ok(&["-T", s(&upload), &server.url("uploaded.bin")]);
    assert_eq!(std::fs::read(server.paths.user("uploaded.bin")).unwrap(), b"replacement");
    // Into the writable mount, and refused in the read-only one.
    curl_ok(&["-T", s(&upload), &server.url("share/in-share.bin")]);
    assert_eq!(std::fs::read(server.paths.share_dir.join("in-share.bin")).unwrap(), b"replacement");
    let out = curl(&["-T", s(&upload), &server.url("ro/nope.bin")]);
    assert_eq!(out.status.code(), Some(25), "upload into /ro must fail (550): {}", describe(&out));
    assert!(!server.paths.ro_dir.join("nope.bin").exists());

    // Missing file: curl exit 78 (RETR 550).
    let out = curl(&["-o", s(&local.path().join("missing")), &server.url("missing.bin")]);
    assert_eq!(out.status.code(), Some(78), "download of a missing file: {}", describe(&out));
}

#[test]
fn pasv_mode_with_epsv_disabled() {
    let server = TestServer::start();
    let content = random_bytes(300_000, 13);
    std::fs::write(server.paths.user("file.bin"), &content).unwrap();
    let local = tempfile::tempdir().unwrap();

    let out = curl_ok(&["-v", "--disable-epsv", &server.url("")]);
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("PASV"), "curl --disable-epsv uses PASV:\n{verbose}");
    assert!(!verbose.contains("> EPSV"), "curl --disable-epsv sent EPSV:\n{verbose}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("file.bin"));

    let got = local.path().join("got.bin");
    curl_ok(&["--disable-epsv", "-o", s(&got), &server.url("file.bin")]);
    assert_eq!(std::fs::read(&got).unwrap(), content);
    curl_ok(&["--disable-epsv", "-T", s(&got), &server.url("back.bin")]);
    assert_eq!(std::fs::read(server.paths.user("back.bin")).unwrap(), content);
}

#[test]
fn active_mode_port_and_eprt() {
    let server = TestServer::start();
    let content = random_bytes(400_000, 14);
    std::fs::write(server.paths.user("file.bin"), &content).unwrap();
    let local = tempfile::tempdir().unwrap();

    // curl tries EPRT first for active mode.
    let out = curl_ok(&["-v", "-P", "127.0.0.1", &server.url("")]);
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("EPRT") || verbose.contains("PORT"), "active mode:\n{verbose}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("file.bin"));

    let got = local.path().join("got.bin");
    curl_ok(&["-P", "127.0.0.1", "-o", s(&got), &server.url("file.bin")]);
    assert_eq!(std::fs::read(&got).unwrap(), content);
    curl_ok(&["-P", "127.0.0.1", "-T", s(&got), &server.url("active-up.bin")]);
    assert_eq!(std::fs::read(server.paths.user("active-up.bin")).unwrap(), content);

    // Plain PORT (EPRT disabled).
    let got2 = local.path().join("got2.bin");
    let out = curl_ok(&["-v", "--disable-eprt", "-P", "127.0.0.1", "-o", s(&got2), &server.url("file.bin")]);
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("> PORT"), "--disable-eprt uses PORT:\n{verbose}");
    assert_eq!(std::fs::read(&got2).unwrap(), content);
}

#[test]
fn resume_upload_and_download_with_continue_at() {
    let server = TestServer::start();
    let local = tempfile::tempdir().unwrap();
    let content = random_bytes(2_000_000, 15);
    let full = local.path().join("full.bin");
    let half = local.path().join("half.bin");
    std::fs::write(&full, &content).unwrap();
    std::fs::write(&half, &content[..900_000]).unwrap();

    // Upload half, then resume: curl asks SIZE and sends the rest.
    curl_ok(&["-T", s(&half), &server.url("resumed.bin")]);
    assert_eq!(std::fs::metadata(server.paths.user("resumed.bin")).unwrap().len(), 900_000);
    curl_ok(&["-C", "-", "-T", s(&full), &server.url("resumed.bin")]);
    assert_eq!(std::fs::read(server.paths.user("resumed.bin")).unwrap(), content, "resumed upload");

    // Download half (already on disk), then resume: REST + RETR.
    std::fs::write(server.paths.user("remote.bin"), &content).unwrap();
    let partial = local.path().join("partial.bin");
    std::fs::write(&partial, &content[..1_234_567]).unwrap();
    let out = curl_ok(&["-v", "-C", "-", "-o", s(&partial), &server.url("remote.bin")]);
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("REST 1234567"), "curl resumes with REST:\n{verbose}");
    assert_eq!(std::fs::read(&partial).unwrap(), content, "resumed download");

    // An explicit offset.
    let tail = local.path().join("tail.bin");
    curl_ok(&["-C", "1999000", "-o", s(&tail), &server.url("remote.bin")]);
    assert_eq!(std::fs::read(&tail).unwrap(), &content[1_999_000..]);
}

#[test]
fn anonymous_download_and_refused_upload() {
    let server = TestServer::start();
    let local = tempfile::tempdir().unwrap();

    let out = curl_ok(&[&server.anon_url("pub/hello.txt")]);
    assert_eq!(out.stdout, HELLO);
    let out = curl_ok(&["--user", "ftp:someone@example.com", &server.anon_url("pub/hello.txt")]);
    assert_eq!(out.stdout, HELLO);
    let out = curl_ok(&[&server.anon_url("pub/")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello.txt"));
    // alice's files are not in the anonymous tree.
    std::fs::write(server.paths.user("private.txt"), b"alice only").unwrap();
    let out = curl(&[&server.anon_url("private.txt")]);
    assert_eq!(out.status.code(), Some(78), "{}", describe(&out));

    let upload = local.path().join("up.txt");
    std::fs::write(&upload, b"anonymous upload").unwrap();
    let out = curl(&["-T", s(&upload), &server.anon_url("pub/up.txt")]);
    assert_eq!(
        out.status.code(),
        Some(25),
        "anonymous upload must be refused (550 → curl 25): {}",
        describe(&out)
    );
    assert!(!server.paths.anon_root.join("pub/up.txt").exists());
    let out = curl(&["-T", s(&upload), &server.anon_url("pub/hello.txt")]);
    assert_eq!(out.status.code(), Some(25), "anonymous overwrite must be refused: {}", describe(&out));
    assert_eq!(std::fs::read(server.paths.anon_root.join("pub/hello.txt")).unwrap(), HELLO);
}

#[test]
fn wrong_password_is_login_denied() {
    let server = TestServer::start();
    let url = format!("ftp://{USER}:wrong@127.0.0.1:{}/", server.port);
    let out = curl(&[&url]);
    assert_eq!(out.status.code(), Some(67), "curl's 'login denied': {}", describe(&out));
}

#[test]
fn create_dirs_cwd_methods_quote_and_ascii() {
    let server = TestServer::start();
    let local = tempfile::tempdir().unwrap();
    let upload = local.path().join("up.txt");
    std::fs::write(&upload, b"line one\nline two\n").unwrap();

    // --ftp-create-dirs: MKD for each missing level.
    curl_ok(&["--ftp-create-dirs", "-T", s(&upload), &server.url("a/b/c/up.txt")]);
    assert_eq!(std::fs::read(server.paths.user("a/b/c/up.txt")).unwrap(), b"line one\nline two\n");

    for method in ["multicwd", "singlecwd", "nocwd"] {
        let out = curl_ok(&["--ftp-method", method, &server.url("a/b/c/up.txt")]);
        assert_eq!(out.stdout, b"line one\nline two\n", "--ftp-method {method}");
    }

    // ASCII mode: the server sends CR LF, curl turns it back into LF, so the
    // text arrives unchanged (the raw-client tests check the wire format).
    let out = curl_ok(&["-v", "-B", &server.url("a/b/c/up.txt")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("TYPE A"), "{}", describe(&out));
    assert_eq!(out.stdout, b"line one\nline two\n");

    // -Q: raw commands after the transfer (`-` prefix).
    std::fs::write(server.paths.user("doomed.txt"), b"x").unwrap();
    curl_ok(&["-Q", "-DELE doomed.txt", "-Q", "-MKD made-by-quote", &server.url("")]);
    assert!(!server.paths.user("doomed.txt").exists());
    assert!(server.paths.user("made-by-quote").is_dir());
    // A refused quote command fails curl (exit 21).
    let out = curl(&["-Q", "-DELE no-such-file", &server.url("")]);
    assert_eq!(out.status.code(), Some(21), "{}", describe(&out));
}
