//! Commands that act on one file or directory over the control connection:
//! MKD, RMD, DELE, RNFR/RNTO, SIZE, MDTM, MFMT, MLST, STAT path, SITE.

use std::time::{Duration, SystemTime};

use super::errors::{storage_reply, upload_storage_reply};
use super::facts::PermView;
use super::navigation::quote_path;
use super::user::Ctx;
use crate::perm::Operation;
use crate::proto::listing;
use crate::proto::Reply;
use crate::vfs::path::split_parent;
use crate::vfs::quota::Usage;
use crate::vfs::Metadata;

impl Ctx<'_> {
    pub fn perm_view(&self) -> PermView {
        PermView { perms: self.live.perms.clone(), account: self.user.account.clone() }
    }

    /// Refuses operations on mount points themselves (they are grafted, not stored).
    fn refuse_mount_point(&self, vpath: &str) -> Result<(), Reply> {
        if vpath == "/" || self.user.vfs.is_mount_point(vpath) {
            return Err(Reply::new(550, "Cannot modify a virtual directory."));
        }
        Ok(())
    }

    pub async fn mkd(&self, arg: &str) -> Result<Reply, Reply> {
        let vpath = self.vpath(arg)?;
        self.refuse_mount_point(&vpath)?;
        let resolved = self.authorize(Operation::MakeDir, &vpath)?;
        resolved.mount.storage.make_dir(resolved.rel).await.map_err(|e| storage_reply(&e))?;
        tracing::info!(user = %self.user.account.name, path = %vpath, "directory created");
        Ok(Reply::new(257, format!("{} created.", quote_path(&vpath))))
    }

    pub async fn rmd(&self, arg: &str) -> Result<Reply, Reply> {
        let vpath = self.vpath(arg)?;
        self.refuse_mount_point(&vpath)?;
        let resolved = self.authorize(Operation::RemoveDir, &vpath)?;
        resolved.mount.storage.remove_dir(resolved.rel).await.map_err(|e| storage_reply(&e))?;
        tracing::info!(user = %self.user.account.name, path = %vpath, "directory removed");
        Ok(Reply::new(250, "Directory removed."))
    }

    pub async fn dele(&self, arg: &str) -> Result<Reply, Reply> {
        let vpath = self.vpath(arg)?;
        self.refuse_mount_point(&vpath)?;
        let resolved = self.authorize(Operation::Delete, &vpath)?;
        let counted = self.quota_counts(&resolved);
        let size = match counted {
            Some(_) => resolved
                .mount
                .storage
                .metadata(resolved.rel)
                .await
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len),
            None => None,
        };
        resolved.mount.storage.remove_file(resolved.rel).await.map_err(|e| storage_reply(&e))?;
        if let (Some(usage), Some(size)) = (counted, size) {
            usage.removed(size);
        }
        tracing::info!(user = %self.user.account.name, path = %vpath, "file deleted");
        Ok(Reply::new(250, "File deleted."))
    }

    pub async fn rnfr(&mut self, arg: &str) -> Result<Reply, Reply> {
        let vpath = self.vpath(arg)?;
        self.refuse_mount_point(&vpath)?;
        let resolved = self.authorize(Operation::RenameFrom, &vpath)?;
        resolved.mount.storage.metadata(resolved.rel).await.map_err(|e| storage_reply(&e))?;
        self.user.rename_from = Some(vpath);
        Ok(Reply::new(350, "Ready for RNTO."))
    }

    pub async fn rnto(&self, arg: &str, from: Option<String>) -> Result<Reply, Reply> {
        let Some(from) = from else {
            return Err(Reply::new(503, "RNFR required first."));
        };
        let to = self.vpath(arg)?;
        self.refuse_mount_point(&to)?;
        let source = self.authorize(Operation::RenameFrom, &from)?;
        // rename-to is a right of the directory the name goes into.
        let (to_dir, _) = split_parent(&to).ok_or_else(super::errors::permission_denied)?;
        self.authorize(Operation::RenameTo, to_dir)?;
        let target = self.user.vfs.resolve(&to).ok_or_else(super::errors::permission_denied)?;
        if !std::ptr::eq(source.mount, target.mount) {
            return Err(Reply::new(553, "Cannot rename across virtual directories."));
        }
        let mut replaced = None;
        if let Ok(existing) = target.mount.storage.metadata(target.rel).await {
            if existing.is_dir() {
                return Err(Reply::new(550, "Target is an existing directory."));
            }
            self.authorize(Operation::Overwrite, &to)?;
            replaced = Some(existing.len);
        }
        source.mount.storage.rename(source.rel, target.rel).await.map_err(|e| storage_reply(&e))?;
        if let (Some(usage), Some(size)) = (self.quota_counts(&target), replaced) {
            usage.removed(size);
        }
        tracing::info!(user = %self.user.account.name, from = %from, to = %to, "renamed");
        Ok(Reply::new(250, "Rename successful."))
    }

    async fn stat_meta(&self, arg: &str) -> Result<(String, Metadata), Reply> {
        let vpath = self.vpath(arg)?;
        let resolved = self.authorize(Operation::Stat, &vpath)?;
        let meta = resolved.mount.storage.metadata(resolved.rel).await.map_err(|e| storage_reply(&e))?;
        Ok((vpath, meta))
    }

    pub async fn size(&self, arg: &str) -> Result<Reply, Reply> {
        let (_, meta) = self.stat_meta(arg).await?;
        if !meta.is_file() {
            return Err(Reply::new(550, "Not a regular file."));
        }
        Ok(Reply::new(213, meta.len.to_string()))
    }

    pub async fn mdtm(&self, arg: &str) -> Result<Reply, Reply> {
        let (_, meta) = self.stat_meta(arg).await?;
        let modified = meta.modified.ok_or_else(|| Reply::new(550, "Modification time unknown."))?;
        Ok(Reply::new(213, listing::ftp_timestamp(modified)))
    }

    pub async fn mfmt(&self, time: i64, arg: &str) -> Result<Reply, Reply> {
        let vpath = self.vpath(arg)?;
        let resolved = self.authorize(Operation::SetTime, &vpath)?;
        let when = u64::try_from(time)
            .ok()
            .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
            .ok_or_else(|| Reply::new(501, "Time out of range."))?;
        resolved.mount.storage.set_modified(resolved.rel, when).await.map_err(|e| storage_reply(&e))?;
        Ok(Reply::new(213, format!("Modify={}; {}", listing::ftp_timestamp(when), vpath)))
    }

    pub async fn mlst(&self, arg: Option<&str>) -> Result<Reply, Reply> {
        let (vpath, meta) = self.stat_meta(arg.unwrap_or(".")).await?;
        let resolved = self.authorize(Operation::Stat, &vpath)?;
        let perm = self.perm_view().perm_fact(
            &vpath,
            &resolved.real_location(),
            resolved.mount.read_only,
            meta.is_dir(),
        );
        let line = listing::mlsx_line(&vpath, &meta, &perm, None);
        Ok(Reply::new(250, format!("Listing {vpath}\n{line}\nEnd")))
    }

    pub async fn site(&self, arg: &str) -> Result<Reply, Reply> {
        let mut words = arg.splitn(3, ' ');
        let sub = words.next().unwrap_or("").to_ascii_uppercase();
        match sub.as_str() {
            "HELP" => Ok(Reply::new(214, "SITE commands: CHMOD HELP QUOTA\nEnd")),
            "QUOTA" => Ok(self.site_quota()),
            "CHMOD" => {
                let (Some(mode), Some(path)) = (words.next(), words.next()) else {
                    return Err(Reply::new(501, "Usage: SITE CHMOD <octal mode> <path>"));
                };
                let mode = u32::from_str_radix(mode, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| Reply::new(501, "Mode must be octal, at most 7777."))?;
                let vpath = self.vpath(path)?;
                let resolved = self.authorize(Operation::Chmod, &vpath)?;
                if !resolved.mount.storage.capabilities().set_mode {
                    return Err(Reply::new(502, "SITE CHMOD is not supported by this storage."));
                }
                resolved
                    .mount
                    .storage
                    .set_mode(resolved.rel, mode)
                    .await
                    .map_err(|e| upload_storage_reply(&e))?;
                Ok(Reply::new(200, "SITE CHMOD command ok."))
            }
            _ => Err(Reply::new(504, format!("SITE {sub} not understood."))),
        }
    }
}

