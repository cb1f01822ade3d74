//! Admin accounts: names and argon2id hashes in a SQLite file of their own,
//! so FTP users (even with the same name) never get admin rights.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::auth::password;

#[derive(Debug, thiserror::Error)]
pub enum AdminDbError {
    #[error("admin database {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("{0}")]
    Invalid(String),
}

/// The admin account store.
#[derive(Debug, Clone)]
pub struct AdminAccounts {
    path: PathBuf,
}

impl AdminAccounts {
    /// Opens (and creates) the database.
    pub fn open(path: impl Into<PathBuf>) -> Result<AdminAccounts, AdminDbError> {
        let store = AdminAccounts { path: path.into() };
        store.conn()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> Result<Connection, AdminDbError> {
        let sql = |source| AdminDbError::Sql { path: self.path.clone(), source };
        let conn = Connection::open(&self.path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS admins (name TEXT PRIMARY KEY, hash TEXT NOT NULL)")
            .map_err(sql)?;
        Ok(conn)
    }

    fn sql(&self, source: rusqlite::Error) -> AdminDbError {
        AdminDbError::Sql { path: self.path.clone(), source }
    }

    /// Adds an admin or replaces its password.
    pub fn set(&self, name: &str, password: &str) -> Result<(), AdminDbError> {
        crate::auth::userdb::validate_name(name).map_err(|e| AdminDbError::Invalid(e.to_string()))?;
        if password.len() < 8 {
            return Err(AdminDbError::Invalid("an admin password has at least 8 characters".into()));
        }
        let hash = password::hash_password(password).map_err(|e| AdminDbError::Invalid(e.to_string()))?;
        self.conn()?
            .execute(
                "INSERT INTO admins (name, hash) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET hash = ?2",
                params![name, hash],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Removes an admin; false if there was none of that name.
    pub fn delete(&self, name: &str) -> Result<bool, AdminDbError> {
        let n = self
            .conn()?
            .execute("DELETE FROM admins WHERE name = ?1", params![name])
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    pub fn list(&self) -> Result<Vec<String>, AdminDbError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT name FROM admins ORDER BY name").map_err(|e| self.sql(e))?;
        let names = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(names)
    }

    fn hash_of(&self, name: &str) -> Result<Option<String>, AdminDbError> {
        self.conn()?
            .query_row("SELECT hash FROM admins WHERE name = ?1", params![name], |row| row.get(0))
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Checks a login; unknown names cost as much as wrong passwords.
    pub async fn verify(&self, name: &str, pw: &str) -> bool {
        let store = self.clone();
        let owned = name.to_string();
        let hash = tokio::task::spawn_blocking(move || store.hash_of(&owned)).await;
        match hash {
            Ok(Ok(Some(hash))) => password::verify(pw, &hash).await,
            Ok(Ok(None)) => {
                password::dummy_verify().await;
                false
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "admin login: cannot read the admin database");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "admin login: task failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn set_verify_delete() {
        let dir = tempfile::tempdir().unwrap();
        let db = AdminAccounts::open(dir.path().join("admins.db")).unwrap();
        assert!(db.set("root", "short").is_err());
        db.set("root", "long enough").unwrap();
        assert!(db.verify("root", "long enough").await);
        assert!(!db.verify("root", "wrong password").await);
        assert!(!db.verify("nobody", "long enough").await);
        assert_eq!(db.list().unwrap(), ["root"]);
        assert!(db.delete("root").unwrap());
        assert!(!db.delete("root").unwrap());
    }
}
