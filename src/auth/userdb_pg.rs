//! The PostgreSQL implementation of [`UserStore`]: the same users, child
//! tables and rules as the SQLite store, in a database several nodes share,
//! so a user added, changed or removed from any node (or with
//! `ferroftpd user … --db postgres://…`) applies everywhere at the next
//! login. No data is cached: each operation reads or writes the database
//! (writes in one transaction). Connections are kept between operations (a
//! few idle ones) and driven by a small runtime of the store's own, so the
//! blocking [`UserStore`] calls work from any context.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::{Client, GenericClient, Row};

use super::userdb::{
    path_text, sql_int, Children, RawUser, UserDbError, UserRecord, UserStore, USER_COLUMNS,
};
use crate::pg::{self, MigrateError, Target};
use crate::vfs::MountSpec;

/// Virtual users in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgUserStore {
    inner: Arc<Inner>,
}

/// Most idle connections kept for the next operations.
const MAX_IDLE: usize = 4;

/// Most connections open at once (operations beyond wait their turn), so a
/// storm of logins on many nodes stays within the database's
/// `max_connections`.
const MAX_CONNECTIONS: usize = 8;

/// Longest an operation may take, connecting included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Inner {
    target: Target,
    /// Connections between operations: each one serves one operation at
    /// a time (writes are transactions).
    idle: Mutex<Vec<Client>>,
    /// One permit per open connection.
    permits: tokio::sync::Semaphore,
    /// Drives the connections; its own, so the store works from any
    /// context (see [`PgUserStore::call`]).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Allowed anywhere, unlike dropping a runtime inside another.
            runtime.shutdown_background();
        }
    }
}

/// One operation, sent to the store's runtime.
enum Op {
    Get(String),
    List,
    Put(Box<UserRecord>),
    Delete(String),
}

enum Answer {
    User(Option<Box<UserRecord>>),
    Users(Vec<UserRecord>),
    Done,
    Deleted(bool),
}

impl PgUserStore {
    /// Starts the store's runtime, connects and runs pending migrations.
    pub fn open(url: &str) -> Result<PgUserStore, UserDbError> {
        let target = Target::parse(url).map_err(UserDbError::Invalid)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferroftpd-pg")
            .enable_all()
            .build()?;
        let inner = Arc::new(Inner {
            target,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(MAX_CONNECTIONS),
            runtime: Some(runtime),
        });
        let store = PgUserStore { inner };
        let migrating = store.inner.clone();
        store.spawn_and_wait(async move {
            let mut client = migrating.connect().await?;
            pg::migrate(&mut client).await.map_err(|e| match e {
                MigrateError::Db(e) => migrating.err(&e),
                MigrateError::TooNew { found, known } => {
                    UserDbError::TooNew { path: PathBuf::from(migrating.target.to_string()), found, known }
                }
            })?;
            migrating.give_back(client);
            Ok(())
        })?;
        Ok(store)
    }

