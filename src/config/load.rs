//! Loading and validating a configuration file.
//!
//! A mistake in the configuration should cost its author one glance: every
//! error names the file, the line and column, shows the line, and says what
//! to write instead (the valid keys and the closest one for a typo, the
//! expected type with an example for a wrong value).
//!
//! The text is parsed twice: once into [`Config`] (serde, which rejects
//! unknown keys and wrong types), and once into a tree of key and value
//! positions (`SpanTree`) used to name the section of an unknown key, the
//! key of a wrong value, and the line of a setting that fails validation.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Config, SourceLine, AUTH_MODULES, PERMISSION_MODULES, PLANNED_AUTH_MODULES};
use crate::vfs::normalize;

/// A configuration problem, already phrased for a person: file, line and
/// what to write instead. Several problems are separated by blank lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads, parses and validates a configuration file. Relative paths in it
/// are resolved against the file's directory, so the server does not depend
/// on the directory it was started from.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_and_validate(&text, path, Some(&base))
}

/// Parses and validates configuration text; `origin` names the file in
/// errors. Relative paths stay relative (to the working directory).
pub fn parse_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    parse_and_validate(text, origin, None)
}

/// Validates a configuration built in code (no source text, so errors name
/// keys but no lines). Normalises `anonymous.upload_dirs` in place.
pub fn validate(config: &mut Config, origin: &Path) -> Result<(), ConfigError> {
    let source = Source { origin, text: "", spans: SpanTree::default() };
    check(config, &source)
}

fn parse_and_validate(text: &str, origin: &Path, base: Option<&Path>) -> Result<Config, ConfigError> {
    let mut config: Config = match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            // The span tree fails only on syntax errors, where it is not needed.
            let spans = toml::from_str::<SpanTree>(text).unwrap_or_default();
            let source = Source { origin, text, spans };
            return Err(ConfigError(source.describe_parse_error(&e)));
        }
    };
    let spans = toml::from_str::<SpanTree>(text).unwrap_or_default();
    if let Some(base) = base {
        resolve_relative(&mut config, base);
    }
    check(&mut config, &Source { origin, text, spans }).map(|()| config)
}

