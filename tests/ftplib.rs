//! Python's ftplib as a client: a script that checks every step itself and
//! exits non-zero on the first surprise; the test then checks its output
//! and the files it left on disk.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const SCRIPT: &str = r#"
import ftplib, io, json, sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
report = {}

def check(cond, what):
    if not cond:
        print("CHECK FAILED: " + what, file=sys.stderr)
        sys.exit(1)

def perm_error(code, fn, *args):
    try:
        fn(*args)
    except ftplib.error_perm as e:
        check(str(e).startswith(code), "expected %s, got %s" % (code, e))
        return
    check(False, "expected error %s from %s%r" % (code, fn.__name__, args))

# A wrong password is a 530 (error_perm).
bad = ftplib.FTP()
bad.connect(host, port, timeout=30)
perm_error("530", bad.login, user, "wrong")
bad.close()

ftp = ftplib.FTP(encoding="utf-8")
ftp.connect(host, port, timeout=30)
check(ftp.getwelcome().startswith("220"), "welcome: " + ftp.getwelcome())
ftp.login(user, password)
check(ftp.pwd() == "/", "pwd at login: " + ftp.pwd())
check(ftp.sendcmd("NOOP").startswith("200"), "NOOP")
check(ftp.sendcmd("SYST").startswith("215"), "SYST")

# Directories.
check(ftp.mkd("pydir") == "/pydir", "mkd returns the path")
ftp.cwd("pydir")
check(ftp.pwd() == "/pydir", "pwd after cwd: " + ftp.pwd())
ftp.mkd("inner")
ftp.rmd("inner")
perm_error("550", ftp.rmd, "inner")
perm_error("550", ftp.cwd, "/no/such/dir")

# Binary transfers.
data = bytes(range(256)) * 4099
ftp.storbinary("STOR bin.dat", io.BytesIO(data))
buf = io.BytesIO()
ftp.retrbinary("RETR bin.dat", buf.write)
check(buf.getvalue() == data, "retrbinary content")
check(ftp.size("bin.dat") == len(data), "SIZE")
# Resume a download at an offset.
buf = io.BytesIO()
ftp.retrbinary("RETR bin.dat", buf.write, rest=1000)
check(buf.getvalue() == data[1000:], "retrbinary with rest")

# Text transfers (TYPE A): storlines sends CR LF, the server stores LF.
text = "first line\nsecond line\n\nlast\n"
ftp.storlines("STOR text.txt", io.BytesIO(text.encode()))
lines = []
ftp.retrlines("RETR text.txt", lines.append)
check(lines == ["first line", "second line", "", "last"], "retrlines: %r" % lines)

# UTF-8 names.
name = "žluťoučký kůň.txt"
ftp.storbinary("STOR " + name, io.BytesIO("kůň".encode()))
buf = io.BytesIO()
ftp.retrbinary("RETR " + name, buf.write)
check(buf.getvalue() == "kůň".encode(), "UTF-8 name round trip")

# Listings.
names = sorted(ftp.nlst())
check(names == sorted(["bin.dat", "text.txt", name]), "nlst: %r" % names)
facts = dict(ftp.mlsd(facts=["type", "size", "modify", "perm", "unique"]))
for n in ("bin.dat", "text.txt", name):
    check(n in facts, "mlsd lacks " + n)
    f = facts[n]
    check(f.get("type") == "file", "type of %s: %r" % (n, f))
    check(len(f.get("modify", "")) >= 14 and f["modify"][:14].isdigit(), "modify of %s: %r" % (n, f))
    check("r" in f.get("perm", "") and "w" in f.get("perm", ""), "perm of %s: %r" % (n, f))
    check(f.get("unique"), "unique of %s: %r" % (n, f))
check(facts["bin.dat"]["size"] == str(len(data)), "size fact: %r" % facts["bin.dat"])
check(facts["text.txt"]["size"] == str(len(text)), "text stored with LF: %r" % facts["text.txt"])
check(facts["bin.dat"]["unique"] != facts["text.txt"]["unique"], "unique facts differ")
listing = []
ftp.dir(listing.append)
check(any(l.endswith(" text.txt") for l in listing), "LIST: %r" % listing)
report["mlsd"] = {n: facts[n] for n in facts}

# Rename and delete.
ftp.rename("bin.dat", "renamed.dat")
names = ftp.nlst()
check("renamed.dat" in names and "bin.dat" not in names, "rename: %r" % names)
ftp.delete("renamed.dat")
check("renamed.dat" not in ftp.nlst(), "delete")
perm_error("550", ftp.delete, "renamed.dat")
perm_error("550", ftp.size, "renamed.dat")

# Virtual directories in the root.
ftp.cwd("/")
root = dict(ftp.mlsd())
check(root.get("ro", {}).get("type") == "dir", "ro mount in MLSD: %r" % root.get("ro"))
check(root.get("share", {}).get("type") == "dir", "share mount in MLSD: %r" % root.get("share"))
perm_error("550", ftp.storbinary, "STOR /ro/x.txt", io.BytesIO(b"x"))

# An unknown command is a 500.
try:
    ftp.sendcmd("FROBNICATE")
    check(False, "unknown command accepted")
except ftplib.error_perm as e:
    check(str(e).startswith("500"), "unknown command: %s" % e)

check(ftp.quit().startswith("221"), "QUIT")
report["ok"] = True
print(json.dumps(report, ensure_ascii=False))
"#;

#[test]
fn ftplib_session() {
    require_program("python3");
    let server = TestServer::start();
    let script = server.paths.base.join("ftplib_check.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args(["127.0.0.1", &server.port.to_string(), USER, PASSWORD]);
    let out = run(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success(), "ftplib script failed: {}", describe(&out));

    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.starts_with('{') && last.contains("\"ok\": true"), "script report: {}", describe(&out));
    assert!(last.contains("\"bin.dat\"") && last.contains("\"type\": \"file\""), "{last}");

    // What the script left on disk.
    let dir = server.paths.user("pydir");
    assert_eq!(std::fs::read(dir.join("text.txt")).unwrap(), b"first line\nsecond line\n\nlast\n");
    assert_eq!(std::fs::read(dir.join("žluťoučký kůň.txt")).unwrap(), "kůň".as_bytes());
    assert!(!dir.join("bin.dat").exists() && !dir.join("renamed.dat").exists());
    assert!(!dir.join("inner").exists());
    assert_eq!(dir_names(&server.paths.ro_dir), ["readme.txt"]);
}
