//! PWD, CWD, CDUP.

use super::errors::storage_reply;
use super::user::Ctx;
use crate::perm::Operation;
use crate::proto::Reply;

/// Quotes a path for a 257 reply: `"` inside the name is doubled (RFC 959).
pub fn quote_path(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

impl Ctx<'_> {
    pub fn pwd(&self) -> Reply {
        Reply::new(257, format!("{} is the current directory.", quote_path(&self.user.cwd)))
    }

    pub async fn cwd(&mut self, arg: &str) -> Result<Reply, Reply> {
        let vpath = self.vpath(arg)?;
        let resolved = self.authorize(Operation::ChangeDir, &vpath)?;
        let meta = resolved.mount.storage.metadata(resolved.rel).await.map_err(|e| storage_reply(&e))?;
        if !meta.is_dir() {
            return Err(Reply::new(550, "Not a directory."));
        }
        if let Some(r) = self.registration {
            r.changed_dir(&vpath);
        }
        self.user.cwd = vpath;
        Ok(Reply::new(250, "Directory successfully changed."))
    }
}
