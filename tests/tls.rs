//! FTPS (RFC 4217) end to end, with a self-signed certificate generated at
//! test time: the command set through suppaftp (rustls) over PROT P, curl
//! (explicit `--ssl-reqd` and implicit `ftps://`), lftp with forced TLS and
//! certificate verification, Python's ftplib, the TLS policy (plain logins
//! and clear data refused where TLS is required), data connections that do
//! not resume the control connection's session refused, handshake failures
//! that leave other sessions alone, and the certificate reloaded in place.

mod common;

use std::io::{Cursor, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::tls::*;
use common::*;
use suppaftp::{FtpError, Mode, RustlsConnector, RustlsFtpStream};

/// A server with TLS on and the strictest policy: TLS for login and data,
/// data connections resuming the control session (the default).
fn strict_server() -> TestServer {
    TestServer::builder()
        .tls()
        .config(|c| {
            c.tls.require_login = true;
            c.tls.require_data = true;
        })
        .start()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

// ---------------------------------------------------------------- suppaftp

/// suppaftp over explicit TLS (AUTH TLS, PBSZ 0, PROT P), timeouts on
/// every socket.
fn suppa_tls(server: &TestServer) -> RustlsFtpStream {
    let stream = TcpStream::connect_timeout(&server.addr, CONNECT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let ftp = RustlsFtpStream::connect_with_stream(stream).expect("greeting").passive_stream_builder(
        |addr: SocketAddr| {
            assert!(addr.ip().is_loopback(), "non-loopback data address {addr}");
            let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(FtpError::ConnectionError)?;
            s.set_read_timeout(Some(Duration::from_secs(60))).map_err(FtpError::ConnectionError)?;
            s.set_write_timeout(Some(Duration::from_secs(60))).map_err(FtpError::ConnectionError)?;
            Ok(s)
        },
    );
    let connector = RustlsConnector::from(client_config(&server.ca_file()));
    ftp.into_secure(connector, HOST).expect("AUTH TLS, PBSZ 0, PROT P")
}

#[test]
fn suppaftp_command_set_over_prot_p() {
    let server = strict_server();
    let mut ftp = suppa_tls(&server);
    ftp.login(USER, PASSWORD).expect("login over TLS");

    ftp.mkdir("dir").unwrap();
    ftp.cwd("dir").unwrap();
    let content = random_bytes(1_500_000, 41);
    ftp.put_file("a.bin", &mut Cursor::new(&content)).expect("STOR");
    assert_eq!(std::fs::read(server.paths.user("dir/a.bin")).unwrap(), content);
    assert_eq!(ftp.size("a.bin").unwrap(), content.len());

    // Several data connections in a row: more than the tickets the control
    // handshake issued, so the client's later resumptions use tickets from
    // resumed data connections.
    for _ in 0..4 {
        let got = ftp.retr_as_buffer("a.bin").expect("RETR").into_inner();
        assert!(got == content, "RETR returned different bytes");
    }

    // MLSD with facts, LIST and NLST.
    let mlsd = ftp.mlsd(None).expect("MLSD");
    let line = mlsd.iter().find(|l| l.ends_with(" a.bin")).unwrap_or_else(|| panic!("MLSD: {mlsd:?}"));
    assert!(line.to_ascii_lowercase().contains(&format!("size={};", content.len())), "{line}");
    assert!(line.to_ascii_lowercase().contains("type=file;"), "{line}");
    let list = ftp.list(None).expect("LIST");
    assert!(list.iter().any(|l| l.ends_with(" a.bin")), "{list:?}");
    assert_eq!(ftp.nlst(None).expect("NLST"), ["a.bin"]);

    // REST + RETR: the tail.
    ftp.resume_transfer(1_000_000).unwrap();
    let tail = ftp.retr_as_buffer("a.bin").expect("REST+RETR").into_inner();
    assert!(tail == content[1_000_000..], "REST+RETR tail differs");

    // REST + STOR: resume an interrupted upload.
    let partial = &content[..600_000];
    ftp.put_file("b.bin", &mut Cursor::new(partial)).unwrap();
    ftp.resume_transfer(600_000).unwrap();
    ftp.put_file("b.bin", &mut Cursor::new(&content[600_000..])).expect("REST+STOR");
    assert_eq!(std::fs::read(server.paths.user("dir/b.bin")).unwrap(), content);

    // APPE, RNFR/RNTO, DELE.
    ftp.append_file("b.bin", &mut Cursor::new(b"tail")).expect("APPE");
    assert_eq!(std::fs::metadata(server.paths.user("dir/b.bin")).unwrap().len(), content.len() as u64 + 4);
    ftp.rename("b.bin", "c.bin").unwrap();
    ftp.rm("c.bin").unwrap();
    assert!(!server.paths.user("dir/c.bin").exists());

    // Active mode: the server connects, and is the TLS server there too.
    ftp.set_mode(Mode::Active);
    let got = ftp.retr_as_buffer("a.bin").expect("RETR in active mode").into_inner();
    assert!(got == content, "active RETR returned different bytes");
    ftp.put_file("d.bin", &mut Cursor::new(b"active upload")).expect("active STOR");
    assert_eq!(std::fs::read(server.paths.user("dir/d.bin")).unwrap(), b"active upload");
    ftp.set_mode(Mode::Passive);

    ftp.quit().unwrap();
}

// -------------------------------------------------------------------- curl

fn curl(args: &[&str]) -> Output {
    require_program("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["--max-time", "60", "--connect-timeout", "10", "--noproxy", "*", "-sS"]).args(args);
    run(&mut cmd, Duration::from_secs(90))
}

fn curl_ok(args: &[&str]) -> Output {
    let out = curl(args);
    assert!(out.status.success(), "curl {args:?} failed: {}", describe(&out));
    out
}

#[test]
fn curl_explicit_and_implicit() {
    let server = strict_server();
    let ca = server.ca_file();
    let content = random_bytes(2_000_000, 42);
    std::fs::write(server.paths.user("file.bin"), &content).unwrap();
    let local = tempfile::tempdir().unwrap();
    let tls = ["--ssl-reqd", "--cacert", s(&ca)];

    // Explicit: listing, download, upload, resumed download.
    let out = curl_ok(&[&tls[..], &["-v", &server.url("")]].concat());
    assert!(String::from_utf8_lossy(&out.stdout).contains("file.bin"));
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("AUTH") && verbose.contains("PROT P"), "{verbose}");
    assert!(verbose.contains("SSL certificate verify ok"), "{verbose}");

    let got = local.path().join("got.bin");
    curl_ok(&[&tls[..], &["-o", s(&got), &server.url("file.bin")]].concat());
    assert!(std::fs::read(&got).unwrap() == content, "explicit download differs");

    let up = local.path().join("up.bin");
    std::fs::write(&up, &content[..777_777]).unwrap();
    curl_ok(&[&tls[..], &["-T", s(&up), &server.url("up.bin")]].concat());
    assert!(std::fs::read(server.paths.user("up.bin")).unwrap() == content[..777_777]);

    std::fs::write(&got, &content[..1_234_567]).unwrap();
    curl_ok(&[&tls[..], &["-C", "-", "-o", s(&got), &server.url("file.bin")]].concat());
    assert!(std::fs::read(&got).unwrap() == content, "resumed download differs");

    // Implicit: ftps:// on the implicit port.
    let implicit = server.implicit_addr.expect("implicit listener");
    let url = |path: &str| format!("ftps://{USER}:{PASSWORD}@127.0.0.1:{}/{path}", implicit.port());
    let got2 = local.path().join("got2.bin");
    curl_ok(&["--cacert", s(&ca), "-o", s(&got2), &url("file.bin")]);
    assert!(std::fs::read(&got2).unwrap() == content, "implicit download differs");
    curl_ok(&["--cacert", s(&ca), "-T", s(&up), &url("up2.bin")]);
    assert!(std::fs::read(server.paths.user("up2.bin")).unwrap() == content[..777_777]);
    let out = curl_ok(&["--cacert", s(&ca), &url("")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("up2.bin"));

    // A certificate the client does not trust: refused by curl (60).
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = write_certificate(other.path());
    let out = curl(&["--ssl-reqd", "--cacert", s(&other_ca), &server.url("")]);
    assert_eq!(out.status.code(), Some(60), "untrusted certificate: {}", describe(&out));

    // Plain FTP where TLS is required: the login is refused (curl 67).
    let out = curl(&[&server.url("")]);
    assert_eq!(out.status.code(), Some(67), "plain login: {}", describe(&out));
}

// -------------------------------------------------------------------- lftp

fn lftp(server: &TestServer, target: &str, script: &str) -> Output {
    require_program("lftp");
    let settings = format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; \
         set ssl:ca-file {}; set ssl:verify-certificate true; set ssl:check-hostname true; \
         set net:max-retries 1; set net:timeout 20; set net:reconnect-interval-base 1; \
         set net:persist-retries 0; set cmd:fail-exit yes; set xfer:clobber on",
        s(&server.ca_file())
    );
    let mut cmd = Command::new("lftp");
    cmd.args(["-u", &format!("{USER},{PASSWORD}"), target, "-e", &format!("{settings}; {script}; quit")]);
    cmd.env("HOME", server.paths.base.join("lftp-home"))
        .env("LFTP_HOME", server.paths.base.join("lftp-home"));
    run(&mut cmd, Duration::from_secs(300))
}

#[test]
fn lftp_forced_tls_with_verified_certificate() {
    let server = strict_server();
    let local = tempfile::tempdir().unwrap();
    let content = random_bytes(5_000_000, 43);
    let src = local.path().join("src.bin");
    std::fs::write(&src, &content).unwrap();
    let back = local.path().join("back.bin");

    let target = format!("ftp://localhost:{}", server.port);
    let script = format!(
        "put {} -o up.bin; get up.bin -o {}; cls -l; mkdir sub; cd sub; put {} -o x.bin; cls",
        s(&src),
        s(&back),
        s(&src)
    );
    let out = lftp(&server, &target, &script);
    assert!(out.status.success(), "lftp failed: {}", describe(&out));
    assert!(std::fs::read(server.paths.user("up.bin")).unwrap() == content, "lftp upload differs");
    assert!(std::fs::read(&back).unwrap() == content, "lftp download differs");
    assert!(std::fs::read(server.paths.user("sub/x.bin")).unwrap() == content);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("up.bin") && listing.contains("x.bin"), "{listing}");

    // Implicit FTPS (ftps://).
    let implicit = server.implicit_addr.expect("implicit listener");
    let back2 = local.path().join("back2.bin");
    let out = lftp(
        &server,
        &format!("ftps://localhost:{}", implicit.port()),
        &format!("get up.bin -o {}", s(&back2)),
    );
    assert!(out.status.success(), "lftp ftps:// failed: {}", describe(&out));
    assert!(std::fs::read(&back2).unwrap() == content, "lftp implicit download differs");
}

// ------------------------------------------------------------------ ftplib

const FTPLIB_SCRIPT: &str = r#"
import ftplib, ssl, sys
host, port, user, password, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)

class ReusingFTP_TLS(ftplib.FTP_TLS):
    """Data connections resume the control connection's TLS session."""
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

ftp = ReusingFTP_TLS(context=ctx)
ftp.connect(host, port, timeout=30)
ftp.login(user, password)
ftp.prot_p()
ftp.storbinary("STOR py.txt", __import__("io").BytesIO(b"from python\n"))
chunks = []
ftp.retrbinary("RETR py.txt", chunks.append)
assert b"".join(chunks) == b"from python\n", chunks
assert "py.txt" in ftp.nlst()
print("reusing:", ftp.sock.version())
ftp.quit()

# Stock FTP_TLS does not resume: refused where reuse is required.
plain = ftplib.FTP_TLS(context=ctx)
plain.connect(host, port, timeout=30)
plain.login(user, password)
plain.prot_p()
try:
    plain.nlst()
    print("stock: accepted")
except (ftplib.error_perm, ftplib.error_temp) as e:
    print("stock: refused", str(e))
except ssl.SSLError:
    # The refused data connection fails first; the reply follows.
    try:
        plain.getresp()
    except (ftplib.error_perm, ftplib.error_temp) as e:
        print("stock: refused", str(e))
"#;

#[test]
fn python_ftplib_with_session_reuse() {
    require_program("python3");
    let server = strict_server();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        FTPLIB_SCRIPT,
        "localhost",
        &server.port.to_string(),
        USER,
        PASSWORD,
        s(&server.ca_file()),
    ]);
    let out = run(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success(), "ftplib: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("reusing: TLSv1."), "{stdout}");
    assert!(stdout.contains("stock: refused 522"), "{stdout}");
    assert_eq!(std::fs::read(server.paths.user("py.txt")).unwrap(), b"from python\n");
}

