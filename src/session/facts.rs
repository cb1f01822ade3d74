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
        let mut out = String::with_capacity(8);
        if is_dir {
            // Rights over a new entry inside, asked of a stand-in name: the
            // rules name real paths, so the child's real path is needed too.
            let child = format!("{}/x", vpath.trim_end_matches('/'));
            let child_real = real.join("x");
            for (letter, op, inside) in [
                ('e', Operation::ChangeDir, false),
                ('l', Operation::List, false),
                ('c', Operation::Write, true),
                ('m', Operation::MakeDir, true),
                ('p', Operation::Delete, true),
                ('d', Operation::RemoveDir, false),
                ('f', Operation::RenameFrom, false),
            ] {
                let (path, real) =
                    if inside { (child.as_str(), child_real.as_path()) } else { (vpath, real) };
                if self.allows(op, path, real, read_only_mount) {
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
                if self.allows(op, vpath, real, read_only_mount) {
                    out.push(letter);
                }
            }
        }
        out
    }
}
