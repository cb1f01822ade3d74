//! The web admin over plain HTTP, against the real binary: login and
//! cookies, CSRF refusals, bad input answered with a form error (never a
//! 500), login throttling, a user and a rule added through the admin then
//! holding for a real FTP client, settings saved and applied (a new passive
//! range in a PASV reply), and a live session disconnected.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::admin::{ftp_login, site, ADMIN, ADMIN_PW, CONFIG_COMMENT};
use common::http::{login, request};
use common::{wait_until, Ftp};

fn csrf(admin: SocketAddr, cookie: &str, page: &str) -> String {
    let r = request(admin, "GET", page, Some(cookie), &[]);
    assert_eq!(r.status, 200, "{page}: {}", r.body);
    r.field("csrf").expect("a CSRF field")
}

#[test]
fn login_cookie_and_pages_need_a_session() {
    let (_dir, server) = site();
    let admin = server.admin_addr();
    let r = request(admin, "GET", "/", None, &[]);
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    let r = request(admin, "POST", "/login", None, &[("name", ADMIN), ("password", "wrong")]);
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    let r = request(admin, "POST", "/login", None, &[("name", ADMIN), ("password", ADMIN_PW)]);
    assert_eq!(r.status, 303);
    let set = r.header("set-cookie").expect("cookie");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap();
    for page in ["/", "/users", "/permissions", "/settings"] {
        let r = request(admin, "GET", page, Some(cookie), &[]);
        assert_eq!(r.status, 200, "{page}");
        assert!(r.body.contains("Log out"), "{page}");
    }
    // A made-up cookie is no session.
    let r = request(admin, "GET", "/users", Some("ferroftpd_admin=forged"), &[]);
    assert_eq!(r.status, 303);
}

#[test]
fn changes_without_the_csrf_token_are_refused() {
    let (dir, server) = site();
    let admin = server.admin_addr();
    let cookie = login(admin, ADMIN, ADMIN_PW);
    let root = dir.path().join("homes/bob");
    let user =
        [("name", "mallory"), ("password", "pw-123456"), ("root", root.to_str().unwrap()), ("enabled", "on")];
    for token in [None, Some("wrong-token")] {
        let mut form = user.to_vec();
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let r = request(admin, "POST", "/users/save", Some(&cookie), &form);
        assert_eq!(r.status, 403, "{token:?}");
    }
    let r = request(admin, "GET", "/users", Some(&cookie), &[]);
    assert!(!r.body.contains("mallory"), "no user was created");
    let before = std::fs::read_to_string(dir.path().join("ferroftpd.toml")).unwrap();
    let r = request(admin, "POST", "/settings", Some(&cookie), &[("passive.port_range", "41000-41010")]);
    assert_eq!(r.status, 403);
    assert_eq!(std::fs::read_to_string(dir.path().join("ferroftpd.toml")).unwrap(), before);
    // The log is read from the server's stderr by another thread: wait for it.
    assert!(
        wait_until(Duration::from_secs(10), || server.log_text().contains("CSRF")),
        "refusals are logged"
    );
}

