//! Brute-force defence: failed logins per address ban it at accept (421
//! before any session exists), the allow-list exempts addresses, a ban ends
//! by itself, and a flood of simultaneous logins never makes password
//! hashing use more memory than `limits.hashing_memory`.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use ferroftpd::auth::password;
use ferroftpd::config::ByteSize;

/// Every server of this file uses the same hashing budget (the budget is
/// process-wide): two default-cost verifications at once.
const BUDGET: ByteSize = ByteSize::mib(38);

const BANNED: (u16, &str) = (421, "Too many failed logins from your address, try again later.");
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn builder() -> Builder {
    TestServer::builder().failed_login_delay_ms(0).max_login_failures(10).config(|c| {
        c.limits.hashing_memory = BUDGET;
    })
}

fn fail_login(ftp: &mut Ftp) -> Reply {
    ftp.expect("USER alice", 331);
    ftp.cmd("PASS wrong")
}

fn expect_banned_at_connect(ftp: Ftp) {
    let mut ftp = ftp;
    assert_eq!((ftp.greeting.code, ftp.greeting.message()), BANNED, "greeting of a banned address");
    ftp.closed_within(Duration::from_secs(5)).expect("a banned connection is closed at once");
}

#[test]
fn failed_logins_ban_the_address_until_the_ban_ends() {
    let server = builder()
        .config(|c| {
            c.ban.max_failures = 3;
            c.ban.window = 60;
            c.ban.duration = 2;
        })
        .start();
    let shared = server.shared();
    // Failures over two connections add up.
    let mut first = server.connect();
    assert_eq!(fail_login(&mut first).code, 530);
    assert_eq!(fail_login(&mut first).code, 530);
    let mut second = server.connect();
    let r = fail_login(&mut second);
    assert_eq!((r.code, r.message()), BANNED, "the failure that reaches the threshold");
    second.closed_within(Duration::from_secs(5)).expect("closed after the ban");
    let banned_at = Instant::now();

    // New connections are refused at accept, before any session state.
    assert!(wait_until(Duration::from_secs(5), || shared.limits.connections() == 1));
    for _ in 0..20 {
        expect_banned_at_connect(Ftp::connect_any(server.addr));
    }
    assert_eq!(shared.limits.connections(), 1, "refused connections never became sessions");
    assert_eq!(shared.bans.banned_count(), 1);
    // Another address is not affected, nor the session already open.
    let mut other = Ftp::connect_from(OTHER, server.addr);
    assert_eq!(other.greeting.code, 220, "{}", other.greeting);
    other.login(USER, PASSWORD);
    first.expect("NOOP", 200);
    first.login(USER, PASSWORD);

    // The ban ends by itself after its duration.
    let lifted = wait_until(Duration::from_secs(10), || Ftp::connect_any(server.addr).greeting.code == 220);
    let waited = banned_at.elapsed();
    assert!(lifted, "still banned {waited:?} after a 2 s ban");
    assert!(waited >= Duration::from_millis(1800), "ban lifted after only {waited:?}");
    server.connect().login(USER, PASSWORD);
}

#[test]
fn allow_listed_addresses_are_never_banned() {
    let server = builder()
        .config(|c| {
            c.ban.max_failures = 2;
            c.ban.allow = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        })
        .start();
    for _ in 0..2 {
        let mut ftp = server.connect();
        for _ in 0..3 {
            let r = fail_login(&mut ftp);
            assert_eq!((r.code, r.message()), (530, "Login incorrect."));
        }
    }
    server.connect().login(USER, PASSWORD);
    // 127.0.0.2 is not on the list.
    let mut thief = Ftp::connect_from(OTHER, server.addr);
    assert_eq!(fail_login(&mut thief).code, 530);
    assert_eq!(fail_login(&mut thief).code, BANNED.0);
    expect_banned_at_connect(Ftp::connect_from(OTHER, server.addr));
    server.connect().login(USER, PASSWORD);
}

#[test]
fn banning_off_only_closes_after_the_per_connection_limit() {
    let server = builder().max_login_failures(3).config(|c| c.ban.max_failures = 0).start();
    for _ in 0..5 {
        let mut ftp = server.connect();
        assert_eq!(fail_login(&mut ftp).code, 530);
        assert_eq!(fail_login(&mut ftp).code, 530);
        let r = fail_login(&mut ftp);
        assert_eq!((r.code, r.message()), (421, "Too many failed logins, closing connection."));
    }
    assert_eq!(server.shared().bans.tracked(), 0);
    server.connect().login(USER, PASSWORD);
}

#[test]
fn a_login_flood_stays_within_the_hashing_memory_budget() {
    let server = builder().config(|c| c.ban.max_failures = 0).start();
    assert_eq!(password::memory_budget(), BUDGET.bytes());
    assert_eq!(password::max_concurrent_verifications(), 2);
    let addr = server.addr;
    let start = Instant::now();
    let threads: Vec<_> = (0..40)
        .map(|i| {
            std::thread::spawn(move || {
                let mut ftp = Ftp::connect(addr);
                ftp.expect(&format!("USER {}", if i % 4 == 0 { "nobody" } else { USER }), 331);
                let good = i % 2 == 1;
                let r = ftp.cmd(if good { "PASS secret" } else { "PASS wrong" });
                assert_eq!(r.code, if good { 230 } else { 530 }, "login {i}: {r}");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a login of the flood failed");
    }
    let peak = password::peak_hashing_memory();
    eprintln!(
        "40 simultaneous logins in {:?}; peak hashing memory {} KiB of a {} KiB budget",
        start.elapsed(),
        peak / 1024,
        BUDGET.bytes() / 1024
    );
    assert!(peak >= password::hash_memory_bytes(), "no verification was counted");
    assert!(peak <= BUDGET.bytes(), "verifications held {peak} bytes at once, over the budget");
}
