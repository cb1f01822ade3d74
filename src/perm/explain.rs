//! `perm explain`: which rule decides an operation of a user on a path, and
//! why, as text. Shared by the command line and the web admin.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Operation, Step, Target};
use crate::auth::anonymous::{self, Anonymous};
use crate::auth::userdb::{self, Location};
use crate::auth::Account;
use crate::config::Config;
use crate::vfs::{normalize, Vfs};

/// How the path argument is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A real path when it lies below one of the account's real
    /// directories, else a virtual one.
    Guess,
    Real,
    Virtual,
}

/// Why there is no explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The question is malformed (unknown operation, bad path).
    #[error("{0}")]
    Input(String),
    /// The answer cannot be found (unknown user, unreadable database).
    #[error("{0}")]
    Failed(String),
}

pub fn explain(
    config: &Config,
    user: &str,
    path: &str,
    operation: &str,
    how: PathKind,
) -> Result<String, ExplainError> {
    let stack = super::build_stack(config).map_err(|e| ExplainError::Failed(e.to_string()))?;
    let op = Operation::from_name(operation).ok_or_else(|| {
        let names: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
        ExplainError::Input(format!(
            "unknown operation `{}`; give one of: {}",
            operation.escape_debug(),
            names.join(", ")
        ))
    })?;
    let account = find_account(config, user)?;
    crate::vfs::object::configure(&config.stores)
        .map_err(|e| ExplainError::Failed(format!("cannot open the object stores: {e}")))?;
    let vfs = Vfs::local(&account.root, &account.mounts).map_err(|e| {
        ExplainError::Failed(format!("cannot open the directories of `{}`: {e}", account.name))
    })?;
    let place = locate(&vfs, &account, path, how)?;
    let target = Target {
        virtual_path: &place.virtual_path,
        real_path: &place.real,
        read_only_mount: place.read_only,
    };
    let e = stack.explain(&account, op, &target);

    let mut out = String::new();
    let groups = if account.groups.is_empty() { "none".to_string() } else { account.groups.join(", ") };
    let _ = writeln!(out, "user:       {} ({} module; groups: {groups})", account.name, account.module);
    let _ = writeln!(out, "operation:  {op}");
    let _ = writeln!(
        out,
        "path:       {} (virtual) -> {} (real){}{}",
        place.virtual_path,
        place.real.display(),
        if place.read_only { ", in a read-only virtual directory" } else { "" },
        place.how
    );
    let _ = writeln!(out, "decision:   {}", if e.allowed { "ALLOWED" } else { "DENIED" });
    let decided = match &e.decided_by {
        Step::ReadOnlyMount => "read-only virtual directory (a hard limit no rule lifts)".to_string(),
        Step::Rule(c) => format!(
            "{}: {}\n            ({}{})",
            c.rule.origin.label(),
            c.rule.summary(),
            c.specificity,
            if e.candidates.iter().any(|o| o.specificity == c.specificity && o.allow != c.allow) {
                "; a deny beats an allow at equal specificity"
            } else {
                ""
            }
        ),
        Step::Account(d) => format!("the `account` module: {}", d_reason(d)),
        Step::Default(d) => format!("permissions.default = \"{}\" (no module had an opinion)", d.name()),
    };
    let _ = writeln!(out, "decided by: {decided}");
    let mut ranked = e.candidates.clone();
    ranked.sort_by(|a, b| b.specificity.cmp(&a.specificity).then(a.allow.cmp(&b.allow)));
    if ranked.is_empty() {
        let _ = writeln!(out, "rules:      none names {} with {op} on this path", account.name);
    } else {
        let _ = writeln!(out, "rules naming {} with {op} on this path, strongest first:", account.name);
        for c in &ranked {
            let mark = match &e.decided_by {
                Step::Rule(d) if std::ptr::eq(d.rule, c.rule) => "*",
                _ => " ",
            };
            let verdict = if c.allow { "allow" } else { "deny " };
            let _ = writeln!(
                out,
                "  {mark} {verdict}  {}  [{}]  {}",
                c.rule.origin,
                c.specificity,
                c.rule.summary()
            );
        }
    }
    let modules: Vec<&str> = e.modules.iter().map(|m| m.name()).collect();
    let _ = writeln!(
        out,
        "stack:      read-only virtual directories, then {}, then default {}",
        if modules.is_empty() { "no module".to_string() } else { modules.join(", ") },
        stack.default_decision().name()
    );
    if op == Operation::RenameTo {
        let _ = writeln!(out, "note:       RNTO asks rename-to of the directory the new name goes into");
    }
    Ok(out)
}

