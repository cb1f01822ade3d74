//! The configuration file's schema. Every section rejects unknown keys so a
//! typo is an error, not a silently ignored setting.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use super::types::{ByteSize, Cidr, Rate};

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub ban: BanConfig,
    pub timeouts: TimeoutsConfig,
    pub passive: PassiveConfig,
    pub transfer: TransferConfig,
    pub auth: AuthConfig,
    pub anonymous: AnonymousConfig,
    pub userdb: UserDbConfig,
    pub pam: PamConfig,
    pub permissions: PermissionsConfig,
    pub acl: AclConfig,
    pub tls: TlsConfig,
    pub log: LogConfig,
    pub bandwidth: BandwidthConfig,
    pub access: AccessConfig,
    /// The web admin; off unless the section is present.
    pub admin: Option<AdminConfig>,
    pub xferlog: XferlogConfig,
    pub proxy_protocol: ProxyProtocolConfig,
    /// The Prometheus endpoint; off unless the section is present.
    pub metrics: Option<MetricsConfig>,
    /// Bans and session counts shared with other nodes through
    /// PostgreSQL; off unless the section is present.
    pub cluster: Option<ClusterConfig>,
    /// Object stores (`[stores.NAME]`), used by roots and mounts written
    /// `store:NAME/prefix`.
    pub stores: std::collections::BTreeMap<String, StoreConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Control-connection listeners.
    pub listen: Vec<SocketAddr>,
    /// The 220 greeting; `\n` makes it multi-line.
    pub banner: String,
    /// File the server writes its process id to, so `ferroftpd reload`
    /// knows whom to signal.
    pub pid_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            banner: "ferroftpd ready".to_string(),
            pid_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Simultaneous control connections, all addresses together.
    pub max_clients: u32,
    /// Simultaneous control connections from one IP address.
    pub max_clients_per_ip: u32,
    /// Simultaneous logged-in sessions of one account (an account's own
    /// `max_sessions` overrides it); 0 means no limit beyond the others.
    pub max_sessions_per_user: u32,
    /// Failed logins before the connection is closed.
    pub max_login_failures: u32,
    /// Time from PASS to the answer of a failed login, in milliseconds,
    /// whichever module refused and however long it took (so timing does not
    /// tell unknown users from wrong passwords).
    pub failed_login_delay_ms: u64,
    /// Longest command line accepted, in bytes (at least 512).
    pub max_line_length: usize,
    /// Memory all password verifications running at once may use together
    /// (argon2's memory cost × concurrency); more logins wait their turn.
    pub hashing_memory: ByteSize,
    /// Commands a session may send per second, on average (0: no limit).
    pub commands_per_second: u32,
    /// Commands a session may send at once above that rate.
    pub command_burst: u32,
    /// Seconds a session may keep the command limit delaying it without a
    /// break before it is closed with 421 (0: only delay, never close).
    pub max_throttled_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_clients: 10_000,
            max_clients_per_ip: 64,
            max_sessions_per_user: 0,
            max_login_failures: 3,
            failed_login_delay_ms: 1000,
            max_line_length: 2048,
            hashing_memory: ByteSize::mib(64),
            commands_per_second: 100,
            command_burst: 200,
            max_throttled_seconds: 30,
        }
    }
}

/// Brute-force defence: an address with too many failed logins within a
/// window is banned for a while (refused at connect with 421).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BanConfig {
    /// Failed logins from one address (an IPv6 /64) within `window` that
    /// ban it (0: never ban).
    pub max_failures: u32,
    /// Seconds over which failed logins are counted.
    pub window: u64,
    /// Seconds a ban lasts.
    pub duration: u64,
    /// Addresses and networks never banned.
    pub allow: Vec<Cidr>,
}

