//! Permissions: every file operation asks [`Permissions::check`] before it
//! touches storage.
//!
//! The server's permissions are a [`PermissionStack`], built from the
//! configuration by [`build_permissions`]:
//!
//! 1. a hard limit: read-only virtual directories refuse every change,
//!    whatever any rule says;
//! 2. the modules of `permissions.modules`, asked in order, the first with
//!    an opinion deciding: `acl` ([`acl`], the rules) has one when a rule
//!    names the operation and matches the path; `account` has one when the
//!    account's own settings speak (a read-only account refuses changes,
//!    except new files and directories below its upload directories);
//! 3. `permissions.default` when no module has an opinion.
//!
//! With the default order (`acl`, then `account`) and default (`allow`),
//! a server without rules behaves exactly as [`BasicPermissions`].
//! [`PermissionStack::explain`] walks the same steps and keeps what it saw,
//! for `ferroftpd perm explain`.

pub mod acl;
pub mod explain;
pub mod lint;
pub mod op;
pub mod rules;

pub use op::{OpSet, Operation};

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::auth::Account;
use crate::config::{Config, ConfigError, DefaultDecision, PERMISSION_MODULES};
use acl::{Acl, Candidate};

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

/// Answers whether an account may perform an operation on a path.
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
        if op.modifies() && target.read_only_mount {
            return Decision::Deny("read-only virtual directory".into());
        }
        account_opinion(account, op, target).unwrap_or(Decision::Allow)
    }
}

/// A module of the stack, as named in `permissions.modules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    Acl,
    Account,
}

impl Module {
    pub fn name(self) -> &'static str {
        match self {
            Module::Acl => "acl",
            Module::Account => "account",
        }
    }

    fn from_name(name: &str) -> Option<Module> {
        match name {
            "acl" => Some(Module::Acl),
            "account" => Some(Module::Account),
            _ => None,
        }
    }
}

/// What the `account` module says: deny what a read-only account may not
/// do, allow new files and directories below its upload directories, and
/// nothing otherwise (so a writable account's rights come from the rules
/// or the default).
pub fn account_opinion(account: &Account, op: Operation, target: &Target<'_>) -> Option<Decision> {
    if !op.modifies() || !account.read_only {
        return None;
    }
    let in_upload_dir = account.upload_dirs.iter().any(|dir| {
        crate::vfs::path::strip_mount_prefix(dir, target.virtual_path).is_some_and(|rest| !rest.is_empty())
    });
    if in_upload_dir && matches!(op, Operation::Write | Operation::MakeDir) {
        return Some(Decision::Allow);
    }
    Some(Decision::Deny("read-only account".into()))
}

/// The whole permission check: hard limit, modules in order, default.
#[derive(Debug, Clone)]
pub struct PermissionStack {
    modules: Vec<Module>,
    default: DefaultDecision,
    acl: Acl,
}

/// Which step of the stack decided.
#[derive(Debug, Clone)]
pub enum Step<'a> {
    /// The path lies in a read-only virtual directory.
    ReadOnlyMount,
    /// A rule of the `acl` module.
    Rule(Candidate<'a>),
    /// The `account` module, with its reason.
    Account(Decision),
    /// No module had an opinion.
    Default(DefaultDecision),
}

/// A decision with everything that led to it.
#[derive(Debug, Clone)]
pub struct Explanation<'a> {
    pub allowed: bool,
    pub decided_by: Step<'a>,
    /// Every rule that named the account, the operation and the path,
    /// in the order written (empty if `acl` is not in the stack).
    pub candidates: Vec<Candidate<'a>>,
    pub modules: &'a [Module],
}

impl PermissionStack {
    pub fn new(modules: Vec<Module>, default: DefaultDecision, acl: Acl) -> PermissionStack {
        PermissionStack { modules, default, acl }
    }

    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    pub fn default_decision(&self) -> DefaultDecision {
        self.default
    }