// ------------------------------------------------------------------ policy

#[test]
fn plain_login_refused_where_tls_is_required() {
    let server = strict_server();
    let mut ftp = server.connect();
    let reply = ftp.cmd(&format!("USER {USER}"));
    assert_eq!(reply.code, 530, "{reply}");
    assert!(reply.message().contains("AUTH TLS"), "the refusal says why: {reply}");
    // No exemption for anonymous by default.
    assert_eq!(ftp.cmd("USER anonymous").code, 530);
    assert_eq!(ftp.cmd("PASS secret").code, 503, "no USER pending");
    // The same connection may still switch to TLS and log in.
    ftp.expect("AUTH TLS", 234);
    let config = client_config(&server.ca_file());
    let mut tls = TlsFtp::explicit_from(ftp, &config);
    tls.login(USER, PASSWORD);
    tls.protect_data();
    assert_eq!(tls.download("RETR /ro/readme.txt"), RO_README);

    // Anonymous exempt: anonymous logs in and downloads in clear, alice not.
    let server = TestServer::builder()
        .tls()
        .config(|c| {
            c.tls.require_data = true;
            c.tls.anonymous_exempt = true;
        })
        .start();
    let mut ftp = server.connect();
    let reply = ftp.cmd(&format!("USER {USER}"));
    assert_eq!(reply.code, 530, "{reply}");
    assert!(reply.message().contains("Non-anonymous"), "{reply}");
    ftp.login("anonymous", "guest@example.org");
    assert_eq!(ftp.retr("/pub/hello.txt"), HELLO);

    // An exempt listener keeps TLS optional; the implicit one still speaks TLS.
    let server = TestServer::builder()
        .tls()
        .config(|c| {
            c.tls.require_data = true;
            c.tls.exempt_listen = c.server.listen.clone();
        })
        .start();
    let mut ftp = server.login();
    assert_eq!(ftp.retr("/ro/readme.txt"), RO_README);
}

