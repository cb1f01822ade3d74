//! The `userdb` module: virtual users in an embedded SQLite database.
//!
//! The store sits behind the [`UserStore`] trait (blocking, object-safe) so a
//! PostgreSQL store can replace SQLite for multi-node deployments. The
//! [`UserDb`] authenticator calls it on tokio's blocking pool.
//!
//! The database is edited by `ferroftpd user …` while the server runs, so
//! nothing is cached: every operation opens its own connection (cheap next to
//! an argon2 verification) and a change applies at the next login. A fresh
//! connection per operation also means a replaced database file is picked up,
//! and a deleted one is an error instead of a silently empty user list. WAL
//! mode lets logins read while the CLI writes; a busy timeout covers the
//! short write locks.
//!
//! Schema: `users` plus child tables `user_mounts`, `user_groups`,
//! `user_rules` and `user_allow_from` (plain rows rather than JSON, so the database stays
//! readable with `sqlite3` and needs no extra dependency; a rule is one
//! line of TOML, the syntax of `[[acl.rule]]`). `schema_version` holds the number of
//! [`MIGRATIONS`] applied; opening a database runs the missing ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{password, Account, AccountLimits, AuthOutcome, Authenticator, LoginRequest};
use crate::vfs::{normalize, MountSpec};

/// The module's name in `auth.chain`.
pub const MODULE_NAME: &str = "userdb";

/// Longest user name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// How long an operation waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One virtual user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    /// argon2id PHC string (see [`password::hash_password`]).
    pub password_hash: String,
    /// A disabled user is rejected even with the right password.
    pub enabled: bool,
    /// Real directory shown as `/`; absolute.
    pub root: PathBuf,
    /// Normalised virtual directory the session starts in.
    pub initial_dir: String,
    pub mounts: Vec<MountSpec>,
    pub groups: Vec<String>,
    pub read_only: bool,
    /// Simultaneous sessions allowed (`None`: server default).
    pub max_sessions: Option<u32>,
    /// The user's own permission rules, each a TOML inline table as in
    /// `[[acl.rule]]` without `who` (see [`crate::perm::rules::compile_user_rule`]).
    pub rules: Vec<String>,
    /// Bandwidth limits, allowed addresses and quotas.
    pub shaping: AccountLimits,
}

impl UserRecord {
    /// A new enabled, writable user with `/` as initial directory and no
    /// mounts or groups.
    pub fn new(name: impl Into<String>, password_hash: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        UserRecord {
            name: name.into(),
            password_hash: password_hash.into(),
            enabled: true,
            root: root.into(),
            initial_dir: "/".to_string(),
            mounts: Vec::new(),
            groups: Vec::new(),
            read_only: false,
            max_sessions: None,
            rules: Vec::new(),
            shaping: AccountLimits::default(),
        }
    }

    /// Checks what the store must never hold: an odd name, a relative root
    /// (the server's working directory is not the CLI's), or virtual paths
    /// that are not normalised and absolute.
    pub fn validate(&self) -> Result<(), UserDbError> {
        validate_name(&self.name)?;
        let invalid = |msg: String| Err(UserDbError::Invalid(msg));
        if self.password_hash.is_empty() {
            return invalid(format!("user `{}` has no password hash", self.name));
        }
        let store_problem = |real: &Path| match crate::vfs::object::StoreRef::parse(real) {
            Some(Err(e)) => Some(e),
            _ => None,
        };
        if let Some(e) = store_problem(&self.root) {
            return invalid(format!("root {e}"));
        }
        if !crate::vfs::object::is_store_path(&self.root)
            && (!self.root.is_absolute() || self.root.to_str().is_none())
        {
            return invalid(format!(
                "root `{}` must be an absolute UTF-8 path or store:NAME/prefix",
                self.root.display()
            ));
        }
        check_virtual_path("initial directory", &self.initial_dir)?;
        for m in &self.mounts {
            check_virtual_path("mount point", &m.virtual_path)?;
            if m.virtual_path == "/" {
                return invalid("a mount cannot replace `/`; change the root instead".into());
            }
            if let Some(e) = store_problem(&m.real_path) {
                return invalid(format!("mount `{}`: {e}", m.virtual_path));
            }
            if !crate::vfs::object::is_store_path(&m.real_path)
                && (!m.real_path.is_absolute() || m.real_path.to_str().is_none())
            {
                return invalid(format!(
                    "mount `{}`: `{}` must be an absolute UTF-8 path",
                    m.virtual_path,
                    m.real_path.display()
                ));
            }
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if self.mounts[..i].iter().any(|o| o.virtual_path == m.virtual_path) {
                return invalid(format!("mount point `{}` appears twice", m.virtual_path));
            }
        }
        for g in &self.groups {
            if g.is_empty() || g.chars().any(|c| c.is_control() || c.is_whitespace() || c == ',') {
                return invalid(format!(
                    "group name {g:?} is empty or has spaces, commas or control characters"
                ));
            }
        }
        self.compiled_rules().map_err(UserDbError::Invalid)?;
        Ok(())
    }

