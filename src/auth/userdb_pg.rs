//! The PostgreSQL implementation of [`UserStore`]: the same users, child
//! tables and rules as the SQLite store, in a database several nodes share,
//! so a user added, changed or removed from any node (or with
//! `ferroftpd user … --db postgres://…`) applies everywhere at the next
//! login. Nothing is cached; each operation connects, runs its statements
//! (writes in one transaction) and disconnects, on a thread of its own
//! ([`crate::pg::block_on`]).

use std::path::PathBuf;

use tokio_postgres::{Client, GenericClient, Row};

use super::userdb::{
    path_text, sql_int, Children, RawUser, UserDbError, UserRecord, UserStore, USER_COLUMNS,
};
use crate::pg::{self, MigrateError, Target};
use crate::vfs::MountSpec;

/// Virtual users in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgUserStore {
    target: Target,
}

impl PgUserStore {
    /// Connects once to check the database and runs pending migrations.
    pub fn open(url: &str) -> Result<PgUserStore, UserDbError> {
        let target = Target::parse(url).map_err(UserDbError::Invalid)?;
        let store = PgUserStore { target };
        pg::block_on(async {
            let mut client = store.connect().await?;
            pg::migrate(&mut client).await.map_err(|e| match e {
                MigrateError::Db(e) => store.err(&e),
                MigrateError::TooNew { found, known } => {
                    UserDbError::TooNew { path: PathBuf::from(store.target.to_string()), found, known }
                }
            })
        })?;
        Ok(store)
    }

    /// The database, without its password.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn err(&self, e: &tokio_postgres::Error) -> UserDbError {
        UserDbError::Postgres { target: self.target.to_string(), message: pg::describe(e) }
    }

    async fn connect(&self) -> Result<Client, UserDbError> {
        self.target.connect().await.map_err(|e| self.err(&e))
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

    async fn get_async(&self, name: &str) -> Result<Option<UserRecord>, UserDbError> {
        let client = self.connect().await?;
        let row = client
            .query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"), &[&name])
            .await
            .map_err(|e| self.err(&e))?;
        match row {
            Some(row) => Ok(Some(self.read_user(&client, &row).await?)),
            None => Ok(None),
        }
    }

    async fn list_async(&self) -> Result<Vec<UserRecord>, UserDbError> {
        let mut client = self.connect().await?;
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

    async fn put_async(&self, record: &UserRecord) -> Result<(), UserDbError> {
        let mut client = self.connect().await?;
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

    async fn delete_async(&self, name: &str) -> Result<bool, UserDbError> {
        let client = self.connect().await?;
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

impl UserStore for PgUserStore {
    fn get(&self, name: &str) -> Result<Option<UserRecord>, UserDbError> {
        pg::block_on(self.get_async(name))
    }

    fn list(&self) -> Result<Vec<UserRecord>, UserDbError> {
        pg::block_on(self.list_async())
    }

    fn put(&self, record: &UserRecord) -> Result<(), UserDbError> {
        record.validate()?;
        pg::block_on(self.put_async(record))
    }

    fn delete(&self, name: &str) -> Result<bool, UserDbError> {
        pg::block_on(self.delete_async(name))
    }
}
