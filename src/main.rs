//! The `ferroftpd` command: run the server, check a configuration file,
//! manage virtual users, explain permission decisions and ask a running
//! server to reload. A thin layer over the library: parsing arguments,
//! phrasing errors and choosing exit codes (0 ok, 1 operation failed,
//! 2 bad input or configuration) happen here; everything else lives in
//! `ferroftpd::…` so tests reach the same code.

use std::io::{BufRead, IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;

use ferroftpd::admin::accounts::AdminAccounts;
use ferroftpd::auth::anonymous::{self, Anonymous};
use ferroftpd::auth::password::hash_password;
use ferroftpd::auth::userdb::{self, Location, UserDbError, UserRecord};
use ferroftpd::auth::{build_chain, Account, AuthChain};
use ferroftpd::config::{self, AdminConfig, Config};
use ferroftpd::perm;
use ferroftpd::vfs::{normalize, MountSpec};

/// User database used when neither `--db` nor `--config` names one.
const DEFAULT_DB: &str = "ferroftpd-users.db";
/// Directory served by the demo setup (`serve` without `--config`).
const DEMO_ROOT: &str = "ftp-root";
const DEMO_USER: &str = "demo";
/// The demo's web-admin account.
const DEMO_ADMIN: &str = "admin";
/// Admin accounts of the demo setup.
const DEFAULT_ADMIN_DB: &str = "ferroftpd-admins.db";
const DEMO_README: &str = "\
Welcome to ferroftpd.

This is the demo setup, started by `ferroftpd serve` without --config.
Anonymous users (user `anonymous` or `ftp`, any password) can read this
directory; the user `demo` (password printed at start) can also write.

To run your own server, write a configuration file, check it with
`ferroftpd check-config FILE`, then start `ferroftpd serve --config FILE`.
Add users with `ferroftpd user add NAME --root DIR`.
";

#[derive(Debug, Parser)]
#[command(name = "ferroftpd", version, about = "A frugal, fast FTP server with virtual users")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the FTP server (without --config: a demo setup in the current directory).
    Serve(ServeArgs),
    /// Check a configuration file; print "FILE: OK" or its problems, then
    /// rules that can never match or are shadowed by another rule.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
        /// Exit with code 1 if a rule can never match or is shadowed.
        #[arg(long)]
        strict: bool,
    },
    /// Manage virtual users (changes apply at the user's next login).
    User(UserArgs),
    /// Explain permission decisions.
    Perm(PermArgs),
    /// Ask the running server to re-read its configuration and rules (SIGHUP).
    Reload(ReloadArgs),
    /// TLS certificates for FTPS.
    Cert(CertArgs),
    /// Manage the web admin's accounts (separate from FTP users).
    AdminUser(AdminUserArgs),
}

#[derive(Debug, Args)]
struct AdminUserArgs {
    /// The configuration file naming the admin database (`admin.users`).
    #[arg(long, short, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// The admin database itself.
    #[arg(long, value_name = "PATH", global = true, conflicts_with = "config")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminUserCommand,
}