/// Makes the file's relative paths relative to `base` (its directory),
/// rule paths included.
fn resolve_relative(config: &mut Config, base: &Path) {
    for p in [&mut config.anonymous.root, &mut config.userdb.path]
        .into_iter()
        .chain(config.server.pid_file.as_mut())
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    for p in [&mut config.tls.certificate, &mut config.tls.key].into_iter().flatten() {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    for rule in &mut config.acl.rule {
        for p in [&mut rule.path, &mut rule.tree, &mut rule.pattern].into_iter().flatten() {
            if !p.is_empty() && Path::new(p.as_str()).is_relative() {
                *p = base.join(p.as_str()).to_string_lossy().into_owned();
            }
        }
    }
}

/// Every key with the type it wants and an example line, in schema order.
/// Sections appear as `section` with a table example. A unit test checks
/// that every key of the schema is listed: add new keys here.
pub const EXAMPLES: &[(&str, &str, &str)] = &[
    ("server", "a table (section)", "[server]"),
    ("server.listen", "an array of \"address:port\" strings", r#"listen = ["0.0.0.0:2121", "[::]:2121"]"#),
    ("server.banner", "a string", r#"banner = "Welcome to example.org""#),
    ("server.pid_file", "a file path string", r#"pid_file = "/run/ferroftpd/ferroftpd.pid""#),
    ("limits", "a table (section)", "[limits]"),
    ("limits.max_clients", "a whole number", "max_clients = 10000"),
    ("limits.max_clients_per_ip", "a whole number", "max_clients_per_ip = 64"),
    ("limits.max_sessions_per_user", "a whole number", "max_sessions_per_user = 8"),
    ("limits.max_login_failures", "a whole number", "max_login_failures = 3"),
    ("limits.failed_login_delay_ms", "a whole number of milliseconds", "failed_login_delay_ms = 1000"),
    ("limits.max_line_length", "a whole number of bytes, at least 512", "max_line_length = 2048"),
    (
        "limits.hashing_memory",
        "a size string (\"64 MiB\"), at least one hash's memory (19 MiB)",
        r#"hashing_memory = "64 MiB""#,
    ),
    ("limits.commands_per_second", "a whole number (0: no limit)", "commands_per_second = 100"),
    ("limits.command_burst", "a whole number of commands", "command_burst = 200"),
    (
        "limits.max_throttled_seconds",
        "a whole number of seconds (0: never close)",
        "max_throttled_seconds = 30",
    ),
    ("ban", "a table (section)", "[ban]"),
    ("ban.max_failures", "a whole number (0: never ban)", "max_failures = 10"),
    ("ban.window", "a whole number of seconds", "window = 600"),
    ("ban.duration", "a whole number of seconds", "duration = 900"),
    ("ban.allow", "an array of address or network strings", r#"allow = ["127.0.0.1", "192.0.2.0/24"]"#),
    ("timeouts", "a table (section)", "[timeouts]"),
    ("timeouts.login", "a whole number of seconds", "login = 60"),
    ("timeouts.idle", "a whole number of seconds", "idle = 300"),
    ("timeouts.data", "a whole number of seconds", "data = 120"),
    ("timeouts.drain", "a whole number of seconds", "drain = 30"),
    ("passive", "a table (section)", "[passive]"),
    ("passive.port_range", "an array of two ports (1024-65535, or both 0)", "port_range = [30000, 30100]"),
    ("passive.advertised_address", "an IP address string", r#"advertised_address = "203.0.113.7""#),
    ("transfer", "a table (section)", "[transfer]"),
    ("transfer.send_buffer", "a whole number of bytes", "send_buffer = 262144"),
    ("transfer.receive_buffer", "a whole number of bytes", "receive_buffer = 262144"),
    ("transfer.fsync", "true or false", "fsync = true"),
    ("auth", "a table (section)", "[auth]"),
    ("auth.chain", "an array of module names", r#"chain = ["anonymous", "userdb"]"#),
    ("anonymous", "a table (section)", "[anonymous]"),
    ("anonymous.root", "a directory path string", r#"root = "/srv/ftp""#),
    ("anonymous.upload_dirs", "an array of absolute virtual paths", r#"upload_dirs = ["/incoming"]"#),
    ("userdb", "a table (section)", "[userdb]"),
    ("userdb.path", "a file path string", r#"path = "/var/lib/ferroftpd/users.db""#),
    ("userdb.url", "a postgres:// URL string", r#"url = "postgres://ferroftpd@db.example/ferroftpd""#),
    ("admin", "a table (section)", "[admin]"),
    ("admin.listen", "an address string", r#"listen = "127.0.0.1:8021""#),
    ("admin.users", "a file path string", r#"users = "/var/lib/ferroftpd/admins.db""#),
    ("admin.allow_remote", "true or false", "allow_remote = false"),
    ("admin.tls", "true or false", "tls = true"),
    ("admin.session_minutes", "a whole number of minutes", "session_minutes = 60"),
    ("pam", "a table (section)", "[pam]"),
    ("pam.service", "a PAM service name string", r#"service = "ferroftpd""#),
    ("pam.root", "a directory path string with %u for the user name", r#"root = "/srv/ftp/%u""#),
    ("pam.home", "true or false", "home = true"),
    ("pam.initial_dir", "an absolute virtual path string", r#"initial_dir = "/""#),
    (
        "pam.mounts",
        "an array of \"/VIRT=/REAL\" or \"/VIRT=/REAL:ro\" strings",
        r#"mounts = ["/pub=/srv/pub:ro"]"#,
    ),
    ("pam.groups", "an array of group names", r#"groups = ["staff"]"#),
    ("pam.unix_groups", "true or false", "unix_groups = true"),
    ("pam.read_only", "true or false", "read_only = false"),
    ("pam.max_sessions", "a whole number", "max_sessions = 4"),
    ("pam.max_concurrent", "a whole number from 1", "max_concurrent = 4"),
    ("permissions", "a table (section)", "[permissions]"),
    ("permissions.modules", "an array of module names: acl, account", r#"modules = ["acl", "account"]"#),
    ("permissions.default", "\"allow\" or \"deny\"", r#"default = "allow""#),
    ("acl", "a table (section) of [[acl.rule]] tables", "[acl]"),
    (
        "acl.rule",
        "an array of rule tables, usually written [[acl.rule]]",
        r#"rule = [{ who = ["*"], tree = "/srv/ftp/pub", allow = ["read-only"] }]"#,
    ),
    (
        "acl.rule.who",
        "an array of user names, \"@group\", \"anonymous\" or \"*\"",
        r#"who = ["alice", "@staff"]"#,
    ),
    (
        "acl.rule.path",
        "a real path string (the file or directory itself)",
        r#"path = "/srv/ftp/pub/secret.txt""#,
    ),
    ("acl.rule.tree", "a real directory path string (it and everything below)", r#"tree = "/srv/ftp/pub""#),
    ("acl.rule.pattern", "a real path string with * ? or **", r#"pattern = "/srv/ftp/pub/**/*.iso""#),
    ("acl.rule.allow", "an array of operation names", r#"allow = ["read-only", "write-new"]"#),
    ("acl.rule.deny", "an array of operation names", r#"deny = ["delete", "overwrite"]"#),
    ("acl.rule.only", "an array of operation names", r#"only = ["upload-only"]"#),
    ("tls", "a table (section)", "[tls]"),
    ("tls.certificate", "a PEM file path string", r#"certificate = "/etc/ferroftpd/cert.pem""#),
    ("tls.key", "a PEM file path string", r#"key = "/etc/ferroftpd/key.pem""#),
    ("tls.implicit_listen", "an array of \"address:port\" strings", r#"implicit_listen = ["0.0.0.0:990"]"#),
    ("tls.require_login", "true or false", "require_login = true"),
    ("tls.require_data", "true or false", "require_data = true"),
    ("tls.anonymous_exempt", "true or false", "anonymous_exempt = true"),
    (
        "tls.exempt_listen",
        "an array of \"address:port\" strings from server.listen",
        r#"exempt_listen = ["127.0.0.1:2121"]"#,
    ),
    ("tls.require_session_reuse", "true or false", "require_session_reuse = true"),
    ("log", "a table (section)", "[log]"),
    ("log.level", "a string: error, warn, info, debug, trace (or a tracing filter)", r#"level = "info""#),
    ("log.file", "a file path string", r#"file = "/var/log/ferroftpd/ferroftpd.log""#),
    ("bandwidth", "a table (section)", "[bandwidth]"),
    ("bandwidth.download", "a rate string such as \"2 MiB/s\" (0: no limit)", r#"download = "100 MiB/s""#),
    ("bandwidth.upload", "a rate string such as \"2 MiB/s\" (0: no limit)", r#"upload = "50 MiB/s""#),
    (
        "bandwidth.user_download",
        "a rate string such as \"2 MiB/s\" (0: no limit)",
        r#"user_download = "2 MiB/s""#,
    ),
    (
        "bandwidth.user_upload",
        "a rate string such as \"2 MiB/s\" (0: no limit)",
        r#"user_upload = "1 MiB/s""#,
    ),
    (
        "bandwidth.anonymous_download",
        "a rate string such as \"2 MiB/s\" (0: no limit)",
        r#"anonymous_download = "500 kB/s""#,
    ),
    (
        "bandwidth.anonymous_upload",
        "a rate string such as \"2 MiB/s\" (0: no limit)",
        r#"anonymous_upload = 0"#,
    ),
    (
        "bandwidth.group",
        "an array of group tables, usually written [[bandwidth.group]]",
        r#"group = [{ name = "staff", download = "10 MiB/s", upload = "5 MiB/s" }]"#,
    ),
    ("bandwidth.group.name", "a group name", r#"name = "staff""#),
    (
        "bandwidth.group.download",
        "a rate string such as \"2 MiB/s\" (0: no limit)",
        r#"download = "10 MiB/s""#,
    ),
    ("bandwidth.group.upload", "a rate string such as \"2 MiB/s\" (0: no limit)", r#"upload = "5 MiB/s""#),
    ("access", "a table (section)", "[access]"),
    ("access.allow", "an array of address or network strings", r#"allow = ["10.0.0.0/8", "2001:db8::/32"]"#),
    ("access.deny", "an array of address or network strings", r#"deny = ["10.66.0.0/16"]"#),
    ("xferlog", "a table (section)", "[xferlog]"),
    (
        "xferlog.path",
        "a file path string, or \"-\" for standard error",
        r#"path = "/var/log/ferroftpd/xferlog""#,
    ),
    (
        "xferlog.json_path",
        "a file path string, or \"-\" for standard error",
        r#"json_path = "/var/log/ferroftpd/transfers.jsonl""#,
    ),
    ("xferlog.queue", "a whole number of lines (at least 1)", "queue = 4096"),
    ("proxy_protocol", "a table (section)", "[proxy_protocol]"),
    (
        "proxy_protocol.trusted",
        "an array of address or network strings (the load balancers)",
        r#"trusted = ["10.0.0.0/8"]"#,
    ),
    (
        "proxy_protocol.listen",
        "an array of \"address:port\" strings from server.listen or tls.implicit_listen",
        r#"listen = ["0.0.0.0:2121"]"#,
    ),
    ("proxy_protocol.required", "true or false", "required = true"),
    ("proxy_protocol.header_timeout", "a whole number of seconds (at least 1)", "header_timeout = 5"),
    ("metrics", "a table (section)", "[metrics]"),
    ("metrics.listen", "an address string", r#"listen = "127.0.0.1:9121""#),
    ("metrics.allow_remote", "true or false", "allow_remote = false"),
    ("cluster", "a table (section)", "[cluster]"),
    ("cluster.url", "a postgres:// URL string", r#"url = "postgres://ferroftpd@db.example/ferroftpd""#),
    ("cluster.node", "a node name string (letters, digits, . _ -)", r#"node = "ftp1""#),
    ("cluster.refresh", "a whole number of seconds, 1 to 60", "refresh = 1"),
    ("stores", "tables of object stores, one per name", "[stores.archive]"),
    ("stores.NAME", "a table (section)", "[stores.archive]"),
    ("stores.NAME.endpoint", "a URL string", r#"endpoint = "http://127.0.0.1:3900""#),
    ("stores.NAME.bucket", "a bucket name string", r#"bucket = "ftp""#),
    ("stores.NAME.region", "a region name string", r#"region = "garage""#),
    (
        "stores.NAME.access_key_id",
        "a string (default: AWS_ACCESS_KEY_ID)",
        r#"access_key_id = "GK31c2f2...""#,
    ),
    (
        "stores.NAME.secret_access_key",
        "a string (default: AWS_SECRET_ACCESS_KEY)",
        r#"secret_access_key = "b892c0...""#,
    ),
    ("stores.NAME.path_style", "true or false", "path_style = true"),
    ("stores.NAME.part_size", "a size from 5 MiB to 5 GiB", r#"part_size = "8 MiB""#),
];

fn example_for(key: &str) -> Option<(&'static str, &'static str)> {
    // `stores.<any name>.key` shares the examples of `stores.NAME.key`.
    let generic;
    let key = match key.strip_prefix("stores.").map(|rest| rest.split_once('.').map_or("", |(_, k)| k)) {
        Some(rest) if !rest.is_empty() => {
            generic = format!("stores.NAME.{rest}");
            generic.as_str()
        }
        _ => key,
    };
    EXAMPLES.iter().find(|(k, _, _)| *k == key).map(|&(_, ty, ex)| (ty, ex))
}

/// The candidate closest to `word` by edit distance, if close enough to be
/// a plausible typo (case is ignored).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance with adjacent transpositions counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// Positions of every key and value of a TOML document.
#[derive(Debug, Default)]
struct SpanTree {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    key: Range<usize>,
    value: Range<usize>,
    node: Node,
}

#[derive(Debug)]
enum Node {
    Table(SpanTree),
    /// Element spans, for errors about one element.
    Array(Vec<(Range<usize>, Node)>),
    Leaf,
}

impl SpanTree {
    fn entry(&self, path: &str) -> Option<&Entry> {
        let mut tree = self;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let entry = tree.entries.get(part)?;
            if parts.peek().is_none() {
                return Some(entry);
            }
            match &entry.node {
                Node::Table(t) => tree = t,
                _ => return None,
            }
        }
        None
    }

    /// The dotted path of the innermost key whose key or value covers
    /// `offset`, and whether that value is a table. Children are searched
    /// first and regardless of their table's span: a table built from
    /// dotted keys (`limits.x = 1`) has no span covering all its keys.
    fn path_at(&self, offset: usize) -> Option<(String, bool)> {
        for (name, e) in &self.entries {
            let tables: Vec<&SpanTree> = match &e.node {
                Node::Table(t) => vec![t],
                // An array of tables (`[[acl.rule]]`): its keys read as `acl.rule.key`.
                Node::Array(items) => items
                    .iter()
                    .filter_map(|(_, n)| match n {
                        Node::Table(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                Node::Leaf => Vec::new(),
            };
            for t in tables {
                if let Some((inner, is_table)) = t.path_at(offset) {
                    return Some((format!("{name}.{inner}"), is_table));
                }
            }
        }
        self.entries
            .iter()
            .find(|(_, e)| e.key.contains(&offset) || e.value.contains(&offset))
            .map(|(name, e)| (name.clone(), matches!(e.node, Node::Table(_))))
    }
}

impl<'de> Deserialize<'de> for SpanTree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(NodeVisitor)? {
            Node::Table(t) => Ok(t),
            _ => Err(de::Error::custom("expected a table")),
        }
    }
}

// `toml::Spanned` cannot be used here: a table made only of dotted keys
// (`limits.a = 1`) has no span, and `Spanned` then fails instead of
// degrading. `MaybeSpanned` speaks the same private protocol (the field
// names of `serde_spanned`, stable across toml 0.5–0.8) and falls back to
// "no span" (an empty range) when the deserializer offers none.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];

/// A value with its byte range; empty range when unknown.
struct MaybeSpanned<T> {
    span: Range<usize>,
    value: T,
}

/// Reads `start`, `end` and the value after the first key (`start`'s name)
/// has been consumed.
fn finish_spanned<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    mut map: A,
) -> Result<MaybeSpanned<T>, A::Error> {
    let start: usize = map.next_value()?;
    let (_, end): (Option<String>, usize) = (map.next_key::<String>()?, map.next_value()?);
    let (_, value): (Option<String>, T) = (map.next_key::<String>()?, map.next_value()?);
    Ok(MaybeSpanned { span: start..end, value })
}

impl<'de> Deserialize<'de> for MaybeSpanned<String> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = MaybeSpanned<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeSpanned { span: 0..0, value: v.to_string() })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                match map.next_key::<String>()? {
                    Some(k) if k == SPANNED_START => finish_spanned(map),
                    _ => Err(de::Error::custom("expected a key")),
                }
            }
        }
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for MaybeSpanned<Node> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SpannedNodeVisitor;
        impl<'de> Visitor<'de> for SpannedNodeVisitor {
            type Value = MaybeSpanned<Node>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any TOML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                match map.next_key::<MaybeSpanned<String>>()? {
                    Some(k) if k.value == SPANNED_START => finish_spanned(map),
                    first => Ok(MaybeSpanned { span: 0..0, value: collect_table(map, first)? }),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Ok(MaybeSpanned { span: 0..0, value: NodeVisitor.visit_seq(seq)? })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeSpanned { span: 0..0, value: Node::Leaf })
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeSpanned { span: 0..0, value: Node::Leaf })
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeSpanned { span: 0..0, value: Node::Leaf })
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeSpanned { span: 0..0, value: Node::Leaf })
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MaybeSpanned { span: 0..0, value: Node::Leaf })
            }
        }
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, SpannedNodeVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// Reads the rest of a table whose first key may already be consumed.
fn collect_table<'de, A: MapAccess<'de>>(
    mut map: A,
    mut key: Option<MaybeSpanned<String>>,
) -> Result<Node, A::Error> {
    let mut entries = BTreeMap::new();
    if key.is_none() {
        key = map.next_key()?;
    }
    while let Some(k) = key {
        let v: MaybeSpanned<Node> = map.next_value()?;
        entries.insert(k.value, Entry { key: k.span, value: v.span, node: v.value });
        key = map.next_key()?;
    }
    Ok(Node::Table(SpanTree { entries }))
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Node, A::Error> {
        collect_table(map, None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<MaybeSpanned<Node>>()? {
            items.push((item.span, item.value));
        }
        Ok(Node::Array(items))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
}

/// The text being checked, for turning byte offsets into messages.
struct Source<'a> {
    origin: &'a Path,
    text: &'a str,
    spans: SpanTree,
}

impl Source<'_> {
    /// `file:line:col: what` plus the line with a caret under `span`, or
    /// `file: what` without a span.
    /// Lines of `what` after the first (hints) go below the quoted line.
    fn locate(&self, span: Option<Range<usize>>, what: &str) -> String {
        let (headline, hints) = what.split_once('\n').map_or((what, None), |(h, rest)| (h, Some(rest)));
        let mut out = self.locate_headline(span, headline);
        if let Some(hints) = hints {
            out.push('\n');
            out.push_str(hints);
        }
        out
    }

    fn locate_headline(&self, span: Option<Range<usize>>, what: &str) -> String {
        let Some(span) = span.filter(|_| !self.text.is_empty()) else {
            return format!("{}: {what}", self.origin.display());
        };
        let start = floor_char_boundary(self.text, span.start.min(self.text.len()));
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..].find('\n').map_or(self.text.len(), |i| start + i);
        let line_no = self.text[..start].matches('\n').count() + 1;
        let col = self.text[line_start..start].chars().count() + 1;
        let line = self.text[line_start..line_end].trim_end_matches('\r');
        let end = floor_char_boundary(self.text, span.end.clamp(start, line_end));
        let width = self.text[start..end].chars().count().max(1);
        let gutter = line_no.to_string().len();
        format!(
            "{}:{line_no}:{col}: {what}\n {:gutter$} |\n {line_no} | {line}\n {:gutter$} | {}{}",
            self.origin.display(),
            "",
            "",
            " ".repeat(col - 1),
            "^".repeat(width),
        )
    }

    fn describe_parse_error(&self, e: &toml::de::Error) -> String {
        let message = e.message().trim();
        let span = e.span();
        let key = span.as_ref().and_then(|s| self.spans.path_at(s.start));
        if let Some((name, expected)) = parse_unknown_field(message) {
            return self.describe_unknown_key(span, key, name, &expected);
        }
        let mut out = self.locate(span, &message.replace('\n', ": "));
        if let Some((path, _)) = key {
            if let Some((ty, example)) = example_for(&path) {
                let _ = write!(out, "\n = `{path}` takes {ty}, for example:\n       {example}");
            }
        }
        out
    }

    fn describe_unknown_key(
        &self,
        span: Option<Range<usize>>,
        key: Option<(String, bool)>,
        name: &str,
        expected: &[&str],
    ) -> String {
        let (section, is_table) = match &key {
            Some((path, is_table)) => (path.rsplit_once('.').map(|(s, _)| s.to_string()), *is_table),
            None => (None, false),
        };
        let guess = closest(name, expected);
        let mut out = match &section {
            Some(section) => self.locate(span, &format!("unknown key `{name}` in [{section}]")),
            None if is_table => self.locate(span, &format!("unknown section [{name}]")),
            None => self.locate(span, &format!("unknown key `{name}` outside any section")),
        };
        let place = section.as_ref().map_or("sections".to_string(), |s| format!("keys in [{s}]"));
        if expected.is_empty() {
            let _ = write!(out, "\n = [{}] takes no keys", section.as_deref().unwrap_or_default());
        } else {
            let _ = write!(out, "\n = valid {place}: {}", expected.join(", "));
        }
        match (guess, &section) {
            (Some(g), Some(_)) => {
                let _ = write!(out, "\n = did you mean `{g}`?");
            }
            (Some(g), None) if is_table => {
                let _ = write!(out, "\n = did you mean [{g}]?");
            }
            (Some(g), None) => {
                let _ = write!(out, "\n = did you mean the section [{g}]?");
            }
            (None, None) if !is_table => {
                let _ = write!(out, "\n = settings belong in a section, such as [server] or [limits]");
            }
            (None, _) => {}
        }
        out
    }

    /// A validation problem about `key` (a dotted path), at the key's line
    /// if the file sets it.
    fn at_key(&self, key: &str, what: &str) -> String {
        let span = self.spans.entry(key).map(|e| e.key.start..e.value.end);
        let what = match what.split_once('\n') {
            _ if span.is_some() => what.to_string(),
            Some((headline, hints)) => format!("{headline} (default value)\n{hints}"),
            None => format!("{what} (default value)"),
        };
        self.locate(span, &format!("{key}: {what}"))
    }

    /// The byte range of `[[acl.rule]]` number `index` (its first key when
    /// the table itself has no span).
    fn rule_span(&self, index: usize) -> Option<Range<usize>> {
        let Node::Array(items) = &self.spans.entry("acl.rule")?.node else { return None };
        let (span, node) = items.get(index)?;
        if !span.is_empty() {
            return Some(span.clone());
        }
        match node {
            Node::Table(t) => {
                t.entries.values().map(|e| e.key.clone()).filter(|k| !k.is_empty()).min_by_key(|k| k.start)
            }
            _ => None,
        }
    }

    /// The 1-based line of `[[acl.rule]]` number `index`.
    fn rule_line(&self, index: usize) -> Option<usize> {
        let span = self.rule_span(index)?;
        let start = floor_char_boundary(self.text, span.start.min(self.text.len()));
        Some(self.text[..start].matches('\n').count() + 1)
    }

    /// A problem with `key` of `[[acl.rule]]` number `index` (element
    /// `item` of its array if given), at the best place known.
    fn at_rule(&self, index: usize, key: &str, item: Option<usize>, what: &str) -> String {
        let table = self.spans.entry("acl.rule").and_then(|e| match &e.node {
            Node::Array(items) => match items.get(index) {
                Some((_, Node::Table(t))) => Some(t),
                _ => None,
            },
            _ => None,
        });
        let entry = table.and_then(|t| t.entries.get(key));
        let span = match (entry, item) {
            (Some(e), Some(i)) => match &e.node {
                Node::Array(items) => items.get(i).map(|(s, _)| s.clone()),
                _ => Some(e.key.start..e.value.end),
            },
            (Some(e), None) => Some(e.key.start..e.value.end),
            (None, _) => self.rule_span(index),
        };
        let span = span.filter(|s| !s.is_empty());
        self.locate(span, &format!("acl.rule.{key}: {what}"))
    }

    /// Like [`Source::at_key`], at element `index` of an array value.
    fn at_item(&self, key: &str, index: usize, what: &str) -> String {
        let item = self.spans.entry(key).and_then(|e| match &e.node {
            Node::Array(items) => items.get(index).map(|(span, _)| span.clone()),
            _ => None,
        });
        match item {
            Some(span) => self.locate(Some(span), &format!("{key}: {what}")),
            None => self.at_key(key, what),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" (or
/// "expected `a`", or "there are no fields") into the name and the list.
fn parse_unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).collect();
    Some((name, expected))
}

/// Checks what serde cannot: values that parse but make no sense together
/// or point to missing directories. Collects every problem.
fn check(config: &mut Config, src: &Source<'_>) -> Result<(), ConfigError> {
    let mut problems = Vec::new();

    if config.server.listen.is_empty() {
        problems.push(src.at_key(
            "server.listen",
            "no address to listen on\n = write, for example: listen = [\"127.0.0.1:2121\"]",
        ));
    }

    if config.limits.max_line_length < 512 {
        problems.push(src.at_key(
            "limits.max_line_length",
            &format!(
                "{} is too small: a command line needs room for a long path (at least 512 bytes)\n \
                 = write, for example: max_line_length = 2048",
                config.limits.max_line_length
            ),
        ));
    }

    check_defences(config, src, &mut problems);

    let [first, last] = config.passive.port_range;
    if first > last {
        problems.push(src.at_key(
            "passive.port_range",
            &format!("the range is reversed\n = write: port_range = [{last}, {first}]"),
        ));
    }
    if (first == 0) != (last == 0) || (first != 0 && first < 1024) || (last != 0 && last < 1024) {
        problems.push(src.at_key(
            "passive.port_range",
            "ports must be both 0 (any free port) or both 1024 or above\n \
             = write, for example: port_range = [30000, 30100]",
        ));
    }

    check_chain(config, src, &mut problems);

    let chain_has = |m: &str| config.auth.chain.iter().any(|c| c == m);
    if chain_has("anonymous") && !config.anonymous.root.is_dir() {
        problems.push(src.at_key(
            "anonymous.root",
            &format!(
                "directory `{}` does not exist\n = create it, point `root` at an existing directory, \
                 or remove \"anonymous\" from auth.chain",
                config.anonymous.root.display()
            ),
        ));
    }
    for (i, dir) in config.anonymous.upload_dirs.iter_mut().enumerate() {
        match normalize("/", dir) {
            Ok(n) if dir.starts_with('/') => *dir = n,
            _ => problems.push(src.at_item(
                "anonymous.upload_dirs",
                i,
                &format!(
                    "`{}` is not an absolute virtual path\n = write it from the anonymous root, \
                     for example: \"/{}\"",
                    dir.escape_debug(),
                    dir.trim_start_matches(['.', '/']).escape_debug()
                ),
            )),
        }
    }

    check_postgres(config, src, &mut problems);
    if chain_has("userdb") && config.userdb.url.is_none() {
        let parent = userdb_parent(&config.userdb.path);
        if !parent.is_dir() {
            problems.push(src.at_key(
                "userdb.path",
                &format!(
                    "directory `{}` for the user database does not exist\n = create it, or write, \
                     for example: path = \"/var/lib/ferroftpd/users.db\"",
                    parent.display()
                ),
            ));
        }
    }

    if chain_has("pam") {
        check_pam(config, src, &mut problems);
    }
    check_admin(config, src, &mut problems);
    check_tls(config, src, &mut problems);
    check_permissions(config, src, &mut problems);
    check_bandwidth(config, src, &mut problems);

    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&config.log.level) {
        problems.push(src.at_key(
            "log.level",
            &format!(
                "`{}` is not a log level ({e})\n = write one of: error, warn, info, debug, trace",
                config.log.level.escape_debug()
            ),
        ));
    }

    check_xferlog(config, src, &mut problems);
    if let Some(file) = &config.log.file {
        let parent = userdb_parent(file);
        if !parent.is_dir() {
            problems.push(src.at_key(
                "log.file",
                &format!(
                    "directory `{}` for the log does not exist\n = create it, or remove log.file to log to standard error",
                    parent.display()
                ),
            ));
        }
    }
    check_proxy_protocol(config, src, &mut problems);
    check_metrics(config, src, &mut problems);
    check_stores(config, src, &mut problems);

    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(problems.join("\n\n")))
    }
}

/// `[proxy_protocol]`: listeners it names exist, `required` has someone
/// to admit, the header has time to arrive.
fn check_proxy_protocol(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    let pp = &config.proxy_protocol;
    if pp.required && pp.trusted.is_empty() {
        problems.push(src.at_key(
            "proxy_protocol.required",
            "no trusted source: every connection would be refused\n \
             = name the load balancers, for example: trusted = [\"10.0.0.0/8\"]",
        ));
    }
    if pp.header_timeout == 0 {
        problems.push(src.at_key(
            "proxy_protocol.header_timeout",
            "0 seconds leaves no time for the header\n = write, for example: header_timeout = 5",
        ));
    }
    let listeners: Vec<&SocketAddr> =
        config.server.listen.iter().chain(config.tls.implicit_listen.iter()).collect();
    for (i, addr) in pp.listen.iter().enumerate() {
        if !listeners.contains(&addr) {
            let names: Vec<String> = listeners.iter().map(|a| format!("\"{a}\"")).collect();
            problems.push(src.at_item(
                "proxy_protocol.listen",
                i,
                &format!("{addr} is not a control listener\n = name one of: {}", names.join(", ")),
            ));
        }
    }
}

/// The `[admin]` section, when present.
fn check_admin(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    let Some(admin) = &config.admin else { return };
    if !admin.listen.ip().is_loopback() && !admin.allow_remote {
        problems.push(src.at_key(
            "admin.listen",
            &format!(
                "`{}` is reachable from other machines\n = listen on 127.0.0.1, or set allow_remote = true \
                 (and tls = true: the admin's password would cross the network)",
                admin.listen
            ),
        ));
    }
    if admin.tls && config.tls.certificate.is_none() {
        problems.push(src.at_key(
            "admin.tls",
            "HTTPS needs the FTPS certificate\n = set tls.certificate and tls.key, or tls = false",
        ));
    }
    let parent = userdb_parent(&admin.users);
    if !parent.is_dir() {
        problems.push(src.at_key(
            "admin.users",
            &format!("directory `{}` does not exist\n = create it, or write, for example: users = \"/var/lib/ferroftpd/admins.db\"", parent.display()),
        ));
    }
    if admin.session_minutes == 0 {
        problems.push(src.at_key(
            "admin.session_minutes",
            "0 would log every admin out at once\n = write, for example: session_minutes = 60",
        ));
    }
}

/// `userdb.url` and `[cluster]`: URLs that parse (nothing is connected to
/// here), one of `userdb.path` and `userdb.url`, and a database for the
/// cluster.
fn check_postgres(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    const HINT: &str = "write, for example: url = \"postgres://ferroftpd@db.example:5432/ferroftpd\"";
    let check_url = |key: &str, url: &str, problems: &mut Vec<String>| {
        if let Err(e) = crate::pg::Target::parse(url) {
            problems.push(src.at_key(key, &format!("{e}\n = {HINT}")));
        }
    };
    if let Some(url) = &config.userdb.url {
        check_url("userdb.url", url, problems);
        if src.spans.entry("userdb.path").is_some() {
            problems.push(src.at_key(
                "userdb.path",
                "userdb.path and userdb.url are both given: the users are in one database\n \
                 = remove path to use PostgreSQL, or url to use the SQLite file",
            ));
        }
    }
    let Some(cluster) = &config.cluster else { return };
    match (&cluster.url, &config.userdb.url) {
        (Some(url), _) => check_url("cluster.url", url, problems),
        (None, Some(_)) => {}
        (None, None) => problems.push(src.at_key(
            "cluster.url",
            &format!("[cluster] needs a PostgreSQL database (or userdb.url to share)\n = {HINT}"),
        )),
    }
    if let Some(node) = &cluster.node {
        let ok = !node.is_empty()
            && node.len() <= 64
            && node.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
        if !ok {
            problems.push(src.at_key(
                "cluster.node",
                &format!(
                    "`{}` is not a node name: 1 to 64 letters, digits, `.`, `_`, `-` or `:`\n \
                     = write, for example: node = \"ftp1\"",
                    node.escape_debug()
                ),
            ));
        }
    }
    if !(1..=60).contains(&cluster.refresh) {
        problems.push(src.at_key(
            "cluster.refresh",
            &format!(
                "{} seconds is out of range (1 to 60): bans made elsewhere show up within this time\n \
                 = write, for example: refresh = 1",
                cluster.refresh
            ),
        ));
    }
}

/// The `[metrics]` section, when present: loopback unless allowed, and not
/// an address another listener of this server takes.
fn check_metrics(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    let Some(metrics) = &config.metrics else { return };
    if !metrics.listen.ip().is_loopback() && !metrics.allow_remote {
        problems.push(src.at_key(
            "metrics.listen",
            &format!(
                "`{}` is reachable from other machines\n = listen on 127.0.0.1 (and let the scraper in \
                 through a proxy or tunnel), or set allow_remote = true",
                metrics.listen
            ),
        ));
    }
    let taken = config
        .server
        .listen
        .iter()
        .chain(&config.tls.implicit_listen)
        .chain(config.admin.as_ref().map(|a| &a.listen))
        .any(|addr| *addr == metrics.listen);
    if metrics.listen.port() != 0 && taken {
        problems.push(src.at_key(
            "metrics.listen",
            &format!(
                "`{}` is already a listener of this server\n = write another port, for example: listen = \"127.0.0.1:9121\"",
                metrics.listen
            ),
        ));
    }
}

/// `[stores.NAME]`: a bucket, both credentials or neither, a part size S3
/// accepts; `store:NAME` references (PAM mounts) name a configured store.
fn check_stores(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    use crate::vfs::object::{StoreRef, MAX_PART_SIZE, MIN_PART_SIZE};
    for (name, store) in &config.stores {
        let at = |key: &str| format!("stores.{name}.{key}");
        if StoreRef::parse(Path::new(&format!("store:{name}"))).is_none_or(|r| r.is_err()) {
            problems.push(src.at_key(
                &format!("stores.{name}"),
                &format!(
                    "`{}` is not a store name: use letters, digits, `-`, `_` or `.`",
                    name.escape_debug()
                ),
            ));
        }
        if store.bucket.is_empty() {
            problems.push(
                src.at_key(&format!("stores.{name}"), "no bucket\n = write, for example: bucket = \"ftp\""),
            );
        }
        if !store.endpoint.is_empty()
            && !store.endpoint.starts_with("http://")
            && !store.endpoint.starts_with("https://")
        {
            problems.push(src.at_key(
                &at("endpoint"),
                &format!(
                    "`{}` is not an http:// or https:// URL\n = write, for example: endpoint = \"http://127.0.0.1:3900\"",
                    store.endpoint.escape_debug()
                ),
            ));
        }
        if store.region.is_empty() {
            problems.push(
                src.at_key(&at("region"), "the region is empty\n = write, for example: region = \"garage\""),
            );
        }
        if store.access_key_id.is_some() != store.secret_access_key.is_some() {
            problems.push(src.at_key(
                &format!("stores.{name}"),
                "give both access_key_id and secret_access_key, or neither (then AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY come from the environment)",
            ));
        }
        let part = store.part_size.bytes();
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part) {
            problems.push(src.at_key(
                &at("part_size"),
                &format!(
                    "{} is outside what S3 accepts for a part (5 MiB to 5 GiB)\n = write, for example: part_size = \"8 MiB\"",
                    store.part_size
                ),
            ));
        }
    }
}

/// Whether `real` names a store that the configuration lacks: the problem
/// to report, if any.
fn store_reference_problem(
    stores: &std::collections::BTreeMap<String, crate::config::StoreConfig>,
    real: &Path,
) -> Option<String> {
    match crate::vfs::object::StoreRef::parse(real)? {
        Err(e) => Some(e),
        Ok(r) if !stores.contains_key(&r.store) => {
            Some(format!("store `{}` is not configured\n = add a [stores.{}] section", r.store, r.store))
        }
        Ok(_) => None,
    }
}

/// The `[xferlog]` section: each file's directory exists and the file can
/// be opened for appending.
fn check_xferlog(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    if config.xferlog.queue == 0 {
        problems.push(src.at_key(
            "xferlog.queue",
            "the queue must hold at least one line\n = write, for example: queue = 4096",
        ));
    }
    let files = [("xferlog.path", &config.xferlog.path), ("xferlog.json_path", &config.xferlog.json_path)];
    for (key, path) in files {
        let Some(path) = path else { continue };
        if path.as_os_str() == crate::server::xferlog::STDERR {
            continue;
        }
        let parent = userdb_parent(path);
        if !parent.is_dir() {
            problems.push(src.at_key(
                key,
                &format!(
                    "directory `{}` for the transfer log does not exist\n = create it, or write \"-\" for standard error",
                    parent.display()
                ),
            ));
            continue;
        }
        // An existing file must take appends; a missing one is created at start.
        if !path.exists() {
            continue;
        }
        if let Err(e) = std::fs::OpenOptions::new().append(true).open(path) {
            problems.push(src.at_key(
                key,
                &format!(
                    "cannot open `{}` for appending ({e})\n = make it writable by the server",
                    path.display()
                ),
            ));
        }
    }
}

/// The `[pam]` section, when `pam` is in the chain.
fn check_pam(config: &mut Config, src: &Source<'_>, problems: &mut Vec<String>) {
    if let Err(e) = crate::auth::pam::available() {
        problems.push(src.at_item(
            "auth.chain",
            config.auth.chain.iter().position(|m| m == "pam").unwrap_or(0),
            &e,
        ));
    }
    let pam = &mut config.pam;
    if pam.service.is_empty() || pam.service.contains(['/', '\0']) {
        problems.push(src.at_key(
            "pam.service",
            "a PAM service is a file name in /etc/pam.d\n = write, for example: service = \"ferroftpd\"",
        ));
    }
    match (&pam.root, pam.home) {
        (Some(_), true) => problems.push(src.at_key(
            "pam.home",
            "both `root` and `home` are set\n = keep one: root = \"/srv/ftp/%u\" or home = true",
        )),
        (None, false) => problems.push(src.at_key(
            "pam",
            "PAM users need a root directory\n = write root = \"/srv/ftp/%u\" (%u: the user name) or home = true",
        )),
        (Some(root), false) if !Path::new(root).is_absolute() => problems.push(src.at_key(
            "pam.root",
            &format!("`{}` is not an absolute path\n = write, for example: root = \"/srv/ftp/%u\"", root.escape_debug()),
        )),
        _ => {}
    }
    match normalize("/", &pam.initial_dir) {
        Ok(n) if pam.initial_dir.starts_with('/') => pam.initial_dir = n,
        _ => problems.push(src.at_key(
            "pam.initial_dir",
            &format!(
                "`{}` is not an absolute virtual path\n = write, for example: initial_dir = \"/\"",
                pam.initial_dir.escape_debug()
            ),
        )),
    }
    for (i, m) in pam.mounts.iter().enumerate() {
        match crate::vfs::MountSpec::parse(m) {
            Ok(spec) if crate::vfs::object::is_store_path(&spec.real_path) => {
                if let Some(problem) = store_reference_problem(&config.stores, &spec.real_path) {
                    problems.push(src.at_item("pam.mounts", i, &problem));
                }
            }
            Ok(spec) if !spec.real_path.is_absolute() => problems.push(src.at_item(
                "pam.mounts",
                i,
                &format!(
                    "`{}` is not an absolute path\n = write, for example: \"/pub=/srv/pub:ro\"",
                    spec.real_path.display()
                ),
            )),
            Ok(spec) if !spec.real_path.is_dir() => problems.push(src.at_item(
                "pam.mounts",
                i,
                &format!(
                    "directory `{}` does not exist\n = create it or remove this mount",
                    spec.real_path.display()
                ),
            )),
            Ok(_) => {}
            Err(e) => problems.push(src.at_item(
                "pam.mounts",
                i,
                &format!("{e}\n = write, for example: \"/pub=/srv/pub:ro\""),
            )),
        }
    }
    if pam.max_concurrent == 0 {
        problems.push(src.at_key(
            "pam.max_concurrent",
            "0 would let no PAM login through\n = write, for example: max_concurrent = 4",
        ));
    }
}

/// The brute-force and exhaustion defences: values that would disable a
/// defence by accident, or make every login impossible.
fn check_defences(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    let limits = &config.limits;
    let one_hash = crate::auth::password::hash_memory_bytes();
    if limits.hashing_memory.bytes() < one_hash {
        problems.push(src.at_key(
            "limits.hashing_memory",
            &format!(
                "{} is less than one password verification needs ({})\n \
                 = write, for example: hashing_memory = \"64 MiB\"",
                limits.hashing_memory,
                super::ByteSize(one_hash)
            ),
        ));
    }
    if limits.commands_per_second > 0 && limits.command_burst == 0 {
        problems.push(src.at_key(
            "limits.command_burst",
            "0 lets no command through\n = write, for example: command_burst = 200",
        ));
    }
    let ban = &config.ban;
    if ban.max_failures > 0 {
        for (key, value) in [("ban.window", ban.window), ("ban.duration", ban.duration)] {
            if value == 0 {
                problems.push(src.at_key(
                    key,
                    "0 seconds makes the ban useless\n = set ban.max_failures = 0 to turn banning off, \
                     or write a number of seconds",
                ));
            }
        }
    }
}

/// `[[bandwidth.group]]`: every table names a group, each group once.
fn check_bandwidth(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    let groups = &config.bandwidth.group;
    for (i, g) in groups.iter().enumerate() {
        if g.name.is_empty() {
            problems.push(src.at_item(
                "bandwidth.group",
                i,
                "this table names no group\n = write, for example: name = \"staff\"",
            ));
        } else if groups[..i].iter().any(|o| o.name == g.name) {
            problems.push(src.at_item(
                "bandwidth.group",
                i,
                &format!("group `{}` has limits twice\n = merge the two tables", g.name.escape_debug()),
            ));
        }
    }
}

fn userdb_parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// TLS settings: the certificate and key must both be given, readable and
/// belong together; every other TLS setting needs them.
fn check_tls(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    let tls = &config.tls;
    match (&tls.certificate, &tls.key) {
        (Some(cert), Some(key)) => {
            if let Err(e) = crate::tls::TlsSetup::load(cert, key) {
                let at =
                    if e.0.starts_with(&key.display().to_string()) { "tls.key" } else { "tls.certificate" };
                problems.push(src.at_key(
                    at,
                    &format!("{e}\n = make one for testing: ferroftpd cert self-signed --host HOSTNAME"),
                ));
            }
        }
        (Some(_), None) => problems.push(src.at_key(
            "tls.certificate",
            "a certificate without its key\n = add, for example: key = \"/etc/ferroftpd/key.pem\"",
        )),
        (None, Some(_)) => problems.push(src.at_key(
            "tls.key",
            "a key without its certificate\n = add, for example: certificate = \"/etc/ferroftpd/cert.pem\"",
        )),
        (None, None) => {
            let needs_cert = [
                ("tls.implicit_listen", !tls.implicit_listen.is_empty()),
                ("tls.require_login", tls.require_login),
                ("tls.require_data", tls.require_data),
                ("tls.anonymous_exempt", tls.anonymous_exempt),
                ("tls.exempt_listen", !tls.exempt_listen.is_empty()),
            ];
            for (key, set) in needs_cert {
                if set {
                    problems.push(src.at_key(
                        key,
                        "TLS is not configured\n = set tls.certificate and tls.key (or remove this setting)",
                    ));
                }
            }
        }
    }
    for (i, addr) in tls.exempt_listen.iter().enumerate() {
        if !config.server.listen.contains(addr) {
            let listen: Vec<String> = config.server.listen.iter().map(|a| format!("\"{a}\"")).collect();
            problems.push(src.at_item(
                "tls.exempt_listen",
                i,
                &format!(
                    "{addr} is not in server.listen\n = name one of: {}",
                    if listen.is_empty() { "(none)".to_string() } else { listen.join(", ") }
                ),
            ));
        }
    }
    for (i, addr) in tls.implicit_listen.iter().enumerate() {
        if addr.port() != 0 && config.server.listen.contains(addr) {
            problems.push(src.at_item(
                "tls.implicit_listen",
                i,
                &format!(
                    "{addr} is also in server.listen\n = a port speaks either plain FTP with AUTH TLS or implicit TLS: \
                     use another port, such as 990"
                ),
            ));
        }
    }
}

/// `permissions.modules` names known modules once each; every rule
/// compiles (and is stamped with its file and line for explanations).
fn check_permissions(config: &mut Config, src: &Source<'_>, problems: &mut Vec<String>) {
    let valid = PERMISSION_MODULES.join(", ");
    for (i, name) in config.permissions.modules.iter().enumerate() {
        let problem = if PERMISSION_MODULES.contains(&name.as_str()) {
            if config.permissions.modules[..i].contains(name) {
                format!("module `{name}` is listed twice\n = list each module once")
            } else {
                continue;
            }
        } else {
            let mut p = format!("unknown module `{}`\n = valid modules: {valid}", name.escape_debug());
            if let Some(g) = closest(name, PERMISSION_MODULES) {
                let _ = write!(p, "\n = did you mean `{g}`?");
            }
            p
        };
        problems.push(src.at_item("permissions.modules", i, &problem));
    }
    for i in 0..config.acl.rule.len() {
        let origin = SourceLine { file: src.origin.to_path_buf(), line: src.rule_line(i) };
        let Some(spec) = config.acl.rule.get_mut(i) else { continue };
        spec.origin = Some(origin);
        if let Err(errors) = crate::perm::rules::compile(spec, i) {
            for e in errors {
                problems.push(src.at_rule(i, e.key, e.item, &e.message));
            }
        }
    }
}

fn check_chain(config: &Config, src: &Source<'_>, problems: &mut Vec<String>) {
    let valid = AUTH_MODULES.join(", ");
    if config.auth.chain.is_empty() {
        problems.push(src.at_key(
            "auth.chain",
            "no authentication module: nobody could log in\n = write, for example: chain = [\"anonymous\", \"userdb\"]",
        ));
    }
    for (i, name) in config.auth.chain.iter().enumerate() {
        let problem = if AUTH_MODULES.contains(&name.as_str()) {
            if config.auth.chain[..i].contains(name) {
                format!("module `{name}` is listed twice\n = list each module once")
            } else {
                continue;
            }
        } else if PLANNED_AUTH_MODULES.contains(&name.as_str()) {
            format!("module `{name}` is not available yet\n = valid modules: {valid}")
        } else {
            let mut p = format!("unknown module `{}`\n = valid modules: {valid}", name.escape_debug());
            if let Some(g) = closest(name, AUTH_MODULES) {
                let _ = write!(p, "\n = did you mean `{g}`?");
            }
            p
        };
        problems.push(src.at_item("auth.chain", i, &problem));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config whose directories exist, with `body` appended.
    fn parse(body: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferroftpd.toml");
        std::fs::create_dir(dir.path().join("ftp-root")).unwrap();
        std::fs::write(&path, body).unwrap();
        load_file(&path)
    }

    fn error(body: &str) -> String {
        let e = parse(body).expect_err("config should be refused").0;
        assert!(e.contains("ferroftpd.toml"), "no file name in:\n{e}");
        e
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse("").unwrap();
        assert!(c.anonymous.root.is_absolute() && c.anonymous.root.ends_with("ftp-root"));
        assert!(c.userdb.path.is_absolute());
        assert_eq!(c.limits, crate::config::LimitsConfig::default());
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
            [server]
            listen = ["127.0.0.1:2121", "[::1]:2121"]
            [limits]
            max_clients = 5
            [passive]
            port_range = [30000, 30100]
            advertised_address = "203.0.113.7"
            [anonymous]
            upload_dirs = ["incoming/../drop/"]
            "#,
        );
        // Relative upload dirs are refused, but normalisation of absolute ones works:
        assert!(c.is_err());
        let c =
            parse("[anonymous]\nupload_dirs = [\"/drop/./x/\"]\n[log]\nlevel = \"ferroftpd=debug,warn\"\n")
                .unwrap();
        assert_eq!(c.anonymous.upload_dirs, ["/drop/x"]);
    }

    #[test]
    fn unknown_key_names_section_valid_keys_and_closest() {
        let e = error("[server]\nbanner = \"hi\"\n\n[limits]\nmax_client = 5\n");
        assert!(e.contains("ferroftpd.toml:5:1: unknown key `max_client` in [limits]"), "{e}");
        assert!(e.contains("max_clients, max_clients_per_ip"), "{e}");
        assert!(e.contains("did you mean `max_clients`?"), "{e}");
        assert!(e.contains(" 5 | max_client = 5"), "{e}");
    }

    #[test]
    fn drain_time_and_log_file() {
        let c = parse("[timeouts]\ndrain = 5\n").unwrap();
        assert_eq!(c.timeouts.drain, 5);
        assert_eq!(parse("").unwrap().timeouts.drain, 30);
        let e = error("[log]\nfile = \"/nonexistent/ferroftpd/ferroftpd.log\"\n");
        assert!(e.contains(":2:1: log.file") && e.contains("does not exist"), "{e}");
    }

    #[test]
    fn unknown_dotted_key_and_section() {
        let e = error("limits.max_clients = 5\nlimits.max_line_lenght = 600\n");
        assert!(e.contains(":2:8: unknown key `max_line_lenght` in [limits]"), "{e}");
        assert!(e.contains("did you mean `max_line_length`?"), "{e}");

        let e = error("# comment\n[limit]\nmax_clients = 5\n");
        assert!(e.contains(":2:2: unknown section [limit]"), "{e}");
        assert!(e.contains("did you mean [limits]?"), "{e}");

        let e = error("max_clients = 5\n");
        assert!(e.contains(":1:1: unknown key `max_clients` outside any section"), "{e}");
    }

    #[test]
    fn wrong_type_gives_expected_type_and_example() {
        let e = error("[limits]\nmax_clients = \"many\"\n");
        assert!(e.contains("ferroftpd.toml:2:15: invalid type: string \"many\", expected u32"), "{e}");
        assert!(e.contains("`limits.max_clients` takes a whole number"), "{e}");
        assert!(e.contains("max_clients = 10000"), "{e}");

        let e = error("[server]\nlisten = \"0.0.0.0:21\"\n");
        assert!(e.contains(":2:10:") && e.contains(r#"listen = ["0.0.0.0:2121""#), "{e}");

        let e = error("[server]\nlisten = [\"127.0.0.1:2121\", \"nope\"]\n");
        assert!(e.contains(":2:29: invalid socket address syntax"), "{e}");
        assert!(e.contains("`server.listen` takes an array"), "{e}");

        let e = error("[passive]\nport_range = [30000]\n");
        assert!(e.contains(":2:14:") && e.contains("port_range = [30000, 30100]"), "{e}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = error("[server]\nbanner = \"unterminated\n");
        assert!(e.contains("ferroftpd.toml:2:"), "{e}");
        let e = error("[limits\n");
        assert!(e.contains("ferroftpd.toml:1:8: invalid table header"), "{e}");
    }

    #[test]
    fn bandwidth_and_access_values_are_checked_with_their_line() {
        let e = error("[bandwidth]\nuser_download = \"4 MiB/s\"\ndownload = \"2 MiB\"\n");
        assert!(e.contains("ferroftpd.toml:3:"), "{e}");
        assert!(e.contains("not a rate"), "{e}");
        let e = error("[bandwidth]\nupload = \"2 MiB/h\"\n");
        assert!(e.contains("ferroftpd.toml:2:"), "{e}");
        let e = error("[access]\ndeny = [\"10.0.0.0/33\"]\n");
        assert!(e.contains("ferroftpd.toml:2:"), "{e}");
        let e = error("[[bandwidth.group]]\nname = \"staff\"\n[[bandwidth.group]]\nname = \"staff\"\n");
        assert!(e.contains("group `staff` has limits twice"), "{e}");
    }

    #[test]
    fn proxy_protocol_settings_are_checked() {
        let ok = parse(
            "[server]\nlisten = [\"127.0.0.1:2121\"]\n[proxy_protocol]\n\
             trusted = [\"10.0.0.0/8\", \"192.0.2.7\"]\nlisten = [\"127.0.0.1:2121\"]\nrequired = true\n",
        )
        .unwrap();
        assert_eq!(ok.proxy_protocol.trusted.len(), 2);
        assert_eq!(ok.proxy_protocol.header_timeout, 5);
        let e = error("[proxy_protocol]\nrequired = true\n");
        assert!(e.contains("ferroftpd.toml:2:1: proxy_protocol.required: no trusted source"), "{e}");
        let e = error("[proxy_protocol]\ntrusted = [\"10.0.0.0/8\"]\nheader_timeout = 0\n");
        assert!(e.contains(":3:1: proxy_protocol.header_timeout"), "{e}");
        let e = error("[proxy_protocol]\ntrusted = [\"10.0.0.0/8\"]\nlisten = [\"127.0.0.1:9999\"]\n");
        assert!(e.contains("127.0.0.1:9999 is not a control listener"), "{e}");
        let e = error("[proxy_protocol]\ntrusted = [\"10.0.0.0/33\"]\n");
        assert!(e.contains("ferroftpd.toml:2:"), "{e}");
    }

    #[test]
    fn missing_anonymous_root_points_at_its_line() {
        let e = error("[auth]\nchain = [\"anonymous\"]\n[anonymous]\nroot = \"nowhere\"\n");
        assert!(e.contains("ferroftpd.toml:4:1: anonymous.root: directory"), "{e}");
        assert!(e.contains("nowhere` does not exist"), "{e}");
        // Not in the chain: not checked.
        parse("[auth]\nchain = [\"userdb\"]\n[anonymous]\nroot = \"nowhere\"\n").unwrap();
    }

    #[test]
    fn missing_userdb_directory() {
        let e = error("[userdb]\npath = \"no/such/users.db\"\n");
        assert!(e.contains(":2:1: userdb.path: directory"), "{e}");
        assert!(e.contains("path = \"/var/lib/ferroftpd/users.db\""), "{e}");
    }

    #[test]
    fn port_range_rules() {
        let e = error("[passive]\nport_range = [40000, 30000]\n");
        assert!(e.contains(":2:1: passive.port_range: the range is reversed"), "{e}");
        assert!(e.contains("port_range = [30000, 40000]"), "{e}");
        let e = error("[passive]\nport_range = [0, 30000]\n");
        assert!(e.contains(":2:1: passive.port_range: ports must be both 0"), "{e}");
        let e = error("[passive]\nport_range = [21, 30000]\n");
        assert!(e.contains("both 1024 or above"), "{e}");
        parse("[passive]\nport_range = [0, 0]\n").unwrap();
        parse("[passive]\nport_range = [1024, 1024]\n").unwrap();
    }

    #[test]
    fn line_length_and_listen() {
        let e = error("[limits]\nmax_line_length = 100\n");
        assert!(e.contains(":2:1: limits.max_line_length: 100 is too small"), "{e}");
        assert!(e.contains("max_line_length = 2048"), "{e}");
        let e = error("[server]\nlisten = []\n");
        assert!(e.contains(":2:1: server.listen: no address"), "{e}");
    }

    #[test]
    fn upload_dirs_must_be_absolute() {
        let e = error("[anonymous]\nupload_dirs = [\"/ok\", \"incoming\"]\n");
        assert!(e.contains(":2:23: anonymous.upload_dirs: `incoming` is not an absolute"), "{e}");
        assert!(e.contains("\"/incoming\""), "{e}");
    }

    #[test]
    fn stores() {
        let c = parse(
            "[stores.s3]\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"ftp\"\nregion = \"garage\"\n\
             access_key_id = \"k\"\nsecret_access_key = \"s\"\npart_size = \"16 MiB\"\n[stores.aws]\nbucket = \"b\"\n",
        )
        .unwrap();
        let s3 = &c.stores["s3"];
        assert_eq!(s3.part_size, crate::config::ByteSize::mib(16));
        assert!(s3.path_style);
        let aws = &c.stores["aws"];
        assert_eq!((aws.region.as_str(), aws.access_key_id.as_ref()), ("us-east-1", None));
        assert_eq!(aws.part_size, crate::config::ByteSize::mib(8));
        assert_eq!(c.stores.keys().map(String::as_str).collect::<Vec<_>>(), ["aws", "s3"]);

        let e = error(
            "[stores.s3]\nendpoint = \"127.0.0.1:3900\"\npart_size = \"1 MiB\"\naccess_key_id = \"k\"\n",
        );
        assert!(e.contains("stores.s3: no bucket"), "{e}");
        assert!(e.contains(":2:1: stores.s3.endpoint: `127.0.0.1:3900` is not an http"), "{e}");
        assert!(e.contains(":3:1: stores.s3.part_size: 1 MiB is outside what S3 accepts"), "{e}");
        assert!(e.contains("give both access_key_id and secret_access_key, or neither"), "{e}");
        let e = error("[stores.s3]\nbucket = \"b\"\npart_sise = 1\n");
        assert!(e.contains("part_size"), "{e}");
        let e = error(
            "[auth]\nchain = [\"pam\"]\n[pam]\nroot = \"/srv/%u\"\nmounts = [\"/a=store:nope/x\", \"/b=store:s3/../x\"]\n\
             [stores.s3]\nbucket = \"b\"\n",
        );
        assert!(e.contains("pam.mounts: store `nope` is not configured"), "{e}");
        assert!(e.contains("`..` in a store prefix"), "{e}");
    }

    #[test]
    fn chain_modules() {
        let e = error("[auth]\nchain = [\"anonymous\", \"userbd\"]\n");
        assert!(e.contains(":2:23: auth.chain: unknown module `userbd`"), "{e}");
        assert!(
            e.contains("valid modules: anonymous, userdb") && e.contains("did you mean `userdb`?"),
            "{e}"
        );
        let e = error("[auth]\nchain = [\"pam\"]\n");
        assert!(e.contains("PAM users need a root directory"), "{e}");
        let e =
            error("[auth]\nchain = [\"pam\"]\n[pam]\nroot = \"srv/%u\"\nhome = true\nmounts = [\"pub\"]\n");
        assert!(e.contains("pam.home: both `root` and `home` are set"), "{e}");
        assert!(e.contains("pam.mounts: write it as /VIRT=/REAL"), "{e}");
        let e = error("[auth]\nchain = [\"pam\"]\n[pam]\nroot = \"srv/%u\"\n");
        assert!(e.contains("pam.root: `srv/%u` is not an absolute path"), "{e}");
        let e = error("[auth]\nchain = []\n");
        assert!(e.contains(":2:1: auth.chain: no authentication module"), "{e}");
    }

    #[test]
    fn several_problems_are_all_reported() {
        let e = error("[limits]\nmax_line_length = 1\n[log]\nlevel = \"loud=x=y\"\n");
        assert!(e.contains(":2:1: limits.max_line_length") && e.contains(":4:1: log.level"), "{e}");
    }

    #[test]
    fn default_value_problem_has_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferroftpd.toml");
        std::fs::write(&path, "").unwrap();
        let e = load_file(&path).unwrap_err().0;
        assert!(
            e.contains("ferroftpd.toml: anonymous.root: directory") && e.contains("(default value)"),
            "{e}"
        );
    }

    #[test]
    fn parse_str_and_validate_name_origin() {
        let e = parse_str("[x]\n", Path::new("inline.toml")).unwrap_err().0;
        assert!(e.starts_with("inline.toml:1:2: unknown section [x]"), "{e}");
        let mut c = Config::default();
        c.server.listen.clear();
        c.anonymous.root = std::env::temp_dir();
        let e = validate(&mut c, Path::new("built-in")).unwrap_err().0;
        assert!(e.starts_with("built-in: server.listen: no address"), "{e}");
    }

    #[test]
    fn unreadable_file() {
        let e = load_file(Path::new("/no/such/ferroftpd.toml")).unwrap_err().0;
        assert!(e.starts_with("/no/such/ferroftpd.toml: cannot read"), "{e}");
    }

    /// Every key of the schema has an example, and every example parses.
    #[test]
    fn examples_cover_the_schema() {
        let sections = parse_unknown_field(toml::from_str::<Config>("zzz = 1").unwrap_err().message())
            .unwrap()
            .1
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        for section in &sections {
            assert!(example_for(section).is_some(), "add section `{section}` to EXAMPLES");
            // Tables of named sections: their keys are those of one entry.
            let table = if section == "stores" { "stores.NAME".to_string() } else { section.clone() };
            let err = toml::from_str::<Config>(&format!("[{table}]\nzzz = 1")).unwrap_err();
            for key in parse_unknown_field(err.message()).unwrap().1 {
                let path = format!("{table}.{key}");
                let (_, example) = example_for(&path).unwrap_or_else(|| panic!("add `{path}` to EXAMPLES"));
                toml::from_str::<Config>(&format!("[{table}]\n{example}"))
                    .unwrap_or_else(|e| panic!("example for {path} does not parse: {e}"));
            }
        }
    }

    #[test]
    fn span_tree_covers_dotted_inline_and_array_values() {
        let text = "limits.max_clients = 5\nlimits.max_line_length = 600\n[server]\nbanner = 'x'\n\
                    listen = [\"a\", \"b\"]\n[anonymous]\nx = { y = 1, z.w = 2 }\n\
                    [log]\nwhen = 1979-05-27T07:32:00Z\nf = 1.5\nb = true\n";
        let t: SpanTree = toml::from_str(text).unwrap();
        let at = |key: &str| {
            let e = t.entry(key).unwrap_or_else(|| panic!("{key} missing"));
            &text[e.key.start..e.value.end]
        };
        assert_eq!(at("limits.max_line_length"), "max_line_length = 600");
        assert_eq!(at("server.banner"), "banner = 'x'");
        assert_eq!(at("anonymous.x.y"), "y = 1");
        assert_eq!(at("anonymous.x.z.w"), "w = 2");
        assert_eq!(at("log.b"), "b = true");
        let Node::Array(items) = &t.entry("server.listen").unwrap().node else { panic!() };
        assert_eq!(&text[items[1].0.clone()], "\"b\"");
        assert_eq!(t.path_at(text.find("600").unwrap()), Some(("limits.max_line_length".into(), false)));
        assert_eq!(t.path_at(text.find("\"b\"").unwrap()), Some(("server.listen".into(), false)));
    }

    #[test]
    fn tls_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ftp-root")).unwrap();
        let pair = crate::tls::self_signed(&["localhost".to_string()], 1).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &pair.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &pair.key_pem).unwrap();
        let other = crate::tls::self_signed(&["localhost".to_string()], 1).unwrap();
        std::fs::write(dir.path().join("other-key.pem"), &other.key_pem).unwrap();
        let load = |body: &str| {
            let path = dir.path().join("ferroftpd.toml");
            std::fs::write(&path, body).unwrap();
            load_file(&path)
        };
        let good =
            "[server]\nlisten = [\"127.0.0.1:2121\"]\n[tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n";
        let c = load(&format!(
            "{good}implicit_listen = [\"127.0.0.1:990\"]\nexempt_listen = [\"127.0.0.1:2121\"]\n"
        ))
        .unwrap();
        assert!(c.tls.certificate.as_ref().unwrap().is_absolute(), "relative to the file");
        assert!(c.tls.require_session_reuse, "reuse required by default");

        let e = load("[tls]\ncertificate = \"cert.pem\"\nkey = \"other-key.pem\"\n").unwrap_err().0;
        assert!(e.contains(":2:1: tls.certificate:") && e.contains("does not belong"), "{e}");
        assert!(e.contains("ferroftpd cert self-signed"), "{e}");
        let e = load("[tls]\ncertificate = \"cert.pem\"\nkey = \"missing.pem\"\n").unwrap_err().0;
        assert!(e.contains(":3:1: tls.key:") && e.contains("missing.pem: cannot read"), "{e}");
        let e = load("[tls]\ncertificate = \"cert.pem\"\n").unwrap_err().0;
        assert!(e.contains(":2:1: tls.certificate: a certificate without its key"), "{e}");
        let e = load("[tls]\nrequire_login = true\nimplicit_listen = [\"127.0.0.1:990\"]\n").unwrap_err().0;
        assert!(e.contains(":2:1: tls.require_login: TLS is not configured"), "{e}");
        assert!(e.contains(":3:1: tls.implicit_listen: TLS is not configured"), "{e}");
        let e = load(&format!("{good}exempt_listen = [\"127.0.0.1:21\"]\n")).unwrap_err().0;
        assert!(e.contains("tls.exempt_listen: 127.0.0.1:21 is not in server.listen"), "{e}");
        let e = load(&format!("{good}implicit_listen = [\"127.0.0.1:2121\"]\n")).unwrap_err().0;
        assert!(e.contains("tls.implicit_listen: 127.0.0.1:2121 is also in server.listen"), "{e}");
    }

    #[test]
    fn rules_carry_their_line_and_resolve_relative_paths() {
        let c = parse(
            "[auth]\nchain = [\"anonymous\"]\n\n[[acl.rule]]\nwho = [\"*\"]\ntree = \"ftp-root\"\nallow = [\"read-only\"]\n\n\
             # the second\n[[acl.rule]]\nwho = [\"anonymous\"]\npattern = \"ftp-root/**/*.iso\"\ndeny = [\"read\"]\n",
        )
        .unwrap();
        let lines: Vec<_> = c.acl.rule.iter().map(|r| r.origin.as_ref().and_then(|o| o.line)).collect();
        assert_eq!(lines, [Some(4), Some(10)]);
        assert!(c.acl.rule[0].origin.as_ref().unwrap().file.ends_with("ferroftpd.toml"));
        let tree = c.acl.rule[0].tree.as_deref().unwrap();
        assert!(Path::new(tree).is_absolute() && tree.ends_with("ftp-root"), "{tree}");
        assert!(c.acl.rule[1].pattern.as_deref().unwrap().ends_with("ftp-root/**/*.iso"));
        // Inline array form too.
        let c = parse("[acl]\nrule = [\n  { who = [\"*\"], tree = \"/srv\", allow = [\"read\"] },\n  { who = [\"*\"], tree = \"/srv\", deny = [\"delete\"] },\n]\n").unwrap();
        let lines: Vec<_> = c.acl.rule.iter().map(|r| r.origin.as_ref().and_then(|o| o.line)).collect();
        assert_eq!(lines, [Some(3), Some(4)]);
    }

    #[test]
    fn bad_rules_point_at_the_key_and_item() {
        let e = error("[[acl.rule]]\nwho = [\"*\"]\ntree = \"/srv\"\nallow = [\"read\", \"raed\"]\n");
        assert!(e.contains("ferroftpd.toml:4:18: acl.rule.allow: unknown operation `raed`"), "{e}");
        assert!(e.contains("did you mean `read`?") && e.contains("valid operations: list, read,"), "{e}");

        let e = error("[[acl.rule]]\nwho = [\"*\"]\nallow = [\"read\"]\n\n[[acl.rule]]\nwho = [\"*\"]\npath = \"/srv/\"\ndeny = [\"read\"]\n");
        assert!(e.contains(":1:1: acl.rule.path: the rule names no place"), "{e}");
        assert!(
            e.contains(":7:1: acl.rule.path: `/srv/` ends with `/`") && e.contains("tree = \"/srv\""),
            "{e}"
        );

        let e = error("[[acl.rule]]\nwho = [\"*\"]\ntree = \"/srv\"\nalow = [\"read\"]\n");
        assert!(e.contains(":4:1: unknown key `alow` in [acl.rule]"), "{e}");
        assert!(e.contains("did you mean `allow`?"), "{e}");

        let e = error("[[acl.rule]]\nwho = \"alice\"\ntree = \"/srv\"\nallow = [\"read\"]\n");
        assert!(e.contains(":2:7:") && e.contains("who = [\"alice\", \"@staff\"]"), "{e}");

        let e = error("[permissions]\nmodules = [\"acl\", \"acount\"]\ndefault = \"deny\"\n");
        assert!(e.contains(":2:19: permissions.modules: unknown module `acount`"), "{e}");
        assert!(e.contains("did you mean `account`?"), "{e}");
        let e = error("[permissions]\ndefault = \"maybe\"\n");
        assert!(e.contains(":2:11:") && e.contains("default = \"allow\""), "{e}");
        parse("[permissions]\nmodules = [\"acl\"]\ndefault = \"deny\"\n").unwrap();
    }

    #[test]
    fn rules_built_in_code_name_their_origin() {
        let mut c = Config::default();
        c.anonymous.root = std::env::temp_dir();
        c.acl.rule.push(crate::config::RuleSpec { who: vec!["*".into()], ..Default::default() });
        let e = validate(&mut c, Path::new("built-in")).unwrap_err().0;
        assert!(e.contains("built-in: acl.rule.path: the rule names no place"), "{e}");
    }

    #[test]
    fn postgres_userdb_and_cluster() {
        let url = "postgres://ftp:secret@127.0.0.1:5432/ftpd";
        let c = parse(&format!("[auth]\nchain = [\"userdb\"]\n[userdb]\nurl = \"{url}\"\n")).unwrap();
        assert_eq!(c.userdb.url.as_deref(), Some(url));
        assert_eq!(c.cluster, None, "off unless the section is present");
        // [cluster] alone shares the user database's.
        let c = parse(&format!("[userdb]\nurl = \"{url}\"\n[cluster]\nnode = \"ftp-1\"\n")).unwrap();
        let cluster = c.cluster.clone().unwrap();
        assert_eq!(cluster.database(&c.userdb), Some(url));
        assert_eq!(cluster.refresh, 1);
        let e = error("[userdb]\nurl = \"mysql://x@h/db\"\n");
        assert!(e.contains("userdb.url") && e.contains("not a PostgreSQL URL"), "{e}");
        let e = error("[userdb]\nurl = \"postgres://x:hunter2@h:99999/db\"\n");
        assert!(e.contains("userdb.url") && e.contains("not a valid PostgreSQL URL"), "{e}");
        // The message hides the password (the excerpt below it quotes the file as it is).
        assert!(!e.lines().next().unwrap().contains("hunter2"), "the password must not be shown: {e}");
        let e = error(&format!("[userdb]\npath = \"users.db\"\nurl = \"{url}\"\n"));
        assert!(e.contains("userdb.path and userdb.url are both given"), "{e}");
        let e = error("[cluster]\n");
        assert!(e.contains("cluster.url") && e.contains("needs a PostgreSQL database"), "{e}");
        let e = error(&format!("[cluster]\nurl = \"{url}\"\nnode = \"a b\"\nrefresh = 0\n"));
        assert!(e.contains("cluster.node") && e.contains("cluster.refresh"), "{e}");
        let e = error("[cluster]\nurl = \"postgres://h/db\"\nnodes = 1\n");
        assert!(e.contains("nodes"), "{e}");
    }

    #[test]
    fn metrics_section() {
        assert_eq!(parse("").unwrap().metrics, None, "off unless the section is present");
        let c = parse("[metrics]\n").unwrap();
        assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9121".parse().unwrap());
        let c = parse("[metrics]\nlisten = \"[::1]:0\"\n").unwrap();
        assert_eq!(c.metrics.unwrap().listen, "[::1]:0".parse().unwrap());
        let c = parse("[metrics]\nlisten = \"0.0.0.0:9121\"\nallow_remote = true\n").unwrap();
        assert!(c.metrics.unwrap().allow_remote);

        let e = error("[metrics]\nlisten = \"0.0.0.0:9121\"\n");
        assert!(
            e.contains(":2:") && e.contains("metrics.listen") && e.contains("allow_remote = true"),
            "{e}"
        );
        let e = error("[server]\nlisten = [\"127.0.0.1:2121\"]\n[metrics]\nlisten = \"127.0.0.1:2121\"\n");
        assert!(e.contains(":4:") && e.contains("already a listener"), "{e}");
        let e = error("[metrics]\nlisten = 9121\n");
        assert!(e.contains("`metrics.listen` takes an address string"), "{e}");
        let e = error("[metrics]\nport = 9121\n");
        assert!(e.contains("unknown key `port` in [metrics]") && e.contains("listen, allow_remote"), "{e}");
    }

    #[test]
    fn closest_matches_typos_only() {
        assert_eq!(closest("max_client", &["max_clients", "banner"]), Some("max_clients"));
        assert_eq!(closest("lsiten", &["listen", "banner"]), Some("listen"));
        assert_eq!(closest("Listen", &["listen"]), Some("listen"));
        assert_eq!(closest("colour", &["listen", "banner"]), None);
    }
}