    /// The user's rules, compiled; the first bad one is an error naming it.
    pub fn compiled_rules(&self) -> Result<Vec<crate::perm::rules::Rule>, String> {
        self.rules
            .iter()
            .enumerate()
            .map(|(i, text)| {
                crate::perm::rules::compile_user_rule(text, &self.name, i)
                    .map_err(|e| format!("rule #{} `{text}`: {e}", i + 1))
            })
            .collect()
    }

    /// The session-shaping part of the record. Fails only if a stored rule
    /// no longer compiles: the login must then be refused, since a rule
    /// dropped silently could be a deny.
    pub fn to_account(&self) -> Result<Account, UserDbError> {
        self.to_account_for(MODULE_NAME)
    }

    /// The same mapping for an account another module vouches for (a PAM
    /// user shaped by `[pam]`): one place turns a profile into a session.
    pub fn to_account_for(&self, module: &'static str) -> Result<Account, UserDbError> {
        let rules = self
            .compiled_rules()
            .map_err(|reason| UserDbError::Invalid(format!("user `{}`: {reason}", self.name)))?;
        Ok(Account {
            name: self.name.clone(),
            groups: self.groups.clone(),
            anonymous: false,
            root: self.root.clone(),
            mounts: self.mounts.clone(),
            initial_dir: self.initial_dir.clone(),
            read_only: self.read_only,
            upload_dirs: Vec::new(),
            max_sessions: self.max_sessions,
            module,
            rules,
            shaping: self.shaping.clone(),
        })
    }
}

/// Accepts 1–64 bytes without control characters, whitespace or `/`, the
/// characters that would make a name ambiguous in logs, `LIST` owners or
/// per-user paths.
pub fn validate_name(name: &str) -> Result<(), UserDbError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(UserDbError::Invalid(format!("user name must be 1 to {MAX_NAME_LEN} bytes long")));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == '\\') {
        return Err(UserDbError::Invalid(format!(
            "user name {name:?} must not contain spaces, slashes or control characters"
        )));
    }
    Ok(())
}

fn check_virtual_path(what: &str, path: &str) -> Result<(), UserDbError> {
    match normalize("/", path) {
        Ok(n) if path.starts_with('/') && n == path => Ok(()),
        Ok(n) if path.starts_with('/') => {
            Err(UserDbError::Invalid(format!("{what} `{path}` is not normalised (write `{n}`)")))
        }
        _ => Err(UserDbError::Invalid(format!(
            "{what} `{path}` must be an absolute virtual path such as `/pub`"
        ))),
    }
}