impl Default for BanConfig {
    fn default() -> Self {
        BanConfig { max_failures: 10, window: 600, duration: 900, allow: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// Seconds from connect to a successful login.
    pub login: u64,
    /// Seconds without a command while no transfer runs.
    pub idle: u64,
    /// Seconds a data connection may wait to connect or stall mid-transfer.
    pub data: u64,
    /// Seconds running transfers get to finish after SIGTERM before the
    /// server exits anyway.
    pub drain: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig { login: 60, idle: 300, data: 120, drain: 30 }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveConfig {
    /// First and last port of the passive range (inclusive); `[0, 0]` lets
    /// the system pick any free port.
    pub port_range: [u16; 2],
    /// Address to advertise in PASV replies (a NAT's public address); by
    /// default, the control connection's local address.
    pub advertised_address: Option<IpAddr>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// Buffer size for downloads, in bytes (pyftpd's `sbufsize`).
    pub send_buffer: usize,
    /// Buffer size for uploads, in bytes (pyftpd's `rbufsize`).
    pub receive_buffer: usize,
    /// Flush each upload (and its directory entry) to the disk before its
    /// 226, so an acknowledged upload survives the machine dying.
    pub fsync: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig { send_buffer: 256 * 1024, receive_buffer: 256 * 1024, fsync: true }
    }
}

/// Authentication modules `auth.chain` may name.
pub const AUTH_MODULES: &[&str] = &["anonymous", "userdb", "pam"];

/// Modules planned but not built yet: named in errors as "not available yet"
/// rather than "unknown", so a reader of the design is not confused.
pub const PLANNED_AUTH_MODULES: &[&str] = &[];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Modules asked in order: `anonymous`, `userdb`, `pam`.
    pub chain: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { chain: vec!["anonymous".into(), "userdb".into()] }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnonymousConfig {
    /// Real directory anonymous users see as `/`.
    pub root: PathBuf,
    /// Virtual directories where anonymous users may upload new files.
    pub upload_dirs: Vec<String>,
}

impl Default for AnonymousConfig {
    fn default() -> Self {
        AnonymousConfig { root: PathBuf::from("ftp-root"), upload_dirs: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UserDbConfig {
    /// SQLite file holding the virtual users (created if missing).
    pub path: PathBuf,
    /// A PostgreSQL database instead (`postgres://user@host/db`), shared
    /// by several nodes; `path` is then unused.
    pub url: Option<String>,
}

impl Default for UserDbConfig {
    fn default() -> Self {
        UserDbConfig { path: PathBuf::from("ferroftpd-users.db"), url: None }
    }
}

/// The `pam` module: who PAM accepts, and how such a user's session looks.
/// PAM answers only "is this password right and is the account usable";
/// root, groups and limits come from here.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PamConfig {
    /// PAM service name: the file `/etc/pam.d/<service>`.
    pub service: String,
    /// The user's root directory, `%u` standing for the user name
    /// (e.g. "/srv/ftp/%u"). Either this or `home`.
    pub root: Option<String>,
    /// Use the user's home directory from the system's user database
    /// (getpwnam) as root.
    pub home: bool,
    /// Virtual directory the session starts in.
    pub initial_dir: String,
    /// Virtual directories grafted from real ones, "/VIRT=/REAL" or
    /// "/VIRT=/REAL:ro", for every PAM user.
    pub mounts: Vec<String>,
    /// Groups every PAM user is in (for permission rules).
    pub groups: Vec<String>,
    /// Also put the user in its Unix groups (getgrouplist).
    pub unix_groups: bool,
    /// No modification anywhere.
    pub read_only: bool,
    /// Simultaneous sessions of one PAM user (unset: `limits.max_sessions_per_user`).
    pub max_sessions: Option<u32>,
    /// PAM conversations running at once (each holds a blocking thread);
    /// more logins wait their turn.
    pub max_concurrent: u32,
}

impl Default for PamConfig {
    fn default() -> Self {
        PamConfig {
            service: "ferroftpd".to_string(),
            root: None,
            home: false,
            initial_dir: "/".to_string(),
            mounts: Vec::new(),
            groups: Vec::new(),
            unix_groups: false,
            read_only: false,
            max_sessions: None,
            max_concurrent: 4,
        }
    }
}

/// The web admin (`[admin]`): pages to edit users, permission rules and
/// settings, and to watch and end live sessions.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin's web server.
    pub listen: SocketAddr,
    /// SQLite file of the admin accounts (separate from FTP accounts).
    pub users: PathBuf,
    /// Allow a listen address other than loopback (then use `tls`).
    pub allow_remote: bool,
    /// Serve HTTPS with the FTPS certificate (`tls.certificate`, `tls.key`).
    pub tls: bool,
    /// Minutes an admin stays logged in without activity.
    pub session_minutes: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8021)),
            users: PathBuf::from("ferroftpd-admins.db"),
            allow_remote: false,
            tls: false,
            session_minutes: 60,
        }
    }
}