#[derive(Debug, Subcommand)]
enum AdminUserCommand {
    /// Add an admin, or set an existing one's password (prompted for on a terminal).
    Add {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set an admin's password.
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Remove an admin.
    Del { name: String },
    /// List admins.
    List,
}

#[derive(Debug, Args)]
struct PermArgs {
    #[command(subcommand)]
    command: PermCommand,
}

#[derive(Debug, Subcommand)]
enum PermCommand {
    /// Print whether USER may perform OPERATION on PATH, and the rule (file:line) that decides.
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The configuration file whose rules to use.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// User name as logged in (`anonymous` or `ftp` for anonymous logins).
    user: String,
    /// A virtual path as the user sees it, or a real path below the user's directories.
    path: String,
    /// One operation: list, read, write-new, overwrite, append, delete, rename-from,
    /// rename-to, mkdir, rmdir, chdir, stat, set-time, chmod.
    operation: String,
    /// Take PATH as a real path.
    #[arg(long, conflicts_with = "virtual_path")]
    real: bool,
    /// Take PATH as a virtual path.
    #[arg(long = "virtual")]
    virtual_path: bool,
}

#[derive(Debug, Args)]
struct ReloadArgs {
    /// Configuration file naming the server's pid file (server.pid_file).
    #[arg(long, short, value_name = "FILE", required_unless_present = "pid_file")]
    config: Option<PathBuf>,
    /// The pid file the server wrote (overrides server.pid_file).
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CertArgs {
    #[command(subcommand)]
    command: CertCommand,
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Write a fresh self-signed certificate and key (PEM) for testing;
    /// clients must be told to trust it (curl --cacert, lftp ssl:ca-file).
    SelfSigned(SelfSignedArgs),
}

#[derive(Debug, Args)]
struct SelfSignedArgs {
    /// Host name or IP address clients connect to (repeatable; the first is the common name).
    #[arg(long = "host", value_name = "NAME", required = true)]
    hosts: Vec<String>,
    /// Where to write the certificate.
    #[arg(long, value_name = "FILE", default_value = "ferroftpd-cert.pem")]
    out_cert: PathBuf,
    /// Where to write the private key (created readable by its owner only).
    #[arg(long, value_name = "FILE", default_value = "ferroftpd-key.pem")]
    out_key: PathBuf,
    /// Days of validity.
    #[arg(long, value_name = "N", default_value_t = 365)]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file; refused with exit code 2 if it has problems.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:2121 (repeatable; replaces server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Log level or tracing filter; overrides RUST_LOG, which overrides log.level.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Serve the one connection on standard input (started by inetd,
    /// xinetd or a systemd Accept=yes socket), then exit.
    #[arg(long, requires = "config", conflicts_with = "listen")]
    inetd: bool,
}

#[derive(Debug, Args)]
struct UserArgs {
    /// User database: a SQLite file or a postgres://user@host/db URL
    /// (default: userdb.url or userdb.path of --config, else ./ferroftpd-users.db).
    #[arg(long, global = true, value_name = "PATH|URL")]
    db: Option<PathBuf>,
    /// Configuration file whose userdb.url or userdb.path to use.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user.
    Add(AddArgs),
    /// Delete a user.
    Del { name: String },
    /// List users.
    List,
    /// Set a user's password (prompts when no option is given and stdin is a terminal).
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Change a user's settings.
    Mod(ModArgs),
    /// Print a user's own permission rules, numbered.
    Rules { name: String },
    /// Show a user's storage usage (counted now under its root) and quota.
    Quota { name: String },
}

/// Bandwidth limits, allowed networks and quotas of one user.
#[derive(Debug, Args)]
struct ShapingArgs {
    /// Download limit of all the user's sessions together, e.g. "2 MiB/s";
    /// 0 for none, "default" for the group or server setting.
    #[arg(long, value_name = "RATE")]
    download_rate: Option<String>,
    /// Upload limit, as --download-rate.
    #[arg(long, value_name = "RATE")]
    upload_rate: Option<String>,
    /// Network the user may log in from, e.g. 10.0.0.0/8 (repeatable; none: anywhere).
    #[arg(long = "allow-from", value_name = "CIDR")]
    allow_from: Vec<String>,
    /// Forget the networks given before (before --allow-from adds new ones).
    #[arg(long)]
    clear_allow_from: bool,
    /// Most bytes under the root, e.g. "10 GiB"; "none" for no limit.
    #[arg(long, value_name = "SIZE")]
    quota_bytes: Option<String>,
    /// Most files under the root; "none" for no limit.
    #[arg(long, value_name = "N")]
    quota_files: Option<String>,
}

impl ShapingArgs {
    fn apply(&self, limits: &mut ferroftpd::auth::AccountLimits) -> Result<(), Failure> {
        let rate = |flag: &str, v: &str| -> Result<Option<config::Rate>, Failure> {
            if v == "default" {
                return Ok(None);
            }
            v.parse().map(Some).map_err(|e| Failure::input(format!("{flag}: {e}")))
        };
        if let Some(v) = &self.download_rate {
            limits.download_rate = rate("--download-rate", v)?;
        }
        if let Some(v) = &self.upload_rate {
            limits.upload_rate = rate("--upload-rate", v)?;
        }
        if self.clear_allow_from {
            limits.allow_from.clear();
        }
        for net in &self.allow_from {
            let net: config::Cidr = net.parse().map_err(|e| Failure::input(format!("--allow-from: {e}")))?;
            if !limits.allow_from.contains(&net) {
                limits.allow_from.push(net);
            }
        }
        if let Some(v) = &self.quota_bytes {
            limits.quota_bytes = match v.as_str() {
                "none" => None,
                v => Some(
                    v.parse::<config::ByteSize>()
                        .map_err(|e| Failure::input(format!("--quota-bytes: {e}")))?
                        .bytes(),
                ),
            };
        }
        if let Some(v) = &self.quota_files {
            limits.quota_files = match v.as_str() {
                "none" => None,
                v => Some(v.parse::<u64>().map_err(|_| {
                    Failure::input(format!("--quota-files: `{v}` is not a whole number (or \"none\")"))
                })?),
            };
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
#[group(multiple = false)]
struct PasswordArgs {
    /// The password (visible to other local users in the process list: prefer --password-stdin).
    #[arg(long, value_name = "P")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
struct AddArgs {
    name: String,
    #[command(flatten)]
    password: PasswordArgs,
    /// Real directory the user sees as `/` (must exist), or `store:NAME/prefix` on an object store.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Virtual directory the session starts in.
    #[arg(long, value_name = "/DIR", default_value = "/")]
    initial_dir: String,
    /// Virtual directory grafted from a real one or `store:NAME/prefix`, `:ro` for read-only (repeatable).
    #[arg(long = "mount", value_name = "/VIRT=/REAL[:ro]")]
    mounts: Vec<String>,
    /// Group the user belongs to (repeatable).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// Refuse every modification.
    #[arg(long)]
    read_only: bool,
    /// Simultaneous sessions allowed (default: limits.max_sessions_per_user).
    #[arg(long, value_name = "N")]
    max_sessions: Option<u32>,
    /// Create the account disabled.
    #[arg(long)]
    disabled: bool,
    /// A permission rule for this user alone, as in [[acl.rule]] without `who`,
    /// e.g. 'tree = "/srv/drop", only = ["upload-only"]' (repeatable).
    #[arg(long = "rule", value_name = "RULE")]
    rules: Vec<String>,
    #[command(flatten)]
    shaping: Box<ShapingArgs>,
}

#[derive(Debug, Args)]
struct ModArgs {
    name: String,
    #[command(flatten)]
    password: PasswordArgs,
    /// New real root directory (must exist).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// New initial virtual directory.
    #[arg(long, value_name = "/DIR")]
    initial_dir: Option<String>,
    /// Remove all mounts first (before --mount adds new ones).
    #[arg(long)]
    clear_mounts: bool,
    /// Remove the mount at this virtual path (repeatable).
    #[arg(long, value_name = "/VIRT")]
    unmount: Vec<String>,
    /// Add or replace a mount, `:ro` for read-only (repeatable).
    #[arg(long = "mount", value_name = "/VIRT=/REAL[:ro]")]
    mounts: Vec<String>,
    /// Remove all groups first (before --group adds new ones).
    #[arg(long)]
    clear_groups: bool,
    /// Add a group (repeatable).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// Refuse every modification.
    #[arg(long, conflicts_with = "read_write")]
    read_only: bool,
    /// Allow modifications again.
    #[arg(long)]
    read_write: bool,
    /// Simultaneous sessions allowed.
    #[arg(long, value_name = "N", conflicts_with = "default_max_sessions")]
    max_sessions: Option<u32>,
    /// Use the server's limit on simultaneous sessions again.
    #[arg(long)]
    default_max_sessions: bool,
    /// Allow logins again.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Refuse logins (the account is kept).
    #[arg(long)]
    disable: bool,
    /// Remove all the user's own rules first (before --rule adds new ones).
    #[arg(long)]
    clear_rules: bool,
    /// Remove the user's rule number N, as `ferroftpd user rules` numbers them (repeatable).
    #[arg(long = "del-rule", value_name = "N")]
    del_rules: Vec<usize>,
    /// Add a permission rule for this user alone (repeatable; see `user add --help`).
    #[arg(long = "rule", value_name = "RULE")]
    rules: Vec<String>,
    #[command(flatten)]
    shaping: Box<ShapingArgs>,
}

/// A failed command: its message, already phrased, and exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Bad input or configuration: exit code 2.
    fn input(message: impl std::fmt::Display) -> Failure {
        Failure { code: 2, message: format!("error: {message}") }
    }

    /// The operation itself failed: exit code 1.
    fn failed(message: impl std::fmt::Display) -> Failure {
        Failure { code: 1, message: format!("error: {message}") }
    }

    /// A configuration error, printed as is (it names file and line).
    fn config(e: config::ConfigError) -> Failure {
        Failure { code: 2, message: e.0 }
    }
}

impl From<UserDbError> for Failure {
    fn from(e: UserDbError) -> Failure {
        match e {
            UserDbError::Invalid(_) => Failure::input(e),
            UserDbError::Missing { .. } => {
                Failure::failed(format!("{e} (check --db / --config; `ferroftpd user add` creates it)"))
            }
            _ => Failure::failed(e),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::CheckConfig { file, strict } => check_config(&file, strict),
        Command::User(args) => user(args),
        Command::Perm(PermArgs { command: PermCommand::Explain(args) }) => explain(args),
        Command::Reload(args) => reload(args),
        Command::Cert(CertArgs { command: CertCommand::SelfSigned(args) }) => cert_self_signed(args),
        Command::AdminUser(args) => admin_user(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn check_config(file: &Path, strict: bool) -> Result<(), Failure> {
    let config = config::load_file(file).map_err(Failure::config)?;
    let stack = perm::build_stack(&config).map_err(Failure::config)?;
    let known = known_accounts(&config);
    let mut findings = perm::lint::lint(&stack, known.accounts.as_deref());
    findings.extend(known.broken.iter().map(|e| perm::lint::Finding {
        rule: "user database".into(),
        kind: perm::lint::Kind::NeverMatches,
        message: format!("{e} (this user's logins are refused until it is fixed)"),
    }));
    match findings.len() {
        0 => println!("{}: OK", file.display()),
        n => println!("{}: OK, with {n} rule warning{}", file.display(), if n == 1 { "" } else { "s" }),
    }
    for f in &findings {
        println!("{}: warning: {}: {}", f.rule, f.kind.label(), f.message);
    }
    if let Some(note) = known.note.filter(|_| !stack.acl().rules().is_empty()) {
        println!("note: {note}");
    }
    if strict && !findings.is_empty() {
        return Err(Failure::failed(format!("{} rule warning(s) (--strict)", findings.len())));
    }
    Ok(())
}

/// The accounts that can log in under a configuration.
struct Known {
    /// The anonymous account if the anonymous module is in the chain, and
    /// the database's users; `None` when the database cannot be read.
    accounts: Option<Vec<Account>>,
    /// Users whose own rules no longer compile.
    broken: Vec<String>,
    /// Why `accounts` is `None`.
    note: Option<String>,
}

fn known_accounts(config: &Config) -> Known {
    let mut known = Known { accounts: None, broken: Vec::new(), note: None };
    let mut accounts = Vec::new();
    let chain = &config.auth.chain;
    if chain.iter().any(|m| m == anonymous::MODULE_NAME) {
        accounts.push(Anonymous::from_config(&config.anonymous).account());
    }
    if chain.iter().any(|m| m == userdb::MODULE_NAME) {
        match userdb::Location::from_config(&config.userdb).open_existing().and_then(|s| s.list()) {
            Ok(users) => {
                for u in users {
                    match u.to_account() {
                        Ok(a) => accounts.push(a),
                        Err(e) => known.broken.push(e.to_string()),
                    }
                }
            }
            Err(e) => {
                known.note = Some(format!("{e}: who names and reachable places were not checked"));
                return known;
            }
        }
    }
    known.accounts = Some(accounts);
    known
}

/// `ferroftpd perm explain`: the same decision the server makes, with the
/// rules that took part.
fn explain(args: ExplainArgs) -> Result<(), Failure> {
    let config = config::load_file(&args.config).map_err(Failure::config)?;
    let how = match (args.real, args.virtual_path) {
        (true, _) => perm::explain::PathKind::Real,
        (_, true) => perm::explain::PathKind::Virtual,
        _ => perm::explain::PathKind::Guess,
    };
    let text = perm::explain::explain(&config, &args.user, &args.path, &args.operation, how).map_err(
        |e| match e {
            perm::explain::ExplainError::Input(m) => Failure::input(m),
            perm::explain::ExplainError::Failed(m) => Failure::failed(m),
        },
    )?;
    print!("{text}");
    Ok(())
}

fn admin_user(args: AdminUserArgs) -> Result<(), Failure> {
    let path = match (&args.db, &args.config) {
        (Some(db), _) => db.clone(),
        (None, Some(file)) => {
            config::load_file(file).map_err(Failure::config)?.admin.unwrap_or_default().users
        }
        (None, None) => PathBuf::from(DEFAULT_ADMIN_DB),
    };
    let db = AdminAccounts::open(&path).map_err(|e| Failure::failed(e.to_string()))?;
    let fail = |e: ferroftpd::admin::accounts::AdminDbError| Failure::input(e.to_string());
    match args.command {
        AdminUserCommand::Add { name, password } | AdminUserCommand::Passwd { name, password } => {
            let password = read_password(&password, &name, true)?.unwrap_or_default();
            db.set(&name, &password).map_err(fail)?;
            println!("admin {name}: password set in {}", path.display());
        }
        AdminUserCommand::Del { name } => {
            if !db.delete(&name).map_err(fail)? {
                return Err(Failure::input(format!("no admin `{name}` in {}", path.display())));
            }
            println!("admin {name} removed");
        }
        AdminUserCommand::List => {
            for name in db.list().map_err(fail)? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

/// `ferroftpd reload`: SIGHUP to the pid in the server's pid file.
fn reload(args: ReloadArgs) -> Result<(), Failure> {
    let pid_file = match (&args.pid_file, &args.config) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => {
            let config = config::load_file(file).map_err(|e| Failure {
                code: 2,
                message: format!(
                    "{}\n\nThe server was not signalled: fix the file first (a reload with a broken \
                     file would keep the old settings anyway).",
                    e.0
                ),
            })?;
            config.server.pid_file.ok_or_else(|| {
                Failure::input(format!(
                    "{} sets no server.pid_file, so the server's process is unknown; set it \
                     (e.g. pid_file = \"/run/ferroftpd/ferroftpd.pid\") and restart the server, \
                     or send the signal yourself: kill -HUP <pid of ferroftpd serve>",
                    file.display()
                ))
            })?
        }
        (None, None) => return Err(Failure::input("give --config FILE or --pid-file PATH")),
    };
    let text = std::fs::read_to_string(&pid_file).map_err(|e| {
        Failure::failed(format!(
            "cannot read the pid file {}: {e} (is the server running?)",
            pid_file.display()
        ))
    })?;
    let pid: u32 = text.trim().parse().ok().filter(|p| *p > 1).ok_or_else(|| {
        Failure::failed(format!(
            "{}: `{}` is not a process id",
            pid_file.display(),
            text.trim().escape_debug()
        ))
    })?;
    send_hangup(pid, &pid_file)
}

#[cfg(unix)]
fn send_hangup(pid: u32, pid_file: &Path) -> Result<(), Failure> {
    // A stale pid file may name a process that is not ours: check its name
    // where /proc tells it.
    if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        if comm.trim() != "ferroftpd" {
            return Err(Failure::failed(format!(
                "process {pid} (from {}) is `{}`, not ferroftpd: the pid file is stale",
                pid_file.display(),
                comm.trim()
            )));
        }
    } else if Path::new("/proc/self").exists() {
        return Err(Failure::failed(format!(
            "no process {pid} (from {}): the server is not running",
            pid_file.display()
        )));
    }
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .map_err(|e| Failure::failed(format!("cannot run kill: {e}")))?;
    if !status.success() {
        return Err(Failure::failed(format!("kill -HUP {pid} failed ({status})")));
    }
    println!(
        "sent SIGHUP to ferroftpd (pid {pid}); it re-reads its configuration and rules, and logs \
         whether the reload worked (a broken file keeps the old settings)"
    );
    Ok(())
}

#[cfg(not(unix))]
fn send_hangup(pid: u32, _pid_file: &Path) -> Result<(), Failure> {
    Err(Failure::failed(format!(
        "this platform has no SIGHUP: restart the server (pid {pid}) to apply a changed configuration"
    )))
}

/// Removes the pid file when the server stops.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &Path) -> Result<PidFile, Failure> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| Failure::failed(format!("cannot write the pid file {}: {e}", path.display())))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn cert_self_signed(args: SelfSignedArgs) -> Result<(), Failure> {
    for host in &args.hosts {
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/') {
            return Err(Failure::input(format!(
                "--host `{}` is not a host name or IP address",
                host.escape_debug()
            )));
        }
    }
    if args.out_cert == args.out_key {
        return Err(Failure::input("--out-cert and --out-key name the same file"));
    }
    if !args.force {
        for path in [&args.out_cert, &args.out_key] {
            if path.exists() {
                return Err(Failure::failed(format!(
                    "{} already exists; remove it or give --force",
                    path.display()
                )));
            }
        }
    }
    let pair = ferroftpd::tls::self_signed(&args.hosts, args.days).map_err(Failure::input)?;
    write_new_file(&args.out_key, pair.key_pem.as_bytes(), 0o600)?;
    write_new_file(&args.out_cert, pair.cert_pem.as_bytes(), 0o644)?;
    println!(
        "wrote {} and {} (self-signed for {}, {} days)\n\n\
         [tls]\n\
         certificate = \"{}\"\n\
         key = \"{}\"",
        args.out_cert.display(),
        args.out_key.display(),
        args.hosts.join(", "),
        args.days,
        absolute_display(&args.out_cert),
        absolute_display(&args.out_key),
    );
    Ok(())
}

fn absolute_display(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

/// Writes `bytes` to `path` (replacing it) with the given Unix mode.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = options.open(path).and_then(|mut f| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.write_all(bytes)
    });
    result.map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))
}

fn serve(args: ServeArgs) -> Result<(), Failure> {
    let demo = args.config.is_none();
    let mut config = match &args.config {
        Some(file) => config::load_file(file).map_err(Failure::config)?,
        None => demo_config()?,
    };
    if !args.listen.is_empty() {
        config.server.listen = args.listen.clone();
    }
    init_tracing(args.log_level.as_deref(), &config.log, args.inetd)?;
    let chain = build_chain(&config).map_err(Failure::config)?;
    if args.inetd {
        return serve_inetd(config, chain, args.config.clone());
    }
    if demo {
        let password = install_demo_user(&config)?;
        let admin_password = install_demo_admin(&config)?;
        print_demo_banner(&config, &password, &admin_password);
    }
    let _pid_file = config.server.pid_file.as_deref().map(PidFile::write).transpose()?;
    tracing::info!(listen = ?config.server.listen, chain = ?chain.module_names(), "starting");
    ferroftpd::server::memory::tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(start_server(config, chain, args.config.clone()));
    // Blocking file work of cut-off transfers must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result.map_err(|e| Failure::failed(format!("{e:#}")))
}

/// One session on standard input: a single-threaded runtime is plenty.
fn serve_inetd(config: Config, chain: AuthChain, config_path: Option<PathBuf>) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(ferroftpd::server::inetd::serve(config, chain, config_path));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result.map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "inetd session failed");
        Failure::failed(format!("{e:#}"))
    })
}