/// A user-store failure.
#[derive(Debug, thiserror::Error)]
pub enum UserDbError {
    #[error("user database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("user database {path} does not exist")]
    Missing { path: PathBuf },
    #[error("user database {path} has schema version {found}; this ferroftpd knows up to {known}: upgrade ferroftpd")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("user database {path}: user `{user}` is damaged: {reason}")]
    Corrupt { path: PathBuf, user: String, reason: String },
    #[error("user database {target}: {message}")]
    Postgres { target: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl From<std::io::Error> for UserDbError {
    fn from(e: std::io::Error) -> Self {
        UserDbError::Invalid(format!("user database: {e}"))
    }
}

/// Where virtual users are kept. Blocking: async callers run it in
/// `spawn_blocking`. Implementations must not cache across calls, so edits
/// made by another process apply at the next login.
pub trait UserStore: Send + Sync + std::fmt::Debug {
    fn get(&self, name: &str) -> Result<Option<UserRecord>, UserDbError>;
    /// All users, sorted by name.
    fn list(&self) -> Result<Vec<UserRecord>, UserDbError>;
    /// Inserts the user or replaces the one with the same name.
    fn put(&self, record: &UserRecord) -> Result<(), UserDbError>;
    /// Removes the user; `false` if there was none.
    fn delete(&self, name: &str) -> Result<bool, UserDbError>;
}

/// Schema steps; `schema_version` = how many have been applied. Append new
/// steps, never edit old ones.
pub const MIGRATIONS: &[&str] = &[
    // 1: users, their mounts and groups.
    "CREATE TABLE users (
        name          TEXT PRIMARY KEY NOT NULL,
        password_hash TEXT NOT NULL,
        enabled       INTEGER NOT NULL DEFAULT 1,
        root          TEXT NOT NULL,
        initial_dir   TEXT NOT NULL DEFAULT '/',
        read_only     INTEGER NOT NULL DEFAULT 0,
        max_sessions  INTEGER
    );
    CREATE TABLE user_mounts (
        user         TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        virtual_path TEXT NOT NULL,
        real_path    TEXT NOT NULL,
        read_only    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user, virtual_path)
    );
    CREATE TABLE user_groups (
        user     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        grp      TEXT NOT NULL,
        PRIMARY KEY (user, grp)
    );",
    // 2: the users' own permission rules.
    "CREATE TABLE user_rules (
        user     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        rule     TEXT NOT NULL,
        PRIMARY KEY (user, position)
    );",
    // 3: bandwidth limits (bytes per second), quotas and allowed networks.
    "ALTER TABLE users ADD COLUMN download_rate INTEGER;
    ALTER TABLE users ADD COLUMN upload_rate INTEGER;
    ALTER TABLE users ADD COLUMN quota_bytes INTEGER;
    ALTER TABLE users ADD COLUMN quota_files INTEGER;
    CREATE TABLE user_allow_from (
        user     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        network  TEXT NOT NULL,
        PRIMARY KEY (user, position)
    );",
];

/// The SQLite implementation of [`UserStore`].
#[derive(Debug, Clone)]
pub struct SqliteUserStore {
    path: PathBuf,
}

impl SqliteUserStore {
    /// Opens the database at `path`, creating it and its schema if needed and
    /// running pending migrations. The parent directory must exist.
    pub fn open(path: impl Into<PathBuf>) -> Result<SqliteUserStore, UserDbError> {
        let store = SqliteUserStore { path: path.into() };
        let mut conn = Connection::open(&store.path).map_err(|e| store.err(e))?;
        store.configure(&conn)?;
        // WAL is a property of the file: set once here, kept by later connections.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| store.err(e))?;
        store.migrate(&mut conn)?;
        Ok(store)
    }