impl Ctx<'_> {
    /// The user's usage, if it has a quota and `resolved` lies in the tree
    /// the quota covers (the root, not grafted directories).
    pub fn quota_counts(&self, resolved: &crate::vfs::Resolved<'_>) -> Option<&std::sync::Arc<Usage>> {
        self.user.quota.as_ref().filter(|_| resolved.mount.virtual_prefix == "/")
    }

    /// SITE QUOTA: usage and limits.
    fn site_quota(&self) -> Reply {
        let limits = &self.user.account.shaping;
        let Some(usage) = &self.user.quota else {
            return Reply::new(200, "No quota for this account.");
        };
        let limit = |l: Option<u64>| l.map_or("unlimited".to_string(), |n| n.to_string());
        Reply::new(
            200,
            format!(
                "Quota for {}:\nBytes: {} used of {}\nFiles: {} used of {}\nEnd",
                self.user.account.name,
                usage.bytes(),
                limit(limits.quota_bytes),
                usage.files(),
                limit(limits.quota_files)
            ),
        )
    }

    /// ALLO: refused with 552 when the size would pass the byte quota.
    pub fn allo(&self, size: Option<u64>) -> Reply {
        if let (Some(usage), Some(size), Some(max)) =
            (&self.user.quota, size, self.user.account.shaping.quota_bytes)
        {
            if usage.bytes().saturating_add(size) > max {
                tracing::info!(user = %self.user.account.name, size, used = usage.bytes(), max, "ALLO refused: quota");
                return Reply::new(552, "Exceeded storage allocation (quota).");
            }
            return Reply::new(200, "ALLO command ok.");
        }
        Reply::new(202, "No storage allocation necessary.")
    }
}