#[test]
fn auth_pbsz_prot_ccc_replies() {
    let server = strict_server();
    let mut ftp = server.connect();
    let feat = ftp.expect("FEAT", 211).text();
    for f in [" AUTH TLS", " PBSZ", " PROT"] {
        assert!(feat.lines().any(|l| l == f), "FEAT lacks `{f}`:\n{feat}");
    }
    assert_eq!(ftp.cmd("PBSZ 0").code, 503);
    assert_eq!(ftp.cmd("PROT P").code, 503);
    assert_eq!(ftp.cmd("CCC").code, 533);
    assert_eq!(ftp.cmd("AUTH KERBEROS_V4").code, 504);
    ftp.expect("AUTH SSL", 234);
    let config = client_config(&server.ca_file());
    let mut tls = TlsFtp::explicit_from(ftp, &config);
    assert_eq!(tls.cmd("AUTH TLS").code, 503, "already in TLS");
    assert_eq!(tls.cmd("PROT P").code, 503, "PROT before PBSZ");
    assert_eq!(tls.cmd("PBSZ x").code, 501);
    let reply = tls.expect("PBSZ 0", 200);
    assert!(reply.message().contains("PBSZ=0"), "{reply}");
    assert_eq!(tls.cmd("PROT S").code, 536);
    assert_eq!(tls.cmd("PROT E").code, 536);
    assert_eq!(tls.cmd("PROT Q").code, 504);
    let reply = tls.cmd("PROT C");
    assert_eq!(reply.code, 534, "clear data refused by policy: {reply}");
    assert_eq!(tls.cmd("CCC").code, 534);
    tls.login(USER, PASSWORD);
    assert_eq!(tls.cmd("AUTH TLS").code, 503);

    // Logged in without PROT P: transfers refused with 521, before 150.
    let mut no_prot = TlsFtp::explicit(server.addr, &config);
    no_prot.login(USER, PASSWORD);
    no_prot.epsv();
    let reply = no_prot.cmd("RETR /ro/readme.txt");
    assert_eq!(reply.code, 521, "{reply}");
    assert!(reply.message().contains("PROT P"), "{reply}");
    no_prot.protect_data();
    assert_eq!(no_prot.download("RETR /ro/readme.txt"), RO_README);
    let stat = no_prot.expect("STAT", 211).text();
    assert!(stat.contains("data protection Private"), "{stat}");

    // Optional TLS: PROT C is accepted and data goes in clear.
    let optional = TestServer::builder().tls().start();
    let mut ftp = optional.connect();
    ftp.expect("AUTH TLS", 234);
    let mut tls = TlsFtp::explicit_from(ftp, &client_config(&optional.ca_file()));
    tls.login(USER, PASSWORD);
    tls.expect("PBSZ 0", 200);
    tls.expect("PROT C", 200);
    let addr = tls.epsv();
    let data = connect_data(addr);
    tls.expect("RETR /ro/readme.txt", 150);
    assert_eq!(read_all(data), RO_README);
    assert_eq!(tls.read_reply().code, 226);

    // Without a certificate, no TLS is advertised or accepted.
    let plain = TestServer::start();
    let mut ftp = plain.connect();
    let feat = ftp.expect("FEAT", 211).text();
    assert!(!feat.contains("AUTH") && !feat.contains("PBSZ") && !feat.contains("PROT"), "{feat}");
    assert_eq!(ftp.cmd("AUTH TLS").code, 502);
}