async fn start_server(config: Config, chain: AuthChain, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let admin = config.admin.clone();
    ferroftpd::server::run(config, chain, config_path, |shared| {
        if let Some(admin) = &admin {
            ferroftpd::admin::start(shared.clone(), admin)?;
        }
        Ok(())
    })
    .await
}

/// Log filter: `--log-level` wins, then `RUST_LOG`, then `log.level`.
/// Logs go to `log.file` if set, else to stderr so stdout stays for what a
/// person is meant to read; in inetd mode, nowhere when stderr is the
/// client's socket (as inetd and xinetd hand it over).
fn init_tracing(flag: Option<&str>, log: &config::schema::LogConfig, inetd: bool) -> Result<(), Failure> {
    let configured = log.level.as_str();
    use tracing_subscriber::EnvFilter;
    let env = std::env::var("RUST_LOG").ok().filter(|s| !s.trim().is_empty());
    let (source, spec) = match (flag, env) {
        (Some(f), _) => ("--log-level", f.to_string()),
        (None, Some(e)) => ("RUST_LOG", e),
        (None, None) => ("log.level", configured.to_string()),
    };
    let filter = EnvFilter::builder().parse(&spec).map_err(|e| {
        Failure::input(format!(
            "{source} `{spec}` is not a log level ({e}); use error, warn, info, debug or trace"
        ))
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Each fails only if a subscriber is already set, which cannot happen here.
    if let Some(path) = &log.file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Failure::failed(format!("cannot open log.file {}: {e}", path.display())))?;
        let _ = builder.with_writer(std::sync::Mutex::new(file)).with_ansi(false).try_init();
    } else if inetd && stderr_is_socket() {
        let _ = builder.with_writer(std::io::sink).try_init();
    } else {
        let _ = builder.with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).try_init();
    }
    Ok(())
}

