//! Permissions: every file operation asks [`Permissions::check`] before it
//! touches storage. [`BasicPermissions`] enforces read-only accounts, upload
//! directories and read-only mounts; the ACL module plugs in beside it.

use std::fmt;
use std::path::Path;

use crate::auth::Account;

/// Every FTP operation that touches the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// LIST, NLST, MLSD on a directory.
    List,
    /// RETR.
    Read,
    /// STOR/STOU of a new file.
    Write,
    /// STOR over an existing file.
    Overwrite,
    /// APPE, REST+STOR.
    Append,
    /// DELE.
    Delete,
    /// RNFR on the source.
    RenameFrom,
    /// RNTO on the target.
    RenameTo,
    /// MKD.
    MakeDir,
    /// RMD.
    RemoveDir,
    /// CWD, CDUP.
    ChangeDir,
    /// SIZE, MDTM, MLST.
    Stat,
    /// MFMT.
    SetTime,
    /// SITE CHMOD.
    Chmod,
}

impl Operation {
    /// True for operations that modify the tree.
    pub fn modifies(self) -> bool {
        !matches!(self, Operation::List | Operation::Read | Operation::ChangeDir | Operation::Stat)
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::List => "list",
            Operation::Read => "read",
            Operation::Write => "write-new",
            Operation::Overwrite => "overwrite",
            Operation::Append => "append",
            Operation::Delete => "delete",
            Operation::RenameFrom => "rename-from",
            Operation::RenameTo => "rename-to",
            Operation::MakeDir => "mkdir",
            Operation::RemoveDir => "rmdir",
            Operation::ChangeDir => "chdir",
            Operation::Stat => "stat",
            Operation::SetTime => "set-time",
            Operation::Chmod => "chmod",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an operation applies to.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub virtual_path: &'a str,
    pub real_path: &'a Path,
    /// The mount holding the path is read-only.
    pub read_only_mount: bool,
}

/// A decision, with the reason for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

pub trait Permissions: Send + Sync + fmt::Debug {
    fn check(&self, account: &Account, op: Operation, target: &Target<'_>) -> Decision;
}

/// The built-in rules every account gets: read-only mounts refuse changes;
/// a read-only account may only create new files below its upload
/// directories (a drop box: no overwrite, delete, or rename there).
#[derive(Debug, Default, Clone, Copy)]
pub struct BasicPermissions;

impl Permissions for BasicPermissions {
    fn check(&self, account: &Account, op: Operation, target: &Target<'_>) -> Decision {
        if !op.modifies() {
            return Decision::Allow;
        }
        if target.read_only_mount {
            return Decision::Deny("read-only virtual directory".into());
        }
        if !account.read_only {
            return Decision::Allow;
        }
        let in_upload_dir = account.upload_dirs.iter().any(|dir| {
            crate::vfs::path::strip_mount_prefix(dir, target.virtual_path)
                .is_some_and(|rest| !rest.is_empty())
        });
        if in_upload_dir && matches!(op, Operation::Write | Operation::MakeDir) {
            return Decision::Allow;
        }
        Decision::Deny("read-only account".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn account(read_only: bool) -> Account {
        Account {
            name: "anonymous".into(),
            groups: vec![],
            anonymous: true,
            root: PathBuf::from("/srv"),
            mounts: vec![],
            initial_dir: "/".into(),
            read_only,
            upload_dirs: vec!["/incoming".into()],
            max_sessions: None,
            module: "anonymous",
        }
    }

    fn target(vpath: &str, read_only_mount: bool) -> Target<'_> {
        Target { virtual_path: vpath, real_path: Path::new("/srv/x"), read_only_mount }
    }

    #[test]
    fn read_only_account_uploads_only_into_upload_dirs() {
        let p = BasicPermissions;
        let a = account(true);
        assert_eq!(p.check(&a, Operation::Read, &target("/x", false)), Decision::Allow);
        assert_eq!(p.check(&a, Operation::Write, &target("/incoming/f", false)), Decision::Allow);
        assert!(matches!(
            p.check(&a, Operation::Overwrite, &target("/incoming/f", false)),
            Decision::Deny(_)
        ));
        assert!(matches!(p.check(&a, Operation::Write, &target("/incoming", false)), Decision::Deny(_)));
        assert!(matches!(p.check(&a, Operation::Write, &target("/incomingx/f", false)), Decision::Deny(_)));
        assert!(matches!(p.check(&a, Operation::Delete, &target("/x", false)), Decision::Deny(_)));
    }

    #[test]
    fn read_only_mount_refuses_changes_for_everyone() {
        let p = BasicPermissions;
        let a = account(false);
        assert_eq!(p.check(&a, Operation::Delete, &target("/x", false)), Decision::Allow);
        assert!(matches!(p.check(&a, Operation::Delete, &target("/x", true)), Decision::Deny(_)));
        assert_eq!(p.check(&a, Operation::List, &target("/x", true)), Decision::Allow);
    }
}
