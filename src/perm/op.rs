//! The closed set of file-system operations a permission check is about.
//! A leaf module: the rule compiler and the configuration refer to it
//! without depending on the rest of `perm`.

use std::fmt;

/// Every FTP operation that touches the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// LIST, NLST, MLSD on a directory.
    List,
    /// RETR.
    Read,
    /// STOR, STOU or APPE of a new file.
    Write,
    /// STOR over an existing file.
    Overwrite,
    /// APPE, REST+STOR.
    Append,
    /// DELE.
    Delete,
    /// RNFR on the source.
    RenameFrom,
    /// RNTO, on the directory the target goes into (an existing target
    /// also needs `Overwrite`).
    RenameTo,
    /// MKD, on the new directory.
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
    /// Every operation, in the order rules and explanations list them.
    pub const ALL: [Operation; 14] = [
        Operation::List,
        Operation::Read,
        Operation::Write,
        Operation::Overwrite,
        Operation::Append,
        Operation::Delete,
        Operation::RenameFrom,
        Operation::RenameTo,
        Operation::MakeDir,
        Operation::RemoveDir,
        Operation::ChangeDir,
        Operation::Stat,
        Operation::SetTime,
        Operation::Chmod,
    ];

    /// The operation a rule names, e.g. `write-new`.
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    /// True for operations that modify the tree.
    pub fn modifies(self) -> bool {
        !matches!(self, Operation::List | Operation::Read | Operation::ChangeDir | Operation::Stat)
    }

    /// The name rules and the CLI use.
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

/// Named sets of operations, so common rights read as one word.
pub const SHORTHANDS: &[(&str, &[Operation], &str)] = &[
    (
        "read-only",
        &[Operation::List, Operation::Read, Operation::ChangeDir, Operation::Stat],
        "list, read, chdir, stat",
    ),
    ("upload-only", &[Operation::Write, Operation::ChangeDir], "write-new, chdir (a drop box)"),
    ("rename", &[Operation::RenameFrom, Operation::RenameTo], "rename-from, rename-to"),
    (
        "modify",
        &[
            Operation::Write,
            Operation::Overwrite,
            Operation::Append,
            Operation::Delete,
            Operation::RenameFrom,
            Operation::RenameTo,
            Operation::MakeDir,
            Operation::RemoveDir,
            Operation::SetTime,
            Operation::Chmod,
        ],
        "every operation that changes the tree",
    ),
    ("full", &Operation::ALL, "every operation"),
];

/// A set of operations, as a bit set: checking membership is one AND,
/// which matters when a listing checks every entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OpSet(u16);

impl OpSet {
    pub const EMPTY: OpSet = OpSet(0);

    pub fn all() -> OpSet {
        Operation::ALL.into_iter().collect()
    }

    fn bit(op: Operation) -> u16 {
        1 << (op as u16)
    }

    pub fn contains(self, op: Operation) -> bool {
        self.0 & OpSet::bit(op) != 0
    }

    pub fn insert(&mut self, op: Operation) {
        self.0 |= OpSet::bit(op);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }

    pub fn intersection(self, other: OpSet) -> OpSet {
        OpSet(self.0 & other.0)
    }

    pub fn difference(self, other: OpSet) -> OpSet {
        OpSet(self.0 & !other.0)
    }

    /// The operations in [`Operation::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Operation> {
        Operation::ALL.into_iter().filter(move |op| self.contains(*op))
    }

    /// An operation or shorthand name, expanded.
    pub fn from_name(name: &str) -> Option<OpSet> {
        if let Some(op) = Operation::from_name(name) {
            return Some(std::iter::once(op).collect());
        }
        SHORTHANDS.iter().find(|(n, _, _)| *n == name).map(|(_, ops, _)| ops.iter().copied().collect())
    }

    /// Every name [`OpSet::from_name`] accepts, for error messages.
    pub fn names() -> Vec<&'static str> {
        Operation::ALL.iter().map(|op| op.name()).chain(SHORTHANDS.iter().map(|(n, _, _)| *n)).collect()
    }
}

impl FromIterator<Operation> for OpSet {
    fn from_iter<I: IntoIterator<Item = Operation>>(iter: I) -> OpSet {
        let mut set = OpSet::EMPTY;
        for op in iter {
            set.insert(op);
        }
        set
    }
}

impl fmt::Display for OpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == OpSet::all() {
            return f.write_str("full");
        }
        let mut first = true;
        for op in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            f.write_str(op.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        let names = OpSet::names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} twice");
        }
        assert_eq!(Operation::from_name("READ"), None);
    }

    #[test]
    fn shorthands_expand() {
        let ro = OpSet::from_name("read-only").unwrap();
        assert!(
            ro.contains(Operation::Read) && ro.contains(Operation::List) && !ro.contains(Operation::Write)
        );
        assert_eq!(OpSet::from_name("full"), Some(OpSet::all()));
        assert_eq!(OpSet::all().iter().count(), 14);
        let modify = OpSet::from_name("modify").unwrap();
        for op in Operation::ALL {
            assert_eq!(modify.contains(op), op.modifies(), "{op}");
        }
        assert_eq!(OpSet::from_name("upload-only").unwrap().to_string(), "write-new, chdir");
        assert_eq!(OpSet::all().to_string(), "full");
    }
}