/// True when standard error is a socket (inetd's convention: fds 0, 1 and
/// 2 are all the client's connection).
#[cfg(unix)]
fn stderr_is_socket() -> bool {
    use std::os::fd::AsRawFd as _;
    nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(std::io::stderr().as_raw_fd()).is_ok()
}

#[cfg(not(unix))]
fn stderr_is_socket() -> bool {
    false
}

/// The embedded default: `./ftp-root` (with a `pub/README.txt`) for
/// anonymous users and `./ferroftpd-users.db`, made absolute so nothing
/// depends on the working directory later.
fn demo_config() -> Result<Config, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::failed(format!("cannot read the current directory: {e}")))?;
    let root = cwd.join(DEMO_ROOT);
    let pub_dir = root.join("pub");
    std::fs::create_dir_all(&pub_dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", pub_dir.display())))?;
    let readme = pub_dir.join("README.txt");
    if !readme.exists() {
        std::fs::write(&readme, DEMO_README)
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", readme.display())))?;
    }
    let mut config = Config::default();
    config.anonymous.root = root;
    config.userdb.path = cwd.join(DEFAULT_DB);
    config.admin = Some(AdminConfig { users: cwd.join(DEFAULT_ADMIN_DB), ..AdminConfig::default() });
    config::validate(&mut config, Path::new("built-in demo configuration")).map_err(Failure::config)?;
    Ok(config)
}