    /// Opens an existing database without creating it (for commands that
    /// only read or change users: a typo in `--db` should not make a file).
    pub fn open_existing(path: impl Into<PathBuf>) -> Result<SqliteUserStore, UserDbError> {
        let path = path.into();
        if !path.is_file() {
            return Err(UserDbError::Missing { path });
        }
        SqliteUserStore::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> UserDbError {
        UserDbError::Sqlite { path: self.path.clone(), source }
    }

    fn configure(&self, conn: &Connection) -> Result<(), UserDbError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| self.err(e))?;
        Ok(())
    }

    fn migrate(&self, conn: &mut Connection) -> Result<(), UserDbError> {
        let known = MIGRATIONS.len() as i64;
        // IMMEDIATE: two processes opening a new file at once must not both migrate.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", [])
            .map_err(|e| self.err(e))?;
        let found: Option<i64> = tx
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let found = found.unwrap_or(0);
        if found > known {
            return Err(UserDbError::TooNew { path: self.path.clone(), found, known });
        }
        if found < known {
            for step in &MIGRATIONS[found as usize..] {
                tx.execute_batch(step).map_err(|e| self.err(e))?;
            }
            tx.execute("DELETE FROM schema_version", []).map_err(|e| self.err(e))?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [known])
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// A connection for one operation; never creates the file.
    fn connect(&self) -> Result<Connection, UserDbError> {
        if !self.path.exists() {
            return Err(UserDbError::Missing { path: self.path.clone() });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| self.err(e))?;
        self.configure(&conn)?;
        Ok(conn)
    }

    fn read_user(&self, conn: &Connection, row: RawUser) -> Result<UserRecord, UserDbError> {
        let mut stmt = conn
            .prepare_cached("SELECT network FROM user_allow_from WHERE user = ?1 ORDER BY position")
            .map_err(|e| self.err(e))?;
        let networks = stmt
            .query_map([&row.name], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT virtual_path, real_path, read_only FROM user_mounts WHERE user = ?1 ORDER BY position",
            )
            .map_err(|e| self.err(e))?;
        let mounts = stmt
            .query_map([&row.name], |r| {
                Ok(MountSpec {
                    virtual_path: r.get(0)?,
                    real_path: PathBuf::from(r.get::<_, String>(1)?),
                    read_only: r.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        let mut stmt = conn
            .prepare_cached("SELECT grp FROM user_groups WHERE user = ?1 ORDER BY position")
            .map_err(|e| self.err(e))?;
        let groups = stmt
            .query_map([&row.name], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        let mut stmt = conn
            .prepare_cached("SELECT rule FROM user_rules WHERE user = ?1 ORDER BY position")
            .map_err(|e| self.err(e))?;
        let rules = stmt
            .query_map([&row.name], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        row.into_record(&self.path, Children { networks, mounts, groups, rules })
    }
}

/// A user's child rows, as read.
pub(crate) struct Children {
    pub networks: Vec<String>,
    pub mounts: Vec<MountSpec>,
    pub groups: Vec<String>,
    pub rules: Vec<String>,
}

impl RawUser {
    /// The record, checking what the database's types cannot (`where`
    /// names the database in errors).
    pub(crate) fn into_record(self, location: &Path, children: Children) -> Result<UserRecord, UserDbError> {
        let row = self;
        let corrupt = |reason: String| UserDbError::Corrupt {
            path: location.to_path_buf(),
            user: row.name.clone(),
            reason,
        };
        let max_sessions = match row.max_sessions {
            None => None,
            Some(n) => Some(u32::try_from(n).map_err(|_| corrupt(format!("max_sessions {n} out of range")))?),
        };
        let unsigned = |what: &str, v: Option<i64>| -> Result<Option<u64>, UserDbError> {
            v.map(|n| u64::try_from(n).map_err(|_| corrupt(format!("{what} {n} out of range")))).transpose()
        };
        let download_rate = unsigned("download_rate", row.download_rate)?.map(crate::config::Rate);
        let upload_rate = unsigned("upload_rate", row.upload_rate)?.map(crate::config::Rate);
        let quota_bytes = unsigned("quota_bytes", row.quota_bytes)?;
        let quota_files = unsigned("quota_files", row.quota_files)?;
        let allow_from = children
            .networks
            .iter()
            .map(|n| n.parse::<crate::config::Cidr>().map_err(|e| corrupt(format!("allow_from: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UserRecord {
            name: row.name,
            password_hash: row.password_hash,
            enabled: row.enabled,
            root: PathBuf::from(row.root),
            initial_dir: row.initial_dir,
            mounts: children.mounts,
            groups: children.groups,
            read_only: row.read_only,
            max_sessions,
            rules: children.rules,
            shaping: AccountLimits { download_rate, upload_rate, allow_from, quota_bytes, quota_files },
        })
    }
}

/// A `users` row before its children are read.
pub(crate) struct RawUser {
    pub name: String,
    pub password_hash: String,
    pub enabled: bool,
    pub root: String,
    pub initial_dir: String,
    pub read_only: bool,
    pub max_sessions: Option<i64>,
    pub download_rate: Option<i64>,
    pub upload_rate: Option<i64>,
    pub quota_bytes: Option<i64>,
    pub quota_files: Option<i64>,
}

pub(crate) const USER_COLUMNS: &str =
    "name, password_hash, enabled, root, initial_dir, read_only, max_sessions, \
                            download_rate, upload_rate, quota_bytes, quota_files";

fn raw_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok(RawUser {
        name: r.get(0)?,
        password_hash: r.get(1)?,
        enabled: r.get(2)?,
        root: r.get(3)?,
        initial_dir: r.get(4)?,
        read_only: r.get(5)?,
        max_sessions: r.get(6)?,
        download_rate: r.get(7)?,
        upload_rate: r.get(8)?,
        quota_bytes: r.get(9)?,
        quota_files: r.get(10)?,
    })
}

/// SQLite integers are signed; larger values (absurd as limits) are capped.
pub(crate) fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Paths are checked to be UTF-8 by [`UserRecord::validate`] before storing.
pub(crate) fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl UserStore for SqliteUserStore {
    fn get(&self, name: &str) -> Result<Option<UserRecord>, UserDbError> {
        let conn = self.connect()?;
        let row = conn
            .query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"), [name], raw_user)
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|row| self.read_user(&conn, row)).transpose()
    }

    fn list(&self) -> Result<Vec<UserRecord>, UserDbError> {
        let conn = self.connect()?;
        let mut stmt = conn
            .prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], raw_user)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        rows.into_iter().map(|row| self.read_user(&conn, row)).collect()
    }

    fn put(&self, record: &UserRecord) -> Result<(), UserDbError> {
        record.validate()?;
        let mut conn = self.connect()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        tx.execute(
            &format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash,
                   enabled = excluded.enabled, root = excluded.root, initial_dir = excluded.initial_dir,
                   read_only = excluded.read_only, max_sessions = excluded.max_sessions,
                   download_rate = excluded.download_rate, upload_rate = excluded.upload_rate,
                   quota_bytes = excluded.quota_bytes, quota_files = excluded.quota_files"
            ),
            params![
                record.name,
                record.password_hash,
                record.enabled,
                path_text(&record.root),
                record.initial_dir,
                record.read_only,
                record.max_sessions,
                record.shaping.download_rate.map(|r| sql_int(r.0)),
                record.shaping.upload_rate.map(|r| sql_int(r.0)),
                record.shaping.quota_bytes.map(sql_int),
                record.shaping.quota_files.map(sql_int),
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM user_mounts WHERE user = ?1", [&record.name]).map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM user_groups WHERE user = ?1", [&record.name]).map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM user_rules WHERE user = ?1", [&record.name]).map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM user_allow_from WHERE user = ?1", [&record.name]).map_err(|e| self.err(e))?;
        for (i, net) in record.shaping.allow_from.iter().enumerate() {
            tx.execute(
                "INSERT INTO user_allow_from (user, position, network) VALUES (?1, ?2, ?3)",
                params![record.name, i as i64, net.to_string()],
            )
            .map_err(|e| self.err(e))?;
        }
        for (i, m) in record.mounts.iter().enumerate() {
            tx.execute(
                "INSERT INTO user_mounts (user, position, virtual_path, real_path, read_only)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.name, i as i64, m.virtual_path, path_text(&m.real_path), m.read_only],
            )
            .map_err(|e| self.err(e))?;
        }
        for (i, g) in record.groups.iter().enumerate() {
            tx.execute(
                "INSERT OR IGNORE INTO user_groups (user, position, grp) VALUES (?1, ?2, ?3)",
                params![record.name, i as i64, g],
            )
            .map_err(|e| self.err(e))?;
        }
        for (i, rule) in record.rules.iter().enumerate() {
            tx.execute(
                "INSERT INTO user_rules (user, position, rule) VALUES (?1, ?2, ?3)",
                params![record.name, i as i64, rule],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn delete(&self, name: &str) -> Result<bool, UserDbError> {
        let conn = self.connect()?;
        let n = conn.execute("DELETE FROM users WHERE name = ?1", [name]).map_err(|e| self.err(e))?;
        Ok(n > 0)
    }
}

/// Where the user database is: a SQLite file or a PostgreSQL URL
/// (`[userdb] url`, or a `--db` argument starting with `postgres://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Postgres(String),
}

impl Location {
    /// `userdb.url` when set, else `userdb.path`.
    pub fn from_config(config: &crate::config::UserDbConfig) -> Location {
        match &config.url {
            Some(url) => Location::Postgres(url.clone()),
            None => Location::File(config.path.clone()),
        }
    }

    /// A `--db` argument: a `postgres://` URL or a file path.
    pub fn from_arg(arg: &Path) -> Location {
        match arg.to_str() {
            Some(s) if crate::pg::is_url(s) => Location::Postgres(s.to_string()),
            _ => Location::File(arg.to_path_buf()),
        }
    }

    /// Opens the store, creating a SQLite file if missing; migrations run.
    pub fn open(&self) -> Result<Arc<dyn UserStore>, UserDbError> {
        Ok(match self {
            Location::File(path) => Arc::new(SqliteUserStore::open(path)?),
            Location::Postgres(url) => Arc::new(super::userdb_pg::PgUserStore::open(url)?),
        })
    }

    /// Opens the store without creating a SQLite file (a PostgreSQL
    /// database must exist already; its tables are created if missing).
    pub fn open_existing(&self) -> Result<Arc<dyn UserStore>, UserDbError> {
        Ok(match self {
            Location::File(path) => Arc::new(SqliteUserStore::open_existing(path)?),
            Location::Postgres(url) => Arc::new(super::userdb_pg::PgUserStore::open(url)?),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&crate::pg::redact(url)),
        }
    }
}

/// The `userdb` authentication module.
#[derive(Debug, Clone)]
pub struct UserDb {
    store: Arc<dyn UserStore>,
}

impl UserDb {
    pub fn new(store: Arc<dyn UserStore>) -> UserDb {
        UserDb { store }
    }

    /// The module over a SQLite database (created if missing).
    pub fn open_sqlite(path: impl Into<PathBuf>) -> Result<UserDb, UserDbError> {
        Ok(UserDb::new(Arc::new(SqliteUserStore::open(path)?)))
    }

    /// The module over the configured database (`userdb.url` or `userdb.path`).
    pub fn open(location: &Location) -> Result<UserDb, UserDbError> {
        Ok(UserDb::new(location.open()?))
    }

    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }
}

/// When the database cannot answer, reject rather than pass the login on: a
/// later module (pam) must not log in a user this database might own.
async fn fail_closed(user: &str, error: String) -> AuthOutcome {
    tracing::error!(user, "userdb lookup failed: {error}");
    password::dummy_verify().await;
    AuthOutcome::Rejected
}

#[async_trait]
impl Authenticator for UserDb {
    fn name(&self) -> &'static str {
        MODULE_NAME
    }

    async fn authenticate(&self, request: &LoginRequest<'_>) -> AuthOutcome {
        let store = Arc::clone(&self.store);
        let user = request.user.to_owned();
        // Compiling the user's rules canonicalises paths: blocking too.
        let found = tokio::task::spawn_blocking(move || {
            store.get(&user).map(|r| r.map(|record| (record.to_account(), record)))
        })
        .await;
        let (account, record) = match found {
            Ok(Ok(Some(pair))) => pair,
            Ok(Ok(None)) => return AuthOutcome::NotMine,
            Ok(Err(e)) => return fail_closed(request.user, e.to_string()).await,
            Err(e) => return fail_closed(request.user, e.to_string()).await,
        };
        // Verify even for a disabled account, so timing does not tell.
        let password_ok = password::verify(request.password, &record.password_hash).await;
        if !password_ok {
            return AuthOutcome::Rejected;
        }
        if !record.enabled {
            tracing::info!(user = request.user, "login refused: account disabled");
            return AuthOutcome::Rejected;
        }
        match account {
            Ok(account) => AuthOutcome::Accepted(std::sync::Arc::new(account)),
            Err(e) => {
                tracing::error!(user = request.user, "login refused: {e}");
                AuthOutcome::Rejected
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn store(dir: &tempfile::TempDir) -> SqliteUserStore {
        SqliteUserStore::open(dir.path().join("users.db")).unwrap()
    }

    fn sample(dir: &Path, name: &str, password: &str) -> UserRecord {
        let mut r = UserRecord::new(name, password::hash_password(password).unwrap(), dir);
        r.initial_dir = "/home".into();
        r.mounts = vec![
            MountSpec { virtual_path: "/pub".into(), real_path: dir.join("pub"), read_only: true },
            MountSpec { virtual_path: "/a/b".into(), real_path: dir.join("b"), read_only: false },
        ];
        r.groups = vec!["staff".into(), "admins".into()];
        r.max_sessions = Some(3);
        r.shaping = AccountLimits {
            download_rate: Some(crate::config::Rate(2 << 20)),
            upload_rate: Some(crate::config::Rate(1000)),
            allow_from: vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
            quota_bytes: Some(1 << 30),
            quota_files: Some(100),
        };
        r.rules = vec![
            format!(r#"{{ tree = "{}", deny = ["delete"] }}"#, dir.join("pub").display()),
            format!(r#"{{ pattern = "{}/*.iso", allow = ["read-only"] }}"#, dir.display()),
        ];
        r
    }

    fn login<'a>(user: &'a str, password: &'a str) -> LoginRequest<'a> {
        LoginRequest { user, password, peer: IpAddr::V4(Ipv4Addr::LOCALHOST) }
    }

    #[test]
    fn crud_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        assert_eq!(s.list().unwrap(), vec![]);
        assert_eq!(s.get("bob").unwrap(), None);

        let mut bob = UserRecord::new("bob", "$argon2id$fake", dir.path());
        bob.groups = vec!["b".into()];
        let alice = sample(dir.path(), "alice", "pw");
        s.put(&bob).unwrap();
        s.put(&alice).unwrap();
        assert_eq!(s.get("alice").unwrap().as_ref(), Some(&alice));
        let names: Vec<_> = s.list().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["alice", "bob"]);

        // put replaces, children included.
        let mut alice2 = alice.clone();
        alice2.enabled = false;
        alice2.mounts.truncate(1);
        alice2.groups = vec!["x".into()];
        alice2.max_sessions = None;
        alice2.shaping.allow_from.truncate(1);
        alice2.shaping.quota_files = None;
        alice2.rules.remove(0);
        s.put(&alice2).unwrap();
        assert_eq!(s.get("alice").unwrap(), Some(alice2));

        assert!(s.delete("alice").unwrap());
        assert!(!s.delete("alice").unwrap());
        assert_eq!(s.get("alice").unwrap(), None);
        assert_eq!(s.list().unwrap(), vec![bob]);
        // Cascade removed the children too.
        let conn = Connection::open(s.path()).unwrap();
        for table in ["user_mounts", "user_rules", "user_allow_from"] {
            let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap();
            assert_eq!(n, 0, "{table}");
        }
    }

    #[test]
    fn reopen_keeps_data_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.put(&UserRecord::new("bob", "$h", dir.path())).unwrap();
        let s2 = SqliteUserStore::open(s.path()).unwrap();
        assert_eq!(s2.list().unwrap().len(), 1);
        let conn = Connection::open(s.path()).unwrap();
        let v: i64 = conn.query_row("SELECT version FROM schema_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn version_1_database_gains_user_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (1);
                 INSERT INTO users (name, password_hash, root) VALUES ('old', '$h', '/srv');",
            )
            .unwrap();
        }
        let s = SqliteUserStore::open(&path).unwrap();
        let old = s.get("old").unwrap().unwrap();
        assert!(old.rules.is_empty());
        let mut with_rule = old.clone();
        with_rule.rules = vec![r#"{ tree = "/srv", deny = ["delete"] }"#.into()];
        s.put(&with_rule).unwrap();
        assert_eq!(s.get("old").unwrap(), Some(with_rule));
    }

    #[test]
    fn locations_from_arguments_and_configuration() {
        let url = "postgres://ftp:pw@db.example/ftpd";
        assert_eq!(Location::from_arg(Path::new(url)), Location::Postgres(url.into()));
        assert_eq!(Location::from_arg(Path::new("users.db")), Location::File("users.db".into()));
        assert_eq!(Location::Postgres(url.into()).to_string(), "postgres://ftp:***@db.example/ftpd");
        let mut c = crate::config::UserDbConfig::default();
        assert_eq!(Location::from_config(&c), Location::File(c.path.clone()));
        c.url = Some(url.into());
        assert_eq!(Location::from_config(&c), Location::Postgres(url.into()));
        // A bad URL is an input error, not a panic or a file of that name.
        let bad = Location::Postgres("postgres://u@h:notaport/db".into()).open().unwrap_err();
        assert!(matches!(bad, UserDbError::Invalid(_)), "{bad}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        Connection::open(s.path()).unwrap().execute("UPDATE schema_version SET version = 99", []).unwrap();
        let err = SqliteUserStore::open(s.path()).unwrap_err();
        assert!(matches!(err, UserDbError::TooNew { found: 99, .. }), "{err}");
    }

    #[test]
    fn missing_file_is_an_error_not_a_new_database() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        std::fs::remove_file(s.path()).unwrap();
        assert!(matches!(s.get("x"), Err(UserDbError::Missing { .. })));
        assert!(!s.path().exists());
        assert!(matches!(
            SqliteUserStore::open_existing(dir.path().join("nope.db")),
            Err(UserDbError::Missing { .. })
        ));
    }

    #[test]
    fn invalid_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let ok = UserRecord::new("bob", "$h", dir.path());
        type Change = Box<dyn Fn(&mut UserRecord)>;
        let cases: Vec<Change> = vec![
            Box::new(|r| r.name = String::new()),
            Box::new(|r| r.name = "a b".into()),
            Box::new(|r| r.name = "a/b".into()),
            Box::new(|r| r.root = "relative".into()),
            Box::new(|r| r.initial_dir = "home".into()),
            Box::new(|r| r.initial_dir = "/a/../b".into()),
            Box::new(|r| {
                r.mounts =
                    vec![MountSpec { virtual_path: "/".into(), real_path: "/tmp".into(), read_only: false }]
            }),
            Box::new(|r| {
                r.mounts =
                    vec![MountSpec { virtual_path: "/x".into(), real_path: "tmp".into(), read_only: false }]
            }),
            Box::new(|r| r.groups = vec!["a b".into()]),
            Box::new(|r| r.rules = vec![r#"{ tree = "/srv", allow = ["raed"] }"#.into()]),
            Box::new(|r| r.rules = vec![r#"{ who = ["*"], tree = "/srv", allow = ["read"] }"#.into()]),
            Box::new(|r| r.rules = vec!["nonsense".into()]),
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut r = ok.clone();
            change(&mut r);
            assert!(matches!(s.put(&r), Err(UserDbError::Invalid(_))), "case {i}");
        }
        assert_eq!(s.list().unwrap(), vec![]);
    }

    #[tokio::test]
    async fn authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let alice = sample(dir.path(), "alice", "right");
        s.put(&alice).unwrap();
        let mut off = UserRecord::new("off", password::hash_password("right").unwrap(), dir.path());
        off.enabled = false;
        s.put(&off).unwrap();
        let db = UserDb::new(Arc::new(s.clone()));
        assert_eq!(db.name(), "userdb");

        match db.authenticate(&login("alice", "right")).await {
            AuthOutcome::Accepted(acc) => {
                assert_eq!(acc.name, "alice");
                assert_eq!(acc.module, "userdb");
                assert!(!acc.anonymous);
                assert_eq!(acc.root, dir.path());
                assert_eq!(acc.initial_dir, "/home");
                assert_eq!(acc.mounts, alice.mounts);
                assert_eq!(acc.groups, alice.groups);
                assert_eq!(acc.max_sessions, Some(3));
                assert!(acc.upload_dirs.is_empty());
                assert_eq!(acc.rules.len(), 2);
                assert_eq!(acc.shaping, alice.shaping);
                assert_eq!(acc.rules[1].origin.to_string(), "`alice`'s own rule #2");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(db.authenticate(&login("alice", "wrong")).await, AuthOutcome::Rejected);
        assert_eq!(db.authenticate(&login("off", "right")).await, AuthOutcome::Rejected);
        assert_eq!(db.authenticate(&login("nobody", "x")).await, AuthOutcome::NotMine);
        // A stored rule that no longer compiles refuses the login (fails closed).
        Connection::open(s.path())
            .unwrap()
            .execute(
                "UPDATE user_rules SET rule = '{ tree = \"/x\", deny = [\"gone\"] }' WHERE user = 'alice'",
                [],
            )
            .unwrap();
        assert_eq!(db.authenticate(&login("alice", "right")).await, AuthOutcome::Rejected);
        // A change by another process applies at the next login.
        s.delete("alice").unwrap();
        assert_eq!(db.authenticate(&login("alice", "right")).await, AuthOutcome::NotMine);
        // A database that vanished fails closed.
        std::fs::remove_file(s.path()).unwrap();
        assert_eq!(db.authenticate(&login("alice", "right")).await, AuthOutcome::Rejected);
    }
}