#[test]
fn implicit_tls_starts_protected() {
    let server = strict_server();
    let config = client_config(&server.ca_file());
    let mut ftp = TlsFtp::implicit(server.implicit_addr.expect("implicit listener"), &config);
    ftp.login(USER, PASSWORD);
    // PBSZ 0 / PROT P are implied on the implicit port.
    assert_eq!(ftp.download("RETR /ro/readme.txt"), RO_README);
    let reply = ftp.upload("STOR up.txt", b"implicit upload\n");
    assert_eq!(reply.code, 226, "{reply}");
    assert_eq!(std::fs::read(server.paths.user("up.txt")).unwrap(), b"implicit upload\n");
    assert_eq!(ftp.cmd("AUTH TLS").code, 503);
}

// ----------------------------------------------------------- session reuse

#[test]
fn data_connection_must_resume_the_control_session() {
    let server = strict_server();
    let config = client_config(&server.ca_file());
    let mut victim = TlsFtp::explicit(server.addr, &config);
    victim.login(USER, PASSWORD);
    victim.protect_data();

    // A data connection that does a full handshake: 522, session lives on.
    let (first, rest) = victim.download_with("RETR /ro/readme.txt", &without_resumption(&config));
    assert_eq!(first.code, 150, "{first}");
    let (data, last) = rest.expect("a final reply");
    assert!(data.map_or(true, |d| d.is_empty()), "no data may flow over a refused connection");
    assert_eq!(last.code, 522, "{last}");
    assert!(last.message().contains("not resumed"), "{last}");
    assert_eq!(victim.download("RETR /ro/readme.txt"), RO_README);

    // A thief with its own FTPS session (and so its own tickets) takes the
    // victim's passive connection: its resumption attempt fails.
    let thief_config = client_config(&server.ca_file());
    let mut thief = TlsFtp::explicit(server.addr, &thief_config);
    thief.login("anonymous", "x");
    thief.expect("NOOP", 200); // tickets read
    for attempt in 0..2 {
        let addr = victim.epsv();
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).unwrap();
        victim.expect("RETR /ro/readme.txt", 150);
        let stolen = tls_over(tcp, &thief_config).and_then(|mut s| read_to_end(&mut s));
        assert!(stolen.map_or(true, |d| d.is_empty()), "attempt {attempt}: the thief got data");
        let last = victim.read_reply();
        // The second attempt offers the tickets its first (full) handshake
        // got: they were never committed to the victim's session.
        assert_eq!(last.code, 522, "attempt {attempt}: {last}");
    }
    assert_eq!(victim.download("RETR /ro/readme.txt"), RO_README, "the victim goes on");

    // TLS 1.2 resumes by session ID; the same rules hold.
    let tls12 = client_config_versions(&server.ca_file(), &[&rustls::version::TLS12]);
    let mut old = TlsFtp::explicit(server.addr, &tls12);
    old.login(USER, PASSWORD);
    old.protect_data();
    for _ in 0..3 {
        assert_eq!(old.download("RETR /ro/readme.txt"), RO_README);
    }
    let (_, rest) = old.download_with("RETR /ro/readme.txt", &without_resumption(&tls12));
    assert_eq!(rest.expect("final reply").1.code, 522);

    // With reuse not required, a full handshake is accepted.
    let lax = TestServer::builder().tls().config(|c| c.tls.require_session_reuse = false).start();
    let config = client_config(&lax.ca_file());
    let mut ftp = TlsFtp::explicit(lax.addr, &config);
    ftp.login(USER, PASSWORD);
    ftp.protect_data();
    let (first, rest) = ftp.download_with("RETR /ro/readme.txt", &without_resumption(&config));
    assert_eq!(first.code, 150);
    let (data, last) = rest.expect("final reply");
    assert_eq!(data.expect("data"), RO_README);
    assert_eq!(last.code, 226);
}

