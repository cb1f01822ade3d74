//! The transfer log: after a RETR and a STOR the xferlog file holds one
//! standard line each (checked field by field) and the JSON file one object
//! each; after the file is renamed (as logrotate does) a reopen writes to a
//! new file at the configured path.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Waits (bounded) until `path` has at least `n` lines; returns them.
fn lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn xferlog_and_json_lines_after_retr_and_stor() {
    let logs = tempfile::tempdir().unwrap();
    let xfer = logs.path().join("xferlog");
    let json = logs.path().join("transfers.jsonl");
    let (x, j) = (xfer.clone(), json.clone());
    let server = TestServer::builder()
        .config(move |c| {
            c.xferlog.path = Some(x);
            c.xferlog.json_path = Some(j);
        })
        .start();
    let mut ftp = server.login();
    ftp.stor("up load.bin", b"0123456789");
    let data = ftp.retr("up load.bin");
    assert_eq!(data, b"0123456789");

    let got = lines(&xfer, 2);
    assert_eq!(got.len(), 2, "{got:?}");
    for (line, direction) in got.iter().zip(["i", "o"]) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 18, "{line}");
        // current-time: "Wed Nov 25 09:00:00 2026" (5 fields).
        assert!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&f[0]), "{line}");
        assert!(f[3].len() == 8 && f[3].matches(':').count() == 2, "{line}");
        assert!(f[4].parse::<u32>().unwrap() >= 2024, "{line}");
        let secs: u64 = f[5].parse().unwrap();
        assert!((1..60).contains(&secs), "{line}");
        assert_eq!(f[6], "127.0.0.1", "{line}");
        assert_eq!(f[7], "10", "{line}");
        assert_eq!(f[8], "/up_load.bin", "{line}");
        assert_eq!(f[9], "b", "{line}");
        assert_eq!(f[10], "_", "{line}");
        assert_eq!(f[11], direction, "{line}");
        assert_eq!(f[12], "r", "{line}");
        assert_eq!(f[13], USER, "{line}");
        assert_eq!(f[14], "ftp", "{line}");
        assert_eq!(f[15], "0", "{line}");
        assert_eq!(f[16], "*", "{line}");
        assert_eq!(f[17], "c", "{line}");
    }

    let got = lines(&json, 2);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with('{') && got[0].ends_with('}'), "{}", got[0]);
    for key in [r#""path":"/up load.bin""#, r#""bytes":10"#, r#""direction":"upload""#, r#""user":"alice""#] {
        assert!(got[0].contains(key), "{key} in {}", got[0]);
    }
    assert!(
        got[1].contains(r#""direction":"download""#) && got[1].contains(r#""status":"complete""#),
        "{}",
        got[1]
    );

    // logrotate: rename, then reopen (what SIGHUP does); the next line goes
    // to a new file at the configured path.
    let rotated = logs.path().join("xferlog.1");
    std::fs::rename(&xfer, &rotated).unwrap();
    server.shared().xferlog.reopen();
    ftp.retr("up load.bin");
    let fresh = lines(&xfer, 1);
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert!(fresh[0].ends_with(" c") && fresh[0].contains(" o r alice "), "{}", fresh[0]);
    assert_eq!(lines(&rotated, 2).len(), 2);
}