    /// The decision and how it came about.
    pub fn explain<'a>(
        &'a self,
        account: &'a Account,
        op: Operation,
        target: &Target<'_>,
    ) -> Explanation<'a> {
        let candidates = if self.modules.contains(&Module::Acl) {
            self.acl.candidates(account, op, target.real_path)
        } else {
            Vec::new()
        };
        let (allowed, decided_by) = self.decide(account, op, target);
        Explanation { allowed, decided_by, candidates, modules: &self.modules }
    }

    fn decide<'a>(&'a self, account: &'a Account, op: Operation, target: &Target<'_>) -> (bool, Step<'a>) {
        if op.modifies() && target.read_only_mount {
            return (false, Step::ReadOnlyMount);
        }
        for module in &self.modules {
            match module {
                Module::Acl => {
                    if let Some(c) = self.acl.decide(account, op, target.real_path) {
                        return (c.allow, Step::Rule(c));
                    }
                }
                Module::Account => {
                    if let Some(d) = account_opinion(account, op, target) {
                        return (d == Decision::Allow, Step::Account(d));
                    }
                }
            }
        }
        (self.default == DefaultDecision::Allow, Step::Default(self.default))
    }
}

impl Permissions for PermissionStack {
    fn check(&self, account: &Account, op: Operation, target: &Target<'_>) -> Decision {
        match self.decide(account, op, target) {
            (true, _) => Decision::Allow,
            (false, step) => Decision::Deny(step.reason(op)),
        }
    }
}

impl Step<'_> {
    /// The reason a log line gives, naming the rule that decided.
    pub fn reason(&self, op: Operation) -> String {
        match self {
            Step::ReadOnlyMount => "read-only virtual directory".to_string(),
            Step::Rule(c) => {
                let verb = if c.allow { "allows" } else { "denies" };
                format!("{} ({}) {verb} {op}", c.rule.origin.label(), c.rule.place)
            }
            Step::Account(Decision::Deny(reason)) => reason.clone(),
            Step::Account(Decision::Allow) => "upload directory".to_string(),
            Step::Default(d) => format!("no rule for {op}; permissions.default = \"{}\"", d.name()),
        }
    }
}