/// Permission modules `permissions.modules` may name.
pub const PERMISSION_MODULES: &[&str] = &["acl", "account"];

/// How permission checks are put together. Read-only virtual directories
/// always refuse changes first; then each module in `modules` may decide;
/// when none does, `default` applies.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionsConfig {
    /// `acl`: the rules ([[acl.rule]] and the user's own); decides when a
    /// rule names the operation and matches. `account`: the account's own
    /// settings (read-only accounts, anonymous upload directories).
    pub modules: Vec<String>,
    /// When no module decides.
    pub default: DefaultDecision,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        PermissionsConfig { modules: vec!["acl".into(), "account".into()], default: DefaultDecision::Allow }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DefaultDecision {
    #[default]
    Allow,
    Deny,
}

impl DefaultDecision {
    pub fn name(self) -> &'static str {
        match self {
            DefaultDecision::Allow => "allow",
            DefaultDecision::Deny => "deny",
        }
    }
}

/// The ACL module's rules.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// `[[acl.rule]]` tables, in file order.
    pub rule: Vec<RuleSpec>,
}

/// One rule as written (in the file, or in the user database for one
/// user). [`crate::perm::rules::compile`] checks and compiles it.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSpec {
    /// User names, `@group`, `anonymous` (the anonymous module's users) or
    /// `*` (everyone). Left out in a user's own rules.
    pub who: Vec<String>,
    /// A real path: the file or directory itself, not what is below it.
    pub path: Option<String>,
    /// A real directory and everything below it.
    pub tree: Option<String>,
    /// A real path with wildcards: `*` and `?` within a name, `**` for any
    /// number of directories.
    pub pattern: Option<String>,
    /// Operations (or shorthands) the rule allows.
    pub allow: Vec<String>,
    /// Operations (or shorthands) the rule denies.
    pub deny: Vec<String>,
    /// Operations the rule allows; it denies every other one.
    pub only: Vec<String>,
    /// Where the rule was written, filled in by the loader.
    #[serde(skip)]
    pub origin: Option<SourceLine>,
}

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub file: PathBuf,
    /// 1-based; `None` when the text is unknown (a config built in code).
    pub line: Option<usize>,
}