/// Gives the `demo` user a fresh random password (its other settings are
/// kept if it exists) and returns the password.
fn install_demo_user(config: &Config) -> Result<String, Failure> {
    let password = Alphanumeric.sample_string(&mut OsRng, 16);
    let hash = hash_password(&password).map_err(Failure::failed)?;
    let store = userdb::Location::from_config(&config.userdb).open()?;
    let record = match store.get(DEMO_USER)? {
        Some(existing) => UserRecord { password_hash: hash, ..existing },
        None => UserRecord::new(DEMO_USER, hash, config.anonymous.root.clone()),
    };
    store.put(&record)?;
    Ok(password)
}

/// Gives the admin `admin` of the demo's web admin a fresh one-time password.
fn install_demo_admin(config: &Config) -> Result<String, Failure> {
    let Some(admin) = &config.admin else { return Ok(String::new()) };
    let password = Alphanumeric.sample_string(&mut OsRng, 16);
    AdminAccounts::open(&admin.users)
        .and_then(|db| db.set(DEMO_ADMIN, &password))
        .map_err(|e| Failure::failed(e.to_string()))?;
    Ok(password)
}

fn print_demo_banner(config: &Config, password: &str, admin_password: &str) {
    let addr = config.server.listen.first().copied().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 2121)));
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = SocketAddr::new(host, addr.port());
    let listen: Vec<String> = config.server.listen.iter().map(|a| a.to_string()).collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "ferroftpd demo setup (no --config given)\n\
         \x20 listening on  {}\n\
         \x20 files         {} (anonymous: read-only)\n\
         \x20 users         {}\n\
         \x20 demo login    user {DEMO_USER}, password {password} (new at every start)\n\n\
         \x20 try:  curl ftp://{DEMO_USER}:{password}@{url}/\n\
         \x20       curl ftp://{url}/pub/README.txt\n\
         \x20       curl -T FILE ftp://{DEMO_USER}:{password}@{url}/\n",
        listen.join(", "),
        config.anonymous.root.display(),
        config.userdb.path.display(),
    );
    if let Some(admin) = &config.admin {
        let _ = writeln!(
            out,
            "  web admin     http://{}/  user {DEMO_ADMIN}, password {admin_password} (new at every start)\n",
            admin.listen
        );
    }
    let _ = out.flush();
}