#[test]
fn upload_without_close_notify_is_accepted() {
    let server = strict_server();
    let config = client_config(&server.ca_file());
    let mut ftp = TlsFtp::explicit(server.addr, &config);
    ftp.login(USER, PASSWORD);
    ftp.protect_data();
    let content = random_bytes(300_000, 44);
    let reply = ftp.upload_with("STOR abrupt.bin", &content, false);
    assert_eq!(reply.code, 226, "{reply}");
    assert!(std::fs::read(server.paths.user("abrupt.bin")).unwrap() == content);
}

// ------------------------------------------------------ failures, injection

#[test]
fn handshake_failures_leave_other_sessions_alone() {
    let server = strict_server();
    let config = client_config(&server.ca_file());
    let mut good = TlsFtp::explicit(server.addr, &config);
    good.login(USER, PASSWORD);
    good.protect_data();

    // Clear text where the ClientHello belongs.
    let mut garbage = server.connect();
    garbage.expect("AUTH TLS", 234);
    garbage.send("USER alice");
    garbage.closed_within(Duration::from_secs(10)).expect("server closes after a failed handshake");

    // A plain client on the implicit port.
    let implicit = server.implicit_addr.expect("implicit listener");
    let mut raw = TcpStream::connect_timeout(&implicit, CONNECT_TIMEOUT).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut raw, b"USER anonymous\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("220"), "no greeting in clear on the implicit port");

    // A client that does not trust the certificate aborts its handshake.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = write_certificate(other.path());
    let mut distrust = server.connect();
    distrust.expect("AUTH TLS", 234);
    assert!(tls_over(distrust.into_tcp(), &client_config(&other_ca)).is_err());
    assert!(tls_connect(implicit, &client_config(&other_ca)).is_err());

    // A client that vanishes mid-handshake.
    let mut vanish = server.connect();
    vanish.expect("AUTH TLS", 234);
    drop(vanish);

    assert_eq!(good.download("RETR /ro/readme.txt"), RO_README, "the established session goes on");
    let mut again = TlsFtp::explicit(server.addr, &config);
    again.login(USER, PASSWORD);
}

