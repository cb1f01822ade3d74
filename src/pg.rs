//! PostgreSQL plumbing shared by the user store ([`crate::auth::userdb_pg`])
//! and the cluster state ([`crate::server::cluster`]): connection settings
//! from a `postgres://` URL, and the schema with its migrations.
//!
//! The client is `tokio-postgres` (pure Rust, no libpq). The cluster state
//! uses it on the server's runtime; the blocking user store drives it on a
//! small runtime of its own, which works from tokio's blocking pool, from a
//! plain thread (the CLI) and from inside an async task alike, where
//! blocking on another runtime directly would panic.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// How long connecting may take before it counts as a failure.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `s` names a PostgreSQL database rather than a file.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// Connection settings parsed from a `postgres://` URL. Missing user,
/// password, database or host are taken from the standard `PGUSER`,
/// `PGPASSWORD`, `PGDATABASE`, `PGHOST` and `PGPORT` variables, so the
/// password need not be written in the configuration file.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    /// The URL without its password, for messages and logs.
    shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Target {
    /// Parses a `postgres://user:password@host:port/database?options` URL.
    pub fn parse(url: &str) -> Result<Target, String> {
        Target::parse_with_env(url, |name| std::env::var(name).ok())
    }

    fn parse_with_env(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<Target, String> {
        let shown = redact(url);
        if !is_url(url) {
            return Err(format!("`{shown}` is not a PostgreSQL URL (postgres://user@host:5432/database)"));
        }
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("`{shown}` is not a valid PostgreSQL URL: {e}"))?;
        if config.get_user().is_none() {
            if let Some(user) = env("PGUSER") {
                config.user(user);
            }
        }
        if config.get_password().is_none() {
            if let Some(password) = env("PGPASSWORD") {
                config.password(password);
            }
        }
        if config.get_dbname().is_none() {
            if let Some(db) = env("PGDATABASE") {
                config.dbname(db);
            }
        }
        if config.get_hosts().is_empty() {
            let host = env("PGHOST").unwrap_or_else(|| "localhost".to_string());
            config.host(&host);
        }
        if config.get_ports().is_empty() {
            if let Some(port) = env("PGPORT") {
                let port =
                    port.parse::<u16>().map_err(|_| format!("PGPORT `{port}` is not a port number"))?;
                config.port(port);
            }
        }
        if config.get_user().is_none() {
            return Err(format!(
                "`{shown}` names no user: write postgres://USER@host/database or set PGUSER"
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("ferroftpd");
        Ok(Target { config, shown })
    }

    /// Connects on the current runtime; the connection is driven by a task
    /// of that runtime and ends when the client is dropped.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        let shown = self.shown.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(database = %shown, error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    }
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else { return url.to_string() };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else { return url.to_string() };
    format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &rest[at..])
}

/// Schema steps for PostgreSQL; `schema_version` holds how many were
/// applied. Steps 1–3 are the SQLite user schema (`userdb::MIGRATIONS`)
/// in PostgreSQL's dialect (`"user"` is quoted: a reserved word there);
/// step 4 is the cluster state. Append new steps, never edit old ones.
pub const MIGRATIONS: &[&str] = &[
    // 1: users, their mounts and groups.
    r#"CREATE TABLE users (
        name          TEXT PRIMARY KEY NOT NULL,
        password_hash TEXT NOT NULL,
        enabled       BOOLEAN NOT NULL DEFAULT TRUE,
        root          TEXT NOT NULL,
        initial_dir   TEXT NOT NULL DEFAULT '/',
        read_only     BOOLEAN NOT NULL DEFAULT FALSE,
        max_sessions  BIGINT
    );
    CREATE TABLE user_mounts (
        "user"       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        position     BIGINT NOT NULL,
        virtual_path TEXT NOT NULL,
        real_path    TEXT NOT NULL,
        read_only    BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY ("user", virtual_path)
    );
    CREATE TABLE user_groups (
        "user"   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        position BIGINT NOT NULL,
        grp      TEXT NOT NULL,
        PRIMARY KEY ("user", grp)
    );"#,
    // 2: the users' own permission rules.
    r#"CREATE TABLE user_rules (
        "user"   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        position BIGINT NOT NULL,
        rule     TEXT NOT NULL,
        PRIMARY KEY ("user", position)
    );"#,
    // 3: bandwidth limits (bytes per second), quotas and allowed networks.
    r#"ALTER TABLE users ADD COLUMN download_rate BIGINT;
    ALTER TABLE users ADD COLUMN upload_rate BIGINT;
    ALTER TABLE users ADD COLUMN quota_bytes BIGINT;
    ALTER TABLE users ADD COLUMN quota_files BIGINT;
    CREATE TABLE user_allow_from (
        "user"   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        position BIGINT NOT NULL,
        network  TEXT NOT NULL,
        PRIMARY KEY ("user", position)
    );"#,
    // 4: the cluster's shared state: failed logins and bans by address key
    // (an IPv4 address or an IPv6 /64), the nodes' heartbeats and the
    // sessions each node has per user.
    r#"CREATE TABLE ban_failures (
        key TEXT NOT NULL,
        at  TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX ban_failures_key_at ON ban_failures (key, at);
    CREATE TABLE bans (
        key   TEXT PRIMARY KEY NOT NULL,
        until TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE cluster_nodes (
        node TEXT PRIMARY KEY NOT NULL,
        seen TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE cluster_sessions (
        node     TEXT NOT NULL REFERENCES cluster_nodes(node) ON DELETE CASCADE,
        "user"   TEXT NOT NULL,
        sessions BIGINT NOT NULL,
        PRIMARY KEY (node, "user")
    );"#,
];

/// Lock key serialising migrations between nodes starting at once.
const MIGRATION_LOCK: i64 = 0x6665_7272_6f66_7470; // "ferroftp"

/// Why the schema could not be brought up to date.
#[derive(Debug)]
pub enum MigrateError {
    Db(tokio_postgres::Error),
    /// The database has more steps than this build knows.
    TooNew {
        found: i64,
        known: i64,
    },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Db(e)
    }
}

/// Applies the missing [`MIGRATIONS`] in one transaction, under an
/// advisory lock so two nodes starting together do not both migrate.
pub async fn migrate(client: &mut Client) -> Result<(), MigrateError> {
    let known = MIGRATIONS.len() as i64;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)").await?;
    let found: i64 =
        tx.query_opt("SELECT version FROM schema_version", &[]).await?.map(|r| r.get(0)).unwrap_or(0);
    if found > known {
        return Err(MigrateError::TooNew { found, known });
    }
    if found < known {
        for step in &MIGRATIONS[found as usize..] {
            tx.batch_execute(step).await?;
        }
        tx.execute("DELETE FROM schema_version", &[]).await?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&known]).await?;
        tracing::info!(from = found, to = known, "PostgreSQL schema migrated");
    }
    tx.commit().await?;
    Ok(())
}