fn d_reason(d: &super::Decision) -> String {
    match d {
        super::Decision::Allow => "upload directory of a read-only account".to_string(),
        super::Decision::Deny(reason) => reason.clone(),
    }
}

/// The account a user name logs in as, found the way the chain would
/// (without a password).
pub fn find_account(config: &Config, user: &str) -> Result<Account, ExplainError> {
    for module in &config.auth.chain {
        match module.as_str() {
            anonymous::MODULE_NAME if Anonymous::is_anonymous_name(user) => {
                return Ok(Anonymous::from_config(&config.anonymous).account());
            }
            userdb::MODULE_NAME => {
                let store = Location::from_config(&config.userdb)
                    .open_existing()
                    .map_err(|e| ExplainError::Failed(e.to_string()))?;
                if let Some(record) = store.get(user).map_err(|e| ExplainError::Failed(e.to_string()))? {
                    return record.to_account().map_err(|e| ExplainError::Failed(e.to_string()));
                }
            }
            _ => {}
        }
    }
    Err(ExplainError::Failed(format!("no module of auth.chain knows the user `{user}`")))
}

/// A path given to `perm explain`, in both forms.
struct Place {
    virtual_path: String,
    real: PathBuf,
    read_only: bool,
    /// How the argument was read, for the output.
    how: &'static str,
}

/// Reads PATH as a real path when it lies below one of the account's real
/// directories (or `--real`), else as a virtual path.
fn locate(vfs: &Vfs, account: &Account, path: &str, how: PathKind) -> Result<Place, ExplainError> {
    let as_real = super::rules::soft_canonicalize(
        &std::path::absolute(path).map_err(|e| ExplainError::Input(format!("{path}: {e}")))?,
    );
    // Real directories of the account, longest first (a mount inside the root wins).
    let mut dirs: Vec<(String, PathBuf, bool)> =
        std::iter::once(("/".to_string(), account.root.clone(), false))
            .chain(account.mounts.iter().map(|m| (m.virtual_path.clone(), m.real_path.clone(), m.read_only)))
            .map(|(v, r, ro)| (v, super::rules::soft_canonicalize(&std::path::absolute(&r).unwrap_or(r)), ro))
            .collect();
    dirs.sort_by_key(|(_, r, _)| std::cmp::Reverse(r.components().count()));
    let real_match = dirs.iter().find(|(_, r, _)| as_real.starts_with(r));
    if how != PathKind::Virtual && path.starts_with('/') {
        if let Some((vprefix, rdir, ro)) = real_match {
            let rest = as_real.strip_prefix(rdir).unwrap_or(Path::new(""));
            let joined = format!("{}/{}", vprefix.trim_end_matches('/'), rest.display());
            let virtual_path = normalize("/", &joined).map_err(|e| ExplainError::Input(e.to_string()))?;
            return Ok(Place {
                virtual_path,
                real: as_real,
                read_only: *ro,
                how: "; PATH read as a real path",
            });
        }
    }
    if how == PathKind::Real {
        // Outside everything the account can reach: the rules still answer.
        return Ok(Place {
            virtual_path: "(unreachable)".into(),
            real: as_real,
            read_only: false,
            how: "; the account cannot reach this path",
        });
    }
    let virtual_path = normalize("/", path).map_err(|e| ExplainError::Input(e.to_string()))?;
    let resolved =
        vfs.resolve(&virtual_path).ok_or_else(|| ExplainError::Failed("the account has no root".into()))?;
    Ok(Place {
        real: resolved.real_location(),
        read_only: resolved.mount.read_only,
        virtual_path,
        how: "; PATH read as a virtual path",
    })
}