/// FTPS (RFC 4217). TLS is off unless `certificate` and `key` are given;
/// then it is offered (AUTH TLS, and implicit TLS on `implicit_listen`) and,
/// by default, optional.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub certificate: Option<PathBuf>,
    /// PEM private key of the certificate.
    pub key: Option<PathBuf>,
    /// Listeners that speak TLS from the first byte (implicit FTPS, port 990
    /// by convention).
    pub implicit_listen: Vec<SocketAddr>,
    /// USER/PASS only on a protected control connection.
    pub require_login: bool,
    /// Transfers only over protected data connections (PROT P); implies
    /// `require_login`.
    pub require_data: bool,
    /// Anonymous users need neither (their password is no secret).
    pub anonymous_exempt: bool,
    /// Entries of `server.listen` where TLS stays optional whatever the
    /// requirements above say (say, a listener on a trusted network).
    pub exempt_listen: Vec<SocketAddr>,
    /// A protected data connection must resume the control connection's TLS
    /// session (vsftpd's `require_ssl_reuse`), so nobody else can take it.
    pub require_session_reuse: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: None,
            key: None,
            implicit_listen: Vec::new(),
            require_login: false,
            require_data: false,
            anonymous_exempt: false,
            exempt_listen: Vec::new(),
            require_session_reuse: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace` (or a tracing filter).
    pub level: String,
    /// Append log lines to this file instead of standard error (needed in
    /// inetd mode, where standard error is often the client's socket).
    pub file: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), file: None }
    }
}

/// Bandwidth limits (see `data::throttle`). Each limit is a rate such as
/// `"2 MiB/s"`; `0` means none. A transfer is held to every limit that
/// applies: the whole server's and its user's. A user's own limit (user
/// database) wins over its groups' (the highest of them), which wins over
/// `user_download`/`user_upload`; anonymous sessions share one class limit.
/// A reload applies to transfers already running.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BandwidthConfig {
    /// All downloads of the server together.
    pub download: Rate,
    /// All uploads of the server together.
    pub upload: Rate,
    /// Downloads of one user, all its sessions together, unless the user or
    /// one of its groups has its own limit.
    pub user_download: Rate,
    /// Uploads of one user, all its sessions together.
    pub user_upload: Rate,
    /// Downloads of all anonymous sessions together.
    pub anonymous_download: Rate,
    /// Uploads of all anonymous sessions together.
    pub anonymous_upload: Rate,
    /// `[[bandwidth.group]]` tables: per-user limits for a group's members.
    pub group: Vec<GroupRate>,
}

/// The limits of each member of a group (each user separately, all its
/// sessions together).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GroupRate {
    /// The group's name (as in the user database or `pam.groups`).
    pub name: String,
    /// Downloads of each member (`0`: no limit for members).
    pub download: Rate,
    /// Uploads of each member.
    pub upload: Rate,
}

/// Which addresses may connect at all (see `server::access`). The most
/// specific network naming an address decides (deny wins a tie); an address
/// named by neither list is allowed when `allow` is empty and refused
/// otherwise. A refused address gets 421 at connect. Accounts can be
/// restricted further in the user database (`--allow-from`).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Addresses and networks that may connect.
    pub allow: Vec<Cidr>,
    /// Addresses and networks that may not.
    pub deny: Vec<Cidr>,
}

/// The PROXY protocol from a load balancer (see `server::proxy_protocol`):
/// off while `trusted` is empty.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyProtocolConfig {
    /// Sources (the balancers) that must start each connection with a
    /// PROXY v1 or v2 header naming the client.
    pub trusted: Vec<Cidr>,
    /// Control listeners (from `server.listen` or `tls.implicit_listen`)
    /// that accept headers; empty: all of them.
    pub listen: Vec<SocketAddr>,
    /// Refuse connections from other sources on those listeners (only the
    /// balancer may connect).
    pub required: bool,
    /// Seconds a trusted source has to send its header.
    pub header_timeout: u64,
}

impl Default for ProxyProtocolConfig {
    fn default() -> Self {
        ProxyProtocolConfig { trusted: Vec::new(), listen: Vec::new(), required: false, header_timeout: 5 }
    }
}

/// The transfer log (see `server::xferlog`): off unless a path is given.
/// Files are opened at start and reopened on SIGHUP; a change of path needs
/// a restart.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct XferlogConfig {
    /// The standard `xferlog` format to this file (`"-"`: standard error).
    pub path: Option<PathBuf>,
    /// JSON lines with the same facts to this file (`"-"`: standard error).
    pub json_path: Option<PathBuf>,
    /// Lines waiting for the writer; beyond it lines are dropped and counted.
    pub queue: usize,
}

impl Default for XferlogConfig {
    fn default() -> Self {
        XferlogConfig { path: None, json_path: None, queue: 4096 }
    }
}

/// The Prometheus endpoint (`[metrics]`, see `server::metrics`): `GET
/// /metrics` on its own address. The address is fixed at start.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the metrics endpoint.
    pub listen: SocketAddr,
    /// Allow a listen address other than loopback.
    pub allow_remote: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9121)), allow_remote: false }
    }
}

/// `[cluster]`: failed logins, bans and per-user session counts shared by
/// every node through one PostgreSQL database. Fixed at start.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The database (`postgres://user@host/db`); `userdb.url` when absent.
    pub url: Option<String>,
    /// This node's name in the shared tables (default: host name and
    /// process id). Unique per running node.
    pub node: Option<String>,
    /// Seconds between refreshes of the shared ban list and the node's
    /// heartbeat (its session counts).
    pub refresh: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { url: None, node: None, refresh: 1 }
    }
}

impl ClusterConfig {
    /// The database the section uses: its own `url`, else `userdb.url`.
    pub fn database<'a>(&'a self, userdb: &'a UserDbConfig) -> Option<&'a str> {
        self.url.as_deref().or(userdb.url.as_deref())
    }
}

/// One S3-compatible object store (`[stores.NAME]`, see `vfs::object`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `http(s)://host:port` of the S3 API; empty: AWS's endpoint for `region`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Both or neither; neither: `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` from the server's environment.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO, Garage and
    /// Ceph RGW expect; false: virtual-host style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Size of one part of a multipart upload: the memory one upload holds.
    pub part_size: ByteSize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".to_string(),
            access_key_id: None,
            secret_access_key: None,
            path_style: true,
            part_size: ByteSize(crate::vfs::object::DEFAULT_PART_SIZE),
        }
    }
}