/// Which of the errors is worth showing: the server's message when there
/// is one (tokio-postgres's own `Display` says only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgresql://u:p@ss@h/db?x=1"), "postgresql://u:***@h/db?x=1");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn parses_urls_with_env_defaults() {
        let none = |_: &str| None;
        let t = Target::parse_with_env("postgres://ftp:pw@127.0.0.1:5433/ftpd", none).unwrap();
        assert_eq!(t.to_string(), "postgres://ftp:***@127.0.0.1:5433/ftpd");
        assert_eq!(t.config.get_ports(), [5433]);
        assert_eq!(t.config.get_password(), Some(&b"pw"[..]));
        let env = |k: &str| match k {
            "PGUSER" => Some("envuser".to_string()),
            "PGPASSWORD" => Some("envpw".to_string()),
            _ => None,
        };
        let t = Target::parse_with_env("postgres://db.example/ftpd", env).unwrap();
        assert_eq!(t.config.get_user(), Some("envuser"));
        assert_eq!(t.config.get_password(), Some(&b"envpw"[..]));
        assert!(Target::parse_with_env("postgres://db.example/ftpd", none).unwrap_err().contains("no user"));
        assert!(Target::parse_with_env("/var/lib/users.db", none).is_err());
        assert!(Target::parse_with_env("postgres://u@h:notaport/db", none).is_err());
    }
}
