//! Bandwidth limits with real clients: a download under a per-user limit
//! takes the time the rate says, two downloads of one user share it, an
//! upload limit holds, and a reload lowering the rate slows a transfer
//! already running. Time ranges are generous so a busy machine does not
//! make them flake.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use ferroftpd::config::Rate;

const MIB: usize = 1 << 20;

fn curl(args: &[&str]) -> Output {
    require_program("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["--max-time", "60", "--connect-timeout", "10", "--noproxy", "*", "-sS"]).args(args);
    run(&mut cmd, Duration::from_secs(90))
}

fn curl_ok(args: &[&str]) {
    let out = curl(args);
    assert!(out.status.success(), "curl {args:?} failed: {}", describe(&out));
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn server_with_big_file(f: impl FnOnce(&mut ferroftpd::config::Config) + 'static) -> TestServer {
    let server = TestServer::builder().config(f).start();
    std::fs::write(server.paths.user("big.bin"), random_bytes(20 * MIB, 7)).unwrap();
    server
}

#[test]
fn download_under_a_user_limit_and_two_sessions_share_it() {
    let server = server_with_big_file(|c| c.bandwidth.user_download = Rate(4 * MIB as u64));
    let url = server.url("big.bin");
    let one = timed(|| curl_ok(&["-o", "/dev/null", &url]));
    eprintln!("one 20 MiB download at 4 MiB/s: {one:.2} s");
    assert!((3.5..9.0).contains(&one), "one download took {one:.2} s, expected about 5");

    // Two at once, same user: the bucket is shared, the total time doubles.
    let both = timed(|| {
        std::thread::scope(|s| {
            let a = s.spawn(|| curl_ok(&["-o", "/dev/null", &url]));
            let b = s.spawn(|| curl_ok(&["-o", "/dev/null", &url]));
            a.join().unwrap();
            b.join().unwrap();
        })
    });
    eprintln!("two parallel 20 MiB downloads of one user at 4 MiB/s: {both:.2} s");
    assert!((7.5..18.0).contains(&both), "two downloads took {both:.2} s, expected about 10");
    assert!(
        wait_until(Duration::from_secs(5), || server.shared().throttle.user_buckets() == 0),
        "the user's bucket is dropped with its last transfer"
    );
}

#[test]
fn the_content_arrives_intact_and_an_unlimited_user_is_not_slowed() {
    // A group limit for another group does not touch alice; the file is whole.
    let server = server_with_big_file(|c| {
        c.bandwidth.group =
            vec![ferroftpd::config::GroupRate { name: "slow".into(), download: Rate(1000), upload: Rate(0) }];
    });
    let mut ftp = server.login();
    let data = ftp.retr("big.bin");
    assert_eq!(data, std::fs::read(server.paths.user("big.bin")).unwrap());
}

#[test]
fn upload_limit_from_the_user_database() {
    let server = TestServer::builder().alice(|a| a.shaping.upload_rate = Some(Rate(4 * MIB as u64))).start();
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("up.bin");
    let content = random_bytes(8 * MIB, 3);
    std::fs::write(&file, &content).unwrap();
    let took = timed(|| curl_ok(&["-T", file.to_str().unwrap(), &server.url("up.bin")]));
    eprintln!("8 MiB upload at 4 MiB/s: {took:.2} s");
    assert!((1.5..6.0).contains(&took), "upload took {took:.2} s, expected about 2");
    assert_eq!(std::fs::read(server.paths.user("up.bin")).unwrap(), content);
}

#[test]
fn a_reload_lowering_the_rate_slows_a_running_transfer() {
    let server = server_with_big_file(|c| c.bandwidth.download = Rate(10 * MIB as u64));
    let url = server.url("big.bin");
    let shared = server.shared();
    let took = timed(|| {
        std::thread::scope(|s| {
            let download = s.spawn(|| curl_ok(&["-o", "/dev/null", &url]));
            std::thread::sleep(Duration::from_millis(500));
            // About 5 MiB moved; the remaining 15 MiB at 2 MiB/s take 7.5 s.
            let mut config = shared.live().config.clone();
            config.bandwidth.download = Rate(2 * MIB as u64);
            shared.apply(config).unwrap();
            download.join().unwrap();
        })
    });
    eprintln!("20 MiB, server limit lowered from 10 to 2 MiB/s after 0.5 s: {took:.2} s");
    assert!(took > 5.0, "the lowered limit did not apply to the running transfer ({took:.2} s)");
    assert!(took < 20.0, "{took:.2} s");
}