fn user(args: UserArgs) -> Result<(), Failure> {
    let db = match (&args.db, &args.config) {
        (Some(db), _) => Location::from_arg(db),
        (None, Some(file)) => {
            Location::from_config(&config::load_file(file).map_err(Failure::config)?.userdb)
        }
        (None, None) => Location::File(PathBuf::from(DEFAULT_DB)),
    };
    match args.command {
        UserCommand::Add(a) => user_add(&db, a),
        UserCommand::Del { name } => {
            let store = db.open_existing()?;
            if !store.delete(&name)? {
                return Err(no_such_user(&name, &db));
            }
            println!("deleted user `{name}`");
            Ok(())
        }
        UserCommand::List => user_list(&db),
        UserCommand::Passwd { name, password } => {
            let store = db.open_existing()?;
            let mut record = store.get(&name)?.ok_or_else(|| no_such_user(&name, &db))?;
            let Some(password) = read_password(&password, &name, true)? else {
                return Err(Failure::input("no password given"));
            };
            record.password_hash = hash_password(&password).map_err(Failure::failed)?;
            store.put(&record)?;
            println!("password of `{name}` changed");
            Ok(())
        }
        UserCommand::Mod(m) => user_mod(&db, m),
        UserCommand::Quota { name } => user_quota(&db, &name),
        UserCommand::Rules { name } => {
            let store = db.open_existing()?;
            let record = store.get(&name)?.ok_or_else(|| no_such_user(&name, &db))?;
            if record.rules.is_empty() {
                println!("`{name}` has no rules of its own");
            }
            for (i, rule) in record.rules.iter().enumerate() {
                println!("{:>3}  {rule}", i + 1);
            }
            Ok(())
        }
    }
}

fn no_such_user(name: &str, db: &Location) -> Failure {
    Failure::failed(format!("no user `{name}` in {db}"))
}