#[test]
fn clear_text_pipelined_after_auth_is_discarded() {
    let server = strict_server();
    let mut ftp = server.connect();
    // An attacker in the path appends a command to the client's AUTH.
    ftp.send_bytes(b"AUTH TLS\r\nUSER alice\r\n");
    assert_eq!(ftp.read_reply().code, 234);
    let mut tls = TlsFtp::explicit_from(ftp, &client_config(&server.ca_file()));
    let reply = tls.cmd(&format!("PASS {PASSWORD}"));
    assert_eq!(reply.code, 503, "the injected USER must not count: {reply}");
}

// ------------------------------------------------------------------ reload

#[test]
fn reload_replaces_the_certificate_without_dropping_sessions() {
    let server = strict_server();
    let keep = tempfile::tempdir().unwrap();
    let old_ca = keep.path().join("old.pem");
    std::fs::copy(server.ca_file(), &old_ca).unwrap();
    let old_config = client_config(&old_ca);
    let mut session = TlsFtp::explicit(server.addr, &old_config);
    session.login(USER, PASSWORD);
    session.protect_data();

    write_certificate(&server.paths.base);
    server.reload().expect("reload with a new certificate");
    let new_config = client_config(&server.ca_file());

    // The running session keeps its TLS session (and resumes it).
    assert_eq!(session.download("RETR /ro/readme.txt"), RO_README);
    // New connections get the new certificate.
    let mut plain = server.connect();
    plain.expect("AUTH TLS", 234);
    assert!(tls_over(plain.into_tcp(), &old_config).is_err(), "old certificate still served");
    let mut fresh = TlsFtp::explicit(server.addr, &new_config);
    fresh.login(USER, PASSWORD);
    let mut implicit = TlsFtp::implicit(server.implicit_addr.expect("implicit"), &new_config);
    implicit.login(USER, PASSWORD);

    // A broken certificate file: reload fails, the last good one stays.
    std::fs::write(server.ca_file(), "not a certificate\n").unwrap();
    let e = server.reload().expect_err("reload with a broken certificate");
    assert!(format!("{e:#}").contains("no certificate"), "{e:#}");
    let mut after = TlsFtp::explicit(server.addr, &new_config);
    after.login(USER, PASSWORD);
    assert_eq!(session.download("RETR /ro/readme.txt"), RO_README);
}

