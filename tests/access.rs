//! Address rules with real connections: an address denied by `[access]`
//! gets 421 at connect (127.0.0.2 serves as a second loopback address), an
//! allow list shuts out everything else, an account restricted to a
//! network cannot log in from outside it, and the rules change on reload
//! without a restart.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;

const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn refused_from(server: &TestServer, source: Ipv4Addr) -> bool {
    let mut ftp = Ftp::connect_from(source, server.addr);
    if ftp.greeting.code != 421 {
        assert_eq!(ftp.greeting.code, 220, "{}", ftp.greeting);
        return false;
    }
    assert!(ftp.greeting.text().contains("Access denied"), "{}", ftp.greeting);
    ftp.closed_within(Duration::from_secs(5)).unwrap();
    true
}

#[test]
fn a_denied_network_gets_421_at_connect() {
    let server =
        TestServer::builder().config(|c| c.access.deny = vec!["127.0.0.2/32".parse().unwrap()]).start();
    assert!(refused_from(&server, OTHER));
    assert!(!refused_from(&server, Ipv4Addr::LOCALHOST));
    let mut ftp = server.login();
    ftp.expect("PWD", 257);
}

#[test]
fn an_allow_list_refuses_everything_else_and_a_more_specific_deny_wins() {
    let server = TestServer::builder()
        .config(|c| {
            c.access.allow = vec!["127.0.0.0/8".parse().unwrap()];
            c.access.deny = vec!["127.0.0.2".parse().unwrap()];
        })
        .start();
    assert!(!refused_from(&server, Ipv4Addr::LOCALHOST));
    assert!(refused_from(&server, OTHER));
    let server =
        TestServer::builder().config(|c| c.access.allow = vec!["127.0.0.1/32".parse().unwrap()]).start();
    assert!(refused_from(&server, OTHER));
    assert!(!refused_from(&server, Ipv4Addr::LOCALHOST));
}

#[test]
fn an_account_restricted_to_a_network_logs_in_only_from_there() {
    let server = TestServer::builder()
        .alice(|a| a.shaping.allow_from = vec!["127.0.0.2/32".parse().unwrap()])
        .config(|c| c.limits.max_login_failures = 5)
        .start();
    // From elsewhere: the reply of a wrong password, so it tells nothing.
    let mut ftp = server.connect();
    ftp.expect(&format!("USER {USER}"), 331);
    let reply = ftp.expect(&format!("PASS {PASSWORD}"), 530);
    assert_eq!(reply.message(), "Login incorrect.");
    // From the allowed address it works.
    let mut ftp = Ftp::connect_from(OTHER, server.addr);
    assert_eq!(ftp.greeting.code, 220);
    ftp.login(USER, PASSWORD);
    ftp.expect("PWD", 257);
    // Anonymous is not affected.
    let mut anon = server.connect();
    anon.login("anonymous", "guest@example.org");
}

#[test]
fn rules_change_on_reload_without_restart() {
    let server = TestServer::start();
    let shared = server.shared();
    assert!(!refused_from(&server, OTHER));
    // A session already running stays; new connections follow the new rules.
    let mut running = Ftp::connect_from(OTHER, server.addr);
    running.login(USER, PASSWORD);
    let mut config = shared.live().config.clone();
    config.access.deny = vec!["127.0.0.2".parse().unwrap()];
    shared.apply(config.clone()).unwrap();
    assert!(refused_from(&server, OTHER));
    assert!(!refused_from(&server, Ipv4Addr::LOCALHOST));
    running.expect("NOOP", 200);
    config.access.deny.clear();
    shared.apply(config).unwrap();
    assert!(!refused_from(&server, OTHER));
}