    /// Runs `fut` on the store's runtime and waits for it: a blocking call
    /// that works on tokio's blocking pool, on a plain thread and inside
    /// an async task alike (where it blocks that worker, as SQLite does).
    fn spawn_and_wait<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, UserDbError>> + Send + 'static,
    ) -> Result<T, UserDbError> {
        let Some(runtime) = &self.inner.runtime else {
            return Err(UserDbError::Invalid("user database: store closed".into()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shown = self.inner.target.to_string();
        runtime.spawn(async move {
            let result = match tokio::time::timeout(OPERATION_TIMEOUT, fut).await {
                Ok(result) => result,
                Err(_) => Err(UserDbError::Postgres { target: shown, message: "no answer in time".into() }),
            };
            let _ = tx.send(result);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(UserDbError::Postgres {
                target: self.inner.target.to_string(),
                message: "operation lost".into(),
            })
        })
    }

    fn call(&self, op: Op) -> Result<Answer, UserDbError> {
        let inner = self.inner.clone();
        self.spawn_and_wait(async move { inner.execute(op).await })
    }

    /// The database, without its password.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }
}

impl Inner {
    fn err(&self, e: &tokio_postgres::Error) -> UserDbError {
        UserDbError::Postgres { target: self.target.to_string(), message: pg::describe(e) }
    }

    async fn connect(&self) -> Result<Client, UserDbError> {
        self.target.connect().await.map_err(|e| self.err(&e))
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a healthy connection for the next operation.
    fn give_back(&self, client: Client) {
        let mut idle = self.idle();
        if !client.is_closed() && idle.len() < MAX_IDLE {
            idle.push(client);
        }
    }

    /// Runs one operation on an idle connection or a new one. A kept
    /// connection the server has closed meanwhile (a restart of the
    /// database) fails; the operation is then tried once more on a new one.
    async fn execute(&self, op: Op) -> Result<Answer, UserDbError> {
        // Idle connections hold no permit: at most MAX_CONNECTIONS are in
        // use, plus MAX_IDLE waiting.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| UserDbError::Invalid("user database: store closed".into()))?;
        let pooled = self.idle().pop();
        let retry = pooled.is_some();
        let mut client = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        let mut result = self.run(&mut client, &op).await;
        if result.is_err() && client.is_closed() && retry {
            client = self.connect().await?;
            result = self.run(&mut client, &op).await;
        }
        self.give_back(client);
        result
    }

    async fn run(&self, client: &mut Client, op: &Op) -> Result<Answer, UserDbError> {
        Ok(match op {
            Op::Get(name) => Answer::User(self.get_async(client, name).await?.map(Box::new)),
            Op::List => Answer::Users(self.list_async(client).await?),
            Op::Put(record) => {
                self.put_async(client, record).await?;
                Answer::Done
            }
            Op::Delete(name) => Answer::Deleted(self.delete_async(client, name).await?),
        })
    }

    async fn strings(
        &self,
        c: &impl GenericClient,
        sql: &str,
        name: &str,
    ) -> Result<Vec<String>, UserDbError> {
        let rows = c.query(sql, &[&name]).await.map_err(|e| self.err(&e))?;
        rows.iter().map(|r| r.try_get(0).map_err(|e| self.err(&e))).collect()
    }

    async fn read_user(&self, c: &impl GenericClient, row: &Row) -> Result<UserRecord, UserDbError> {
        let raw = raw_user(row).map_err(|e| self.err(&e))?;
        let name = raw.name.clone();
        let networks = self
            .strings(c, r#"SELECT network FROM user_allow_from WHERE "user" = $1 ORDER BY position"#, &name)
            .await?;
        let groups = self
            .strings(c, r#"SELECT grp FROM user_groups WHERE "user" = $1 ORDER BY position"#, &name)
            .await?;
        let rules = self
            .strings(c, r#"SELECT rule FROM user_rules WHERE "user" = $1 ORDER BY position"#, &name)
            .await?;
        let mount_rows = c
            .query(
                r#"SELECT virtual_path, real_path, read_only FROM user_mounts WHERE "user" = $1 ORDER BY position"#,
                &[&name],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let mounts = mount_rows
            .iter()
            .map(|r| {
                Ok(MountSpec {
                    virtual_path: r.try_get(0)?,
                    real_path: PathBuf::from(r.try_get::<_, String>(1)?),
                    read_only: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| self.err(&e))?;
        let location = PathBuf::from(self.target.to_string());
        raw.into_record(&location, Children { networks, mounts, groups, rules })
    }

    async fn get_async(&self, client: &mut Client, name: &str) -> Result<Option<UserRecord>, UserDbError> {
        let row = client
            .query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"), &[&name])
            .await
            .map_err(|e| self.err(&e))?;
        match row {
            Some(row) => Ok(Some(self.read_user(&*client, &row).await?)),
            None => Ok(None),
        }
    }

    async fn list_async(&self, client: &mut Client) -> Result<Vec<UserRecord>, UserDbError> {
        // One snapshot for the users and their children.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.err(&e))?;
        let rows = tx
            .query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"), &[])
            .await
            .map_err(|e| self.err(&e))?;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            users.push(self.read_user(&tx, row).await?);
        }
        Ok(users)
    }

    async fn put_async(&self, client: &mut Client, record: &UserRecord) -> Result<(), UserDbError> {
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let name = record.name.as_str();
        let max_sessions = record.max_sessions.map(i64::from);
        tx.execute(
            &format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,
                   enabled = excluded.enabled, root = excluded.root, initial_dir = excluded.initial_dir,
                   read_only = excluded.read_only, max_sessions = excluded.max_sessions,
                   download_rate = excluded.download_rate, upload_rate = excluded.upload_rate,
                   quota_bytes = excluded.quota_bytes, quota_files = excluded.quota_files"
            ),
            &[
                &name,
                &record.password_hash,
                &record.enabled,
                &path_text(&record.root),
                &record.initial_dir,
                &record.read_only,
                &max_sessions,
                &record.shaping.download_rate.map(|r| sql_int(r.0)),
                &record.shaping.upload_rate.map(|r| sql_int(r.0)),
                &record.shaping.quota_bytes.map(sql_int),
                &record.shaping.quota_files.map(sql_int),
            ],
        )
        .await
        .map_err(|e| self.err(&e))?;
        for table in ["user_mounts", "user_groups", "user_rules", "user_allow_from"] {
            tx.execute(&format!(r#"DELETE FROM {table} WHERE "user" = $1"#), &[&name])
                .await
                .map_err(|e| self.err(&e))?;
        }
        for (i, net) in record.shaping.allow_from.iter().enumerate() {
            tx.execute(
                r#"INSERT INTO user_allow_from ("user", position, network) VALUES ($1, $2, $3)"#,
                &[&name, &(i as i64), &net.to_string()],
            )
            .await
            .map_err(|e| self.err(&e))?;
        }
        for (i, m) in record.mounts.iter().enumerate() {
            tx.execute(
                r#"INSERT INTO user_mounts ("user", position, virtual_path, real_path, read_only)
                   VALUES ($1, $2, $3, $4, $5)"#,
                &[&name, &(i as i64), &m.virtual_path, &path_text(&m.real_path), &m.read_only],
            )
            .await
            .map_err(|e| self.err(&e))?;
        }
        for (i, g) in record.groups.iter().enumerate() {
            tx.execute(
                r#"INSERT INTO user_groups ("user", position, grp) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"#,
                &[&name, &(i as i64), g],
            )
            .await
            .map_err(|e| self.err(&e))?;
        }
        for (i, rule) in record.rules.iter().enumerate() {
            tx.execute(
                r#"INSERT INTO user_rules ("user", position, rule) VALUES ($1, $2, $3)"#,
                &[&name, &(i as i64), rule],
            )
            .await
            .map_err(|e| self.err(&e))?;
        }
        tx.commit().await.map_err(|e| self.err(&e))
    }

    async fn delete_async(&self, client: &mut Client, name: &str) -> Result<bool, UserDbError> {
        let n =
            client.execute("DELETE FROM users WHERE name = $1", &[&name]).await.map_err(|e| self.err(&e))?;
        Ok(n > 0)
    }
}

fn raw_user(r: &Row) -> Result<RawUser, tokio_postgres::Error> {
    Ok(RawUser {
        name: r.try_get(0)?,
        password_hash: r.try_get(1)?,
        enabled: r.try_get(2)?,
        root: r.try_get(3)?,
        initial_dir: r.try_get(4)?,
        read_only: r.try_get(5)?,
        max_sessions: r.try_get(6)?,
        download_rate: r.try_get(7)?,
        upload_rate: r.try_get(8)?,
        quota_bytes: r.try_get(9)?,
        quota_files: r.try_get(10)?,
    })
}

fn unexpected() -> UserDbError {
    UserDbError::Invalid("user database: unexpected answer".into())
}

impl UserStore for PgUserStore {
    fn get(&self, name: &str) -> Result<Option<UserRecord>, UserDbError> {
        match self.call(Op::Get(name.to_owned()))? {
            Answer::User(user) => Ok(user.map(|u| *u)),
            _ => Err(unexpected()),
        }
    }

    fn list(&self) -> Result<Vec<UserRecord>, UserDbError> {
        match self.call(Op::List)? {
            Answer::Users(users) => Ok(users),
            _ => Err(unexpected()),
        }
    }

    fn put(&self, record: &UserRecord) -> Result<(), UserDbError> {
        record.validate()?;
        match self.call(Op::Put(Box::new(record.clone())))? {
            Answer::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn delete(&self, name: &str) -> Result<bool, UserDbError> {
        match self.call(Op::Delete(name.to_owned()))? {
            Answer::Deleted(found) => Ok(found),
            _ => Err(unexpected()),
        }
    }
}