#[test]
fn bad_input_gets_a_form_error_and_changes_nothing() {
    let (dir, server) = site();
    let admin = server.admin_addr();
    let cookie = login(admin, ADMIN, ADMIN_PW);
    let token = csrf(admin, &cookie, "/users/edit");
    let r = request(
        admin,
        "POST",
        "/users/save",
        Some(&cookie),
        &[("csrf", &token), ("name", "carol"), ("password", "pw-123456"), ("root", "/no/such/dir")],
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("does not exist"), "{}", r.body);
    let r = request(
        admin,
        "POST",
        "/users/save",
        Some(&cookie),
        &[("csrf", &token), ("name", "bad name"), ("password", "pw"), ("root", dir.path().to_str().unwrap())],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // A reversed passive range: the error sits next to its field; the file stays.
    let config = dir.path().join("ferroftpd.toml");
    let before = std::fs::read_to_string(&config).unwrap();
    let r = request(
        admin,
        "POST",
        "/settings",
        Some(&cookie),
        &[("csrf", &token), ("passive.port_range", "42010-42000")],
    );
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("class=\"field-error\"") && r.body.contains("the range is reversed"),
        "{}",
        r.body
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    // Garbage where a number goes.
    let r = request(
        admin,
        "POST",
        "/settings",
        Some(&cookie),
        &[("csrf", &token), ("limits.max_clients", "lots")],
    );
    assert_eq!(r.status, 422);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
}

#[test]
fn failed_logins_are_throttled() {
    let (_dir, server) = site();
    let admin = server.admin_addr();
    for _ in 0..5 {
        let r = request(admin, "POST", "/login", None, &[("name", ADMIN), ("password", "nope")]);
        assert_eq!(r.status, 401);
    }
    let r = request(admin, "POST", "/login", None, &[("name", ADMIN), ("password", ADMIN_PW)]);
    assert_eq!(r.status, 429, "even the right password waits");
}

#[test]
fn a_user_and_a_rule_from_the_admin_hold_for_ftp() {
    let (dir, server) = site();
    let admin = server.admin_addr();
    let cookie = login(admin, ADMIN, ADMIN_PW);
    let token = csrf(admin, &cookie, "/users/edit");
    let root = dir.path().join("homes/bob");
    let r = request(
        admin,
        "POST",
        "/users/save",
        Some(&cookie),
        &[
            ("csrf", &token),
            ("name", "bob"),
            ("password", "bob-pw-1"),
            ("root", root.to_str().unwrap()),
            ("enabled", "on"),
            ("groups", "staff"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let secret = root.join("secret");
    let r = request(
        admin,
        "POST",
        "/permissions/add",
        Some(&cookie),
        &[
            ("csrf", &token),
            ("who", "bob"),
            ("kind", "tree"),
            ("place", secret.to_str().unwrap()),
            ("deny", "read"),
        ],
    );
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap_or("").contains("ok="), "{:?}", r.header("location"));
    let text = std::fs::read_to_string(dir.path().join("ferroftpd.toml")).unwrap();
    assert!(text.starts_with(CONFIG_COMMENT) && text.contains("# any port"), "comments kept:\n{text}");
    assert!(text.contains("[[acl.rule]]"), "{text}");

    let mut ftp = ftp_login(server.addr, "bob", "bob-pw-1").expect("bob logs in");
    assert!(ftp.retr_as_buffer("/in/hello.txt").is_ok(), "allowed elsewhere");
    assert!(ftp.retr_as_buffer("/secret/plan.txt").is_err(), "the rule denies reading");
    let r =
        request(admin, "GET", "/permissions?user=bob&path=%2Fsecret%2Fplan.txt&op=read", Some(&cookie), &[]);
    assert!(r.body.contains("DENIED"), "explain says why: {}", r.body);
}

#[test]
fn settings_apply_and_a_session_can_be_disconnected() {
    let (dir, server) = site();
    let admin = server.admin_addr();
    let cookie = login(admin, ADMIN, ADMIN_PW);
    let token = csrf(admin, &cookie, "/settings");
    let port = common::free_passive_port();
    let range = format!("{port}-{port}");
    let r = request(
        admin,
        "POST",
        "/settings",
        Some(&cookie),
        &[("csrf", &token), ("passive.port_range", &range)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let text = std::fs::read_to_string(dir.path().join("ferroftpd.toml")).unwrap();
    assert!(text.contains(&format!("port_range = [{port}, {port}]")), "{text}");

    let mut ftp = Ftp::connect(server.addr);
    ftp.send("USER anonymous");
    ftp.read_reply();
    ftp.send("PASS x");
    assert_eq!(ftp.read_reply().code, 230);
    ftp.send("PASV");
    let pasv = ftp.read_reply();
    let text = pasv.text();
    let inner =
        text.split_once('(').and_then(|(_, r)| r.split_once(')')).map(|(i, _)| i).expect("227 (h,h,h,h,p,p)");
    let p: Vec<u16> = inner.split(',').map(|x| x.trim().parse().unwrap()).collect();
    assert_eq!(p[4] * 256 + p[5], port, "{}", pasv.text());

    let r = request(admin, "GET", "/", Some(&cookie), &[]);
    assert!(r.body.contains("anonymous"), "the session is listed: {}", r.body);
    let id = r.field("id").expect("a disconnect button");
    let r = request(admin, "POST", "/sessions/disconnect", Some(&cookie), &[("csrf", &token), ("id", &id)]);
    assert_eq!(r.status, 303);
    ftp.set_read_timeout(Duration::from_secs(10));
    assert_eq!(ftp.read_reply().code, 421);
    assert!(wait_until(Duration::from_secs(10), || !request(admin, "GET", "/", Some(&cookie), &[])
        .body
        .contains("name=\"id\"")));
    assert!(wait_until(Duration::from_secs(10), || server.log_text().contains("disconnected by an admin")));
}