fn user_add(db: &Location, a: AddArgs) -> Result<(), Failure> {
    userdb::validate_name(&a.name)?;
    let root = existing_dir("--root", &a.root)?;
    let initial_dir = virtual_dir("--initial-dir", &a.initial_dir)?;
    let mut mounts = Vec::new();
    for m in &a.mounts {
        set_mount(&mut mounts, parse_mount(m)?);
    }
    let mut record = UserRecord::new(a.name.clone(), String::from("-"), root);
    record.initial_dir = initial_dir;
    record.mounts = mounts;
    record.groups = dedup(a.groups);
    record.read_only = a.read_only;
    record.max_sessions = a.max_sessions;
    record.enabled = !a.disabled;
    record.rules = a.rules.iter().map(|r| rule_text(r)).collect::<Result<_, _>>()?;
    a.shaping.apply(&mut record.shaping)?;
    record.validate()?;
    let store = db.open()?;
    if store.get(&a.name)?.is_some() {
        return Err(Failure::failed(format!(
            "user `{}` already exists; change it with `ferroftpd user mod {}`",
            a.name, a.name
        )));
    }
    // Asked last, so a prompt is never wasted on a command that fails.
    let Some(password) = read_password(&a.password, &a.name, true)? else {
        return Err(Failure::input("no password given"));
    };
    record.password_hash = hash_password(&password).map_err(Failure::failed)?;
    store.put(&record)?;
    println!("added user `{}` (root {})", a.name, record.root.display());
    Ok(())
}

fn user_mod(db: &Location, m: ModArgs) -> Result<(), Failure> {
    let store = db.open_existing()?;
    let mut record = store.get(&m.name)?.ok_or_else(|| no_such_user(&m.name, db))?;
    let before = record.clone();
    if let Some(root) = &m.root {
        record.root = existing_dir("--root", root)?;
    }
    if let Some(dir) = &m.initial_dir {
        record.initial_dir = virtual_dir("--initial-dir", dir)?;
    }
    if m.clear_mounts {
        record.mounts.clear();
    }
    for v in &m.unmount {
        let v = virtual_dir("--unmount", v)?;
        let n = record.mounts.len();
        record.mounts.retain(|x| x.virtual_path != v);
        if record.mounts.len() == n {
            return Err(Failure::input(format!("`{}` has no mount at `{v}`", m.name)));
        }
    }
    for spec in &m.mounts {
        set_mount(&mut record.mounts, parse_mount(spec)?);
    }
    if m.clear_groups {
        record.groups.clear();
    }
    record.groups = dedup(record.groups.into_iter().chain(m.groups.iter().cloned()).collect());
    if m.read_only || m.read_write {
        record.read_only = m.read_only;
    }
    if m.max_sessions.is_some() || m.default_max_sessions {
        record.max_sessions = m.max_sessions;
    }
    if m.enable || m.disable {
        record.enabled = m.enable;
    }
    if m.clear_rules {
        record.rules.clear();
    }
    let mut del = m.del_rules.clone();
    del.sort_unstable_by(|a, b| b.cmp(a));
    del.dedup();
    for n in del {
        if n == 0 || n > record.rules.len() {
            return Err(Failure::input(format!(
                "`{}` has no rule #{n} (see `ferroftpd user rules {}`)",
                m.name, m.name
            )));
        }
        record.rules.remove(n - 1);
    }
    for r in &m.rules {
        record.rules.push(rule_text(r)?);
    }
    m.shaping.apply(&mut record.shaping)?;
    let password_given = m.password.password.is_some() || m.password.password_stdin;
    if let Some(password) = read_password(&m.password, &m.name, false)? {
        record.password_hash = hash_password(&password).map_err(Failure::failed)?;
    }
    if record == before && !password_given {
        return Err(Failure::input(format!(
            "nothing to change for `{}`: give an option (see `ferroftpd user mod --help`)",
            m.name
        )));
    }
    store.put(&record)?;
    println!("updated user `{}`", m.name);
    Ok(())
}

/// `user quota NAME`: usage counted now under the root, the limits, and
/// the other per-user limits.
fn user_quota(db: &Location, name: &str) -> Result<(), Failure> {
    let store = db.open_existing()?;
    let record = store.get(name)?.ok_or_else(|| no_such_user(name, db))?;
    let (bytes, files) = ferroftpd::vfs::quota::count(&record.root)
        .map_err(|e| Failure::failed(format!("cannot count {}: {e}", record.root.display())))?;
    let s = &record.shaping;
    let limit = |l: Option<u64>| l.map_or("unlimited".to_string(), |n| n.to_string());
    let rate = |r: Option<config::Rate>| r.map_or("default".to_string(), |r| r.to_string());
    println!("user: {name}");
    println!("root: {}", record.root.display());
    println!("bytes: {bytes} of {}", limit(s.quota_bytes));
    println!("files: {files} of {}", limit(s.quota_files));
    println!("download rate: {}", rate(s.download_rate));
    println!("upload rate: {}", rate(s.upload_rate));
    let nets: Vec<String> = s.allow_from.iter().map(|n| n.to_string()).collect();
    println!("allow from: {}", if nets.is_empty() { "anywhere".to_string() } else { nets.join(" ") });
    Ok(())
}

