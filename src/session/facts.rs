//! Permission-derived facts: the MLSx `perm` fact and the "may the user even
//! see this entry" filter, computed from the permission module so listings
//! tell the truth about what the user can do.

use std::path::Path;
use std::sync::Arc;

use crate::auth::Account;
use crate::perm::{Decision, Operation, Permissions, Target};

/// A detached view of one account's permissions, cheap to move into a
/// listing task.
#[derive(Debug, Clone)]
pub(super) struct PermView {
    pub perms: Arc<dyn Permissions>,
    pub account: Arc<Account>,
}

impl PermView {
    pub fn allows(&self, op: Operation, vpath: &str, real: &Path, read_only_mount: bool) -> bool {
        let target = Target { virtual_path: vpath, real_path: real, read_only_mount };
        self.perms.check(&self.account, op, &target) == Decision::Allow
    }

    /// RFC 3659 `perm` letters for an entry.
    pub fn perm_fact(&self, vpath: &str, real: &Path, read_only_mount: bool, is_dir: bool) -> String {
        let may = |op, path: &str| self.allows(op, path, real, read_only_mount);
        let mut out = String::with_capacity(8);
        if is_dir {
            let child = format!("{}/x", vpath.trim_end_matches('/'));
            for (letter, op, path) in [
                ('e', Operation::ChangeDir, vpath),
                ('l', Operation::List, vpath),
                ('c', Operation::Write, child.as_str()),
                ('m', Operation::MakeDir, child.as_str()),
                ('p', Operation::Delete, child.as_str()),
                ('d', Operation::RemoveDir, vpath),
                ('f', Operation::RenameFrom, vpath),
            ] {
                if may(op, path) {
                    out.push(letter);
                }
            }
        } else {
            for (letter, op) in [
                ('r', Operation::Read),
                ('w', Operation::Overwrite),
                ('a', Operation::Append),
                ('d', Operation::Delete),
                ('f', Operation::RenameFrom),
            ] {
                if may(op, vpath) {
                    out.push(letter);
                }
            }
        }
        out
    }
}