// --------------------------------------------------------------------- CLI

#[test]
fn cert_self_signed_command() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let bin = env!("CARGO_BIN_EXE_ferroftpd");
    let args = [
        "cert",
        "self-signed",
        "--host",
        "ftp.example.org",
        "--host",
        "192.0.2.7",
        "--out-cert",
        s(&cert),
        "--out-key",
        s(&key),
    ];
    let out = run(Command::new(bin).args(args), Duration::from_secs(30));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("certificate = "), "{}", describe(&out));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is private");
    }
    ferroftpd::tls::TlsSetup::load(&cert, &key).expect("the pair loads");

    // Existing files are kept unless --force.
    let out = run(Command::new(bin).args(args), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let out = run(Command::new(bin).args(args).arg("--force"), Duration::from_secs(30));
    assert!(out.status.success(), "{}", describe(&out));

    // check-config reads them, and explains a mismatch.
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let toml = dir.path().join("ftp.toml");
    let write_config = |key_file: &Path| {
        std::fs::write(
            &toml,
            format!(
                "[auth]\nchain = [\"anonymous\"]\n[anonymous]\nroot = \"root\"\n[tls]\ncertificate = \"c.pem\"\nkey = \"{}\"\nimplicit_listen = [\"127.0.0.1:0\"]\n",
                s(key_file)
            ),
        )
        .unwrap();
    };
    write_config(&key);
    let out = run(Command::new(bin).args(["check-config", s(&toml)]), Duration::from_secs(30));
    assert!(out.status.success(), "{}", describe(&out));
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_key) = write_certificate(&other);
    write_config(&other_key);
    let out = run(Command::new(bin).args(["check-config", s(&toml)]), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ftp.toml:6:1: tls.certificate") && err.contains("does not belong"), "{err}");
}