/// Builds the permission stack a server uses from its configuration:
/// compiles every rule (a rule that does not compile is an error naming
/// its file and line, so a reload with a broken rule keeps the old ones).
pub fn build_stack(config: &Config) -> Result<PermissionStack, ConfigError> {
    let mut modules = Vec::new();
    for name in &config.permissions.modules {
        let module = Module::from_name(name).ok_or_else(|| {
            ConfigError(format!(
                "permissions.modules: unknown module `{}`; valid modules: {}",
                name.escape_debug(),
                PERMISSION_MODULES.join(", ")
            ))
        })?;
        if modules.contains(&module) {
            return Err(ConfigError(format!("permissions.modules: module `{name}` is listed twice")));
        }
        modules.push(module);
    }
    let mut rules = Vec::with_capacity(config.acl.rule.len());
    let mut problems = Vec::new();
    for (i, spec) in config.acl.rule.iter().enumerate() {
        match rules::compile(spec, i) {
            Ok(rule) => rules.push(rule),
            Err(errors) => {
                let at = rules::Origin::Config {
                    file: spec
                        .origin
                        .as_ref()
                        .map(|o| o.file.clone())
                        .unwrap_or_else(|| "configuration".into()),
                    line: spec.origin.as_ref().and_then(|o| o.line),
                    index: i,
                };
                for e in errors {
                    problems.push(format!("{at}: acl.rule.{e}"));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError(problems.join("\n")));
    }
    Ok(PermissionStack::new(modules, config.permissions.default, Acl::new(rules)))
}

/// The permissions a server runs with (see the module documentation).
pub fn build_permissions(config: &Config) -> Result<Arc<dyn Permissions>, ConfigError> {
    Ok(Arc::new(build_stack(config)?))
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
            rules: vec![],
            shaping: Default::default(),
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

    fn stack(modules: &[Module], default: DefaultDecision, rules: &[&str]) -> PermissionStack {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, t)| rules::compile(&rules::parse_rule_text(t).unwrap(), i).unwrap())
            .collect();
        PermissionStack::new(modules.to_vec(), default, Acl::new(rules))
    }

    fn at<'a>(vpath: &'a str, real: &'a str, read_only_mount: bool) -> Target<'a> {
        Target { virtual_path: vpath, real_path: Path::new(real), read_only_mount }
    }

    /// Without rules, the default stack answers as `BasicPermissions` for
    /// every operation, account kind and place.
    #[test]
    fn default_stack_without_rules_is_basic_permissions() {
        let stack = build_stack(&Config::default()).unwrap();
        for read_only in [false, true] {
            let a = account(read_only);
            for op in Operation::ALL {
                for (vpath, ro_mount) in [
                    ("/x", false),
                    ("/x", true),
                    ("/incoming/f", false),
                    ("/incoming", false),
                    ("/incoming/f", true),
                ] {
                    let t = at(vpath, "/srv/x", ro_mount);
                    assert_eq!(
                        stack.check(&a, op, &t) == Decision::Allow,
                        BasicPermissions.check(&a, op, &t) == Decision::Allow,
                        "{op} {vpath} read_only={read_only} ro_mount={ro_mount}"
                    );
                }
            }
        }
    }

    #[test]
    fn read_only_mount_is_a_hard_limit() {
        let s = stack(
            &[Module::Acl],
            DefaultDecision::Allow,
            &[r#"who = ["*"], tree = "/srv", allow = ["full"]"#],
        );
        let a = account(false);
        let e = s.explain(&a, Operation::Delete, &at("/ro/f", "/srv/f", true));
        assert!(!e.allowed && matches!(e.decided_by, Step::ReadOnlyMount));
        assert_eq!(e.candidates.len(), 1, "the rule is still shown");
        assert_eq!(s.check(&a, Operation::Read, &at("/ro/f", "/srv/f", true)), Decision::Allow);
    }

    #[test]
    fn module_order_and_default() {
        let allow_write = r#"who = ["anonymous"], tree = "/srv/in", allow = ["write-new", "mkdir"]"#;
        let anon = account(true);
        let write =
            |s: &PermissionStack, v: &str, r: &str| s.check(&anon, Operation::Write, &at(v, r, false));

        // acl first: a rule lets a read-only account upload; elsewhere the account decides.
        let s = stack(&[Module::Acl, Module::Account], DefaultDecision::Allow, &[allow_write]);
        assert_eq!(write(&s, "/in/f", "/srv/in/f"), Decision::Allow);
        assert_eq!(write(&s, "/x/f", "/srv/x/f"), Decision::Deny("read-only account".into()));

        // account first: the account's read-only setting is a hard limit the rules cannot lift.
        let s = stack(&[Module::Account, Module::Acl], DefaultDecision::Allow, &[allow_write]);
        assert_eq!(write(&s, "/in/f", "/srv/in/f"), Decision::Deny("read-only account".into()));
        assert_eq!(write(&s, "/incoming/f", "/srv/incoming/f"), Decision::Allow, "upload dir");

        // Rules only, default deny: a whitelist.
        let s = stack(&[Module::Acl], DefaultDecision::Deny, &[allow_write]);
        let writable = account(false);
        assert_eq!(write(&s, "/in/f", "/srv/in/f"), Decision::Allow);
        let Decision::Deny(reason) = s.check(&writable, Operation::Read, &at("/x", "/srv/x", false)) else {
            panic!("default deny")
        };
        assert_eq!(reason, r#"no rule for read; permissions.default = "deny""#);
    }

    #[test]
    fn deny_reason_names_the_rule() {
        let mut spec =
            rules::parse_rule_text(r#"who = ["*"], path = "/srv/secret", deny = ["read"]"#).unwrap();
        spec.origin = Some(crate::config::SourceLine { file: "ferroftpd.toml".into(), line: Some(7) });
        let mut config = Config::default();
        config.acl.rule.push(spec);
        let s = build_stack(&config).unwrap();
        let Decision::Deny(reason) =
            s.check(&account(false), Operation::Read, &at("/secret", "/srv/secret", false))
        else {
            panic!("denied")
        };
        assert_eq!(reason, r#"rule ferroftpd.toml:7 (path = "/srv/secret") denies read"#);
    }

    #[test]
    fn build_refuses_bad_modules_and_rules() {
        let mut c = Config::default();
        c.permissions.modules = vec!["acl".into(), "acl".into()];
        assert!(build_stack(&c).unwrap_err().0.contains("listed twice"));
        c.permissions.modules = vec!["pam".into()];
        assert!(build_stack(&c).unwrap_err().0.contains("unknown module `pam`"));
        let mut c = Config::default();
        c.acl.rule.push(rules::parse_rule_text(r#"who = ["*"], tree = "/srv", allow = ["nope"]"#).unwrap());
        let e = build_stack(&c).unwrap_err().0;
        assert!(
            e.starts_with("configuration [[acl.rule]] #1: acl.rule.allow: unknown operation `nope`"),
            "{e}"
        );
    }
}