fn user_list(db: &Location) -> Result<(), Failure> {
    let store = db.open_existing()?;
    let users = store.list()?;
    if users.is_empty() {
        println!("no users in {db}");
        return Ok(());
    }
    let header = ["NAME", "STATE", "ACCESS", "SESSIONS", "ROOT", "INITIAL", "GROUPS", "RULES", "MOUNTS"];
    let rows: Vec<[String; 9]> = users
        .iter()
        .map(|u| {
            let mounts: Vec<String> = u
                .mounts
                .iter()
                .map(|m| {
                    let ro = if m.read_only { ":ro" } else { "" };
                    format!("{}={}{ro}", m.virtual_path, m.real_path.display())
                })
                .collect();
            [
                u.name.clone(),
                if u.enabled { "enabled" } else { "disabled" }.to_string(),
                if u.read_only { "ro" } else { "rw" }.to_string(),
                u.max_sessions.map_or("default".to_string(), |n| n.to_string()),
                u.root.display().to_string(),
                u.initial_dir.clone(),
                if u.groups.is_empty() { "-".to_string() } else { u.groups.join(",") },
                if u.rules.is_empty() { "-".to_string() } else { u.rules.len().to_string() },
                if mounts.is_empty() { "-".to_string() } else { mounts.join(" ") },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let header = header.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    Ok(())
}

/// The password from `--password`, `--password-stdin`, or (when `required`
/// and stdin is a terminal) a prompt. Input is echoed: a prompt without
/// echo would need a terminal crate for this one use.
fn read_password(args: &PasswordArgs, name: &str, required: bool) -> Result<Option<String>, Failure> {
    let password = if let Some(p) = &args.password {
        p.clone()
    } else if args.password_stdin {
        read_line("")?
    } else if !required {
        return Ok(None);
    } else if std::io::stdin().is_terminal() {
        let first = read_line(&format!("New password for `{name}` (shown as typed): "))?;
        let again = read_line("Repeat it: ")?;
        if first != again {
            return Err(Failure::input("the two passwords differ"));
        }
        first
    } else {
        return Err(Failure::input("no password: give --password-stdin (preferred) or --password"));
    };
    if password.is_empty() {
        return Err(Failure::input("the password is empty"));
    }
    if password.contains(['\0', '\r', '\n']) {
        return Err(Failure::input("the password contains NUL, CR or LF, which FTP cannot send"));
    }
    Ok(Some(password))
}

/// One line from stdin without its line ending, after printing `prompt` on
/// stderr.
fn read_line(prompt: &str) -> Result<String, Failure> {
    if !prompt.is_empty() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::input(format!("cannot read the password from standard input: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `path` made absolute (the server may run elsewhere), if it is a directory.
fn existing_dir(option: &str, path: &Path) -> Result<PathBuf, Failure> {
    // `store:NAME/prefix`: a directory on a configured object store.
    if let Some(store) = ferroftpd::vfs::object::StoreRef::parse(path) {
        store.map_err(|e| Failure::input(format!("{option} {e}")))?;
        return Ok(path.to_path_buf());
    }
    let abs =
        std::path::absolute(path).map_err(|e| Failure::input(format!("{option} {}: {e}", path.display())))?;
    if !abs.is_dir() {
        return Err(Failure::input(format!("{option}: directory {} does not exist", abs.display())));
    }
    if abs.to_str().is_none() {
        return Err(Failure::input(format!("{option}: {} is not valid UTF-8", abs.display())));
    }
    Ok(abs)
}

/// An absolute virtual directory, normalised (`/a/./b/` → `/a/b`).
fn virtual_dir(option: &str, path: &str) -> Result<String, Failure> {
    if !path.starts_with('/') {
        return Err(Failure::input(format!(
            "{option} `{path}` must be an absolute virtual path such as `/pub`"
        )));
    }
    normalize("/", path).map_err(|e| Failure::input(format!("{option} `{}`: {e}", path.escape_debug())))
}

/// Parses `/virt=/real[:ro]` (`:rw` also accepted); the real directory must exist.
fn parse_mount(spec: &str) -> Result<MountSpec, Failure> {
    let m = MountSpec::parse(spec).map_err(|e| Failure::input(format!("--mount `{spec}`: {e}")))?;
    let real_path = existing_dir(&format!("--mount {}", m.virtual_path), &m.real_path)?;
    Ok(MountSpec { real_path, ..m })
}

/// A user's rule as stored: one line, braces included, checked to compile
/// (`UserRecord::validate` checks it again with its number).
fn rule_text(text: &str) -> Result<String, Failure> {
    let text = text.trim();
    let text = if text.starts_with('{') { text.to_string() } else { format!("{{ {text} }}") };
    perm::rules::compile_user_rule(&text, "user", 0)
        .map_err(|e| Failure::input(format!("--rule `{text}`: {e}")))?;
    Ok(text)
}

/// Adds `m`, replacing a mount at the same virtual path.
fn set_mount(mounts: &mut Vec<MountSpec>, m: MountSpec) {
    match mounts.iter_mut().find(|x| x.virtual_path == m.virtual_path) {
        Some(slot) => *slot = m,
        None => mounts.push(m),
    }
}

/// Removes repeated names, keeping the first occurrence's position.
fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}
