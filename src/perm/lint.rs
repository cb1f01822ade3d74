//! Finding rules that can never decide anything, for `check-config`: rules
//! that can never match (nobody they name exists, no account they name can
//! reach their place, operations that do not apply to what the place is,
//! `acl` left out of the stack) and rules shadowed by another rule.
//!
//! Every finding is certain, never a guess: shadowing is reported only
//! between rules on the same place, where precedence is plain (a wider
//! rule may also cover a narrower one, but proving it needs more than
//! string comparison, and a false alarm teaches people to ignore the tool).

use std::path::PathBuf;

use super::op::{OpSet, Operation};
use super::rules::{Place, Rule, Who};
use super::{Module, PermissionStack};
use crate::auth::Account;

/// What is wrong with a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The rule (or some of it) can never match.
    NeverMatches,
    /// Another rule always decides in its place.
    Shadowed,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::NeverMatches => "rule can never match",
            Kind::Shadowed => "rule is shadowed",
        }
    }
}

/// One finding about one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where the rule was written (see [`super::rules::Origin`]).
    pub rule: String,
    pub kind: Kind,
    pub message: String,
}

/// The accounts that can log in, when they are known (the anonymous
/// account and every user of the database); `None` skips the checks that
/// need them.
pub fn lint(stack: &PermissionStack, accounts: Option<&[Account]>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let own: Vec<&Rule> = accounts.unwrap_or_default().iter().flat_map(|a| a.rules.iter()).collect();
    let rules: Vec<&Rule> = stack.acl().rules().iter().chain(own).collect();
    if !stack.modules().contains(&Module::Acl) {
        for r in &rules {
            findings.push(Finding {
                rule: r.origin.to_string(),
                kind: Kind::NeverMatches,
                message: "permissions.modules does not list `acl`: no rule is consulted".into(),
            });
        }
        return findings;
    }
    for (i, r) in rules.iter().enumerate() {
        let mut push =
            |kind, message: String| findings.push(Finding { rule: r.origin.to_string(), kind, message });
        if let Some(accounts) = accounts {
            who_and_reach(r, accounts, &mut push);
            account_first(stack, r, accounts, &mut push);
        }
        kind_of_place(r, &mut push);
        shadowing(r, &rules[..i], &rules[i + 1..], &mut push);
    }
    findings
}

/// The accounts a rule names; a user's own rules name their user.
fn named<'a>(rule: &Rule, accounts: &'a [Account]) -> Vec<&'a Account> {
    accounts.iter().filter(|a| rule.who_rank(&super::acl::subject(a)).is_some()).collect()
}

fn who_and_reach(rule: &Rule, accounts: &[Account], push: &mut impl FnMut(Kind, String)) {
    let dead: Vec<String> = rule
        .who
        .iter()
        .filter(|w| !accounts.iter().any(|a| w.matches(&super::acl::subject(a))))
        .map(|w| match w {
            Who::User(u) if u == "ftp" => "`ftp` (anonymous logins are matched by `anonymous`)".to_string(),
            Who::Anonymous => "`anonymous` (the anonymous module is not in auth.chain)".to_string(),
            Who::Group(g) => format!("`@{g}` (no account has this group)"),
            other => format!("`{other}` (no such account)"),
        })
        .collect();
    let named = named(rule, accounts);
    if named.is_empty() {
        let why = if dead.is_empty() { "nobody".to_string() } else { dead.join(", ") };
        push(Kind::NeverMatches, format!("who names no account that can log in: {why}"));
        return;
    }
    if !dead.is_empty() {
        push(Kind::NeverMatches, format!("who entries that match no account: {}", dead.join(", ")));
    }
    let reachable = named.iter().any(|a| real_dirs(a).iter().any(|d| rule.place.reaches(d)));
    if !reachable {
        let dirs: Vec<String> =
            named.iter().flat_map(|a| real_dirs(a)).map(|d| d.display().to_string()).collect();
        push(
            Kind::NeverMatches,
            format!(
                "{} lies outside every directory its accounts can reach ({})",
                rule.place,
                dedup(dirs).join(", ")
            ),
        );
    }
}

/// With `account` before `acl`, a read-only account's changes are decided
/// by the account: rules allowing them changes never decide.
fn account_first(
    stack: &PermissionStack,
    rule: &Rule,
    accounts: &[Account],
    push: &mut impl FnMut(Kind, String),
) {
    let position = |m| stack.modules().iter().position(|x| *x == m);
    let (Some(account), Some(acl)) = (position(Module::Account), position(Module::Acl)) else { return };
    let named = named(rule, accounts);
    if account > acl || named.is_empty() || !named.iter().all(|a| a.read_only) {
        return;
    }
    let modifying: OpSet = rule.allow.union(rule.deny).iter().filter(|op| op.modifies()).collect();
    if !modifying.is_empty() {
        push(
            Kind::Shadowed,
            format!(
                "by the `account` module, listed before `acl`: the read-only accounts it names are \
                 refused (or, in upload directories, granted) {modifying} before the rules are asked"
            ),
        );
    }
}

/// Operations that do not apply to what an existing exact path is.
fn kind_of_place(rule: &Rule, push: &mut impl FnMut(Kind, String)) {
    let Place::Exact(path) = &rule.place else { return };
    let Ok(meta) = std::fs::metadata(path) else { return };
    let (what, ops): (&str, &[Operation]) = if meta.is_dir() {
        ("a directory", &[Operation::Read, Operation::Write, Operation::Overwrite, Operation::Append])
    } else {
        ("a file", &[Operation::List, Operation::ChangeDir, Operation::RemoveDir, Operation::RenameTo])
    };
    let named = rule.allow.union(rule.deny);
    let useless: OpSet = ops.iter().copied().filter(|op| named.contains(*op)).collect();
    // `only` and shorthands name many operations at once: only a rule that
    // names nothing else is worth a warning.
    if !useless.is_empty() && useless == named {
        push(
            Kind::NeverMatches,
            format!(
                "{} is {what}: {useless} never apply to it{}",
                path.display(),
                if meta.is_dir() { " (use tree or pattern for what is inside)" } else { "" }
            ),
        );
    }
}

/// Another rule on the same place that names at least everyone this one
/// names decides every operation this one names (or some of them).
fn shadowing(rule: &Rule, earlier: &[&Rule], later: &[&Rule], push: &mut impl FnMut(Kind, String)) {
    let who = who_set(rule);
    let mut shadowed = OpSet::EMPTY;
    let mut by = Vec::new();
    for (other, is_earlier) in earlier.iter().map(|r| (r, true)).chain(later.iter().map(|r| (r, false))) {
        if other.place != rule.place || !who.iter().all(|w| who_set(other).contains(w)) {
            continue;
        }
        let mut here = OpSet::EMPTY;
        for op in rule.allow.union(rule.deny).iter() {
            let (Some(mine), Some(theirs)) = (rule.verdict(op), other.verdict(op)) else { continue };
            // A deny beats an allow at equal specificity; a full tie goes
            // to the rule written first. Naming more people can only make
            // the other rule more specific for someone, never less.
            if (mine && !theirs) || (mine == theirs && is_earlier) {
                here.insert(op);
            }
        }
        if !here.is_empty() {
            shadowed = shadowed.union(here);
            by.push(format!("{} ({here})", other.origin));
        }
    }
    if shadowed.is_empty() {
        return;
    }
    let all = rule.allow.union(rule.deny);
    let what = if shadowed == all {
        "it never decides anything".to_string()
    } else {
        format!("it never decides {shadowed}")
    };
    push(Kind::Shadowed, format!("{what}: same place, decided by {}", by.join(", ")));
}

/// The `who` entries; a user's own rule names its user.
fn who_set(rule: &Rule) -> Vec<Who> {
    if rule.who.is_empty() {
        if let super::rules::Origin::User { user, .. } = &rule.origin {
            return vec![Who::User(user.clone())];
        }
    }
    rule.who.clone()
}

/// The real directories an account can reach: its root and its mounts.
fn real_dirs(account: &Account) -> Vec<PathBuf> {
    std::iter::once(&account.root)
        .chain(account.mounts.iter().map(|m| &m.real_path))
        .map(|p| super::rules::soft_canonicalize(&std::path::absolute(p).unwrap_or_else(|_| p.clone())))
        .collect()
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::acl::Acl;
    use super::super::rules::{compile, compile_user_rule, parse_rule_text};
    use super::*;
    use crate::config::DefaultDecision;
    use crate::vfs::MountSpec;
    use std::path::Path;

    fn stack(modules: &[Module], rules: &[String]) -> PermissionStack {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, t)| compile(&parse_rule_text(t).unwrap(), i).unwrap())
            .collect();
        PermissionStack::new(modules.to_vec(), DefaultDecision::Allow, Acl::new(rules))
    }

    fn account(name: &str, root: &Path, groups: &[&str]) -> Account {
        Account {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            anonymous: name == "anonymous",
            root: root.to_path_buf(),
            mounts: vec![],
            initial_dir: "/".into(),
            read_only: name == "anonymous",
            upload_dirs: vec![],
            max_sessions: None,
            module: "test",
            rules: vec![],
            shaping: Default::default(),
        }
    }

    fn messages(findings: &[Finding]) -> Vec<String> {
        findings.iter().map(|f| format!("{}: {}: {}", f.rule, f.kind.label(), f.message)).collect()
    }

    #[test]
    fn never_matching_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        for d in ["anon", "alice", "shared", "other"] {
            std::fs::create_dir(base.join(d)).unwrap();
        }
        std::fs::write(base.join("alice/file.txt"), "x").unwrap();
        let b = |p: &str| base.join(p).display().to_string();
        let rules = [
            format!(r#"who = ["*"], tree = "{}", allow = ["read"]"#, b("anon")), // 1: fine
            format!(r#"who = ["bob"], tree = "{}", allow = ["read"]"#, b("alice")), // 2: nobody
            format!(r#"who = ["alice", "ftp"], tree = "{}", allow = ["read"]"#, b("alice")), // 3: dead token
            format!(r#"who = ["alice"], tree = "{}", allow = ["read"]"#, b("other")), // 4: unreachable
            format!(r#"who = ["alice"], tree = "{}", allow = ["read"]"#, b("shared/x")), // 5: via mount
            format!(r#"who = ["@staff"], path = "{}", deny = ["list", "chdir"]"#, b("alice/file.txt")), // 6
            format!(r#"who = ["alice"], path = "{}", deny = ["read"]"#, b("alice")), // 7: dir
            format!(r#"who = ["*"], tree = "{}", allow = ["read"]"#, base.display()), // 8: tree above roots
            format!(r#"who = ["*"], pattern = "{}/*/x/*.iso", deny = ["read"]"#, base.display()), // 9: fine
            format!(r#"who = ["*"], pattern = "{}/*.iso", deny = ["read"]"#, base.display()), // 10: too shallow
        ];
        let s = stack(&[Module::Acl, Module::Account], &rules);
        let mut alice = account("alice", &base.join("alice"), &["staff"]);
        alice.mounts = vec![MountSpec {
            virtual_path: "/shared".into(),
            real_path: base.join("shared"),
            read_only: false,
        }];
        let accounts = [account("anonymous", &base.join("anon"), &["anonymous"]), alice];
        let found = messages(&lint(&s, Some(&accounts)));
        let has = |n: usize, text: &str| {
            assert!(
                found.iter().any(|f| f.starts_with(&format!("configuration [[acl.rule]] #{n}: ")) && f.contains(text)),
                "rule {n}: want {text:?} in {found:#?}"
            )
        };
        has(2, "who names no account that can log in: `bob` (no such account)");
        has(3, "`ftp` (anonymous logins are matched by `anonymous`)");
        has(4, "lies outside every directory its accounts can reach");
        has(6, "is a file: list, chdir never apply to it");
        has(7, "is a directory: read never apply to it");
        has(10, "lies outside every directory");
        assert_eq!(found.len(), 6, "{found:#?}");

        // Without the account list, only what the rules show by themselves.
        let found = messages(&lint(&s, None));
        assert_eq!(found.len(), 2, "{found:#?}");

        // `acl` left out: every rule is dead.
        let s = stack(&[Module::Account], &rules[..2]);
        let found = messages(&lint(&s, Some(&accounts)));
        assert_eq!(found.len(), 2);
        assert!(found[0].contains("does not list `acl`"), "{found:?}");
    }

    #[test]
    fn shadowed_rules() {
        let rules = [
            r#"who = ["*"], tree = "/srv/pub", deny = ["delete"]"#, // 1: alice goes to 4, others to 1
            r#"who = ["*"], tree = "/srv/pub", allow = ["delete", "read"]"#, // 2: delete shadowed by 1
            r#"who = ["alice"], tree = "/srv/pub", allow = ["delete"]"#, // 3: user beats * : fine
            r#"who = ["*", "alice"], tree = "/srv/pub", deny = ["delete"]"#, // 4: not shadowed by 1 (names alice)
            r#"who = ["*"], tree = "/srv/pub/x", allow = ["delete"]"#,       // 5: other place: fine
            r#"who = ["alice"], tree = "/srv/pub", allow = ["delete"]"#,     // 6: duplicate of 3
        ]
        .map(String::from);
        let s = stack(&[Module::Acl, Module::Account], &rules);
        let found = messages(&lint(&s, None));
        assert_eq!(
            found,
            [
                "configuration [[acl.rule]] #2: rule is shadowed: it never decides delete: same place, decided \
                 by configuration [[acl.rule]] #1 (delete), configuration [[acl.rule]] #4 (delete)",
                "configuration [[acl.rule]] #3: rule is shadowed: it never decides anything: same place, \
                 decided by configuration [[acl.rule]] #4 (delete)",
                "configuration [[acl.rule]] #6: rule is shadowed: it never decides anything: same place, \
                 decided by configuration [[acl.rule]] #3 (delete), configuration [[acl.rule]] #4 (delete)",
            ],
        );
    }

    #[test]
    fn own_rules_and_account_first() {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        let drop = base.join("drop").display().to_string();
        let rules = [format!(r#"who = ["bob"], tree = "{drop}", deny = ["write-new"]"#)];
        let mut bob = account("bob", &base, &[]);
        bob.rules =
            vec![compile_user_rule(&format!(r#"tree = "{drop}", allow = ["write-new"]"#), "bob", 0).unwrap()];
        let accounts = [bob];
        let found = messages(&lint(&stack(&[Module::Acl, Module::Account], &rules), Some(&accounts)));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("`bob`'s own rule #1: rule is shadowed: it never decides anything"),
            "{found:?}"
        );

        let anon_rule = [format!(r#"who = ["anonymous"], tree = "{drop}", allow = ["write-new", "read"]"#)];
        let anon = [account("anonymous", &base, &["anonymous"])];
        let found = messages(&lint(&stack(&[Module::Account, Module::Acl], &anon_rule), Some(&anon)));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("by the `account` module, listed before `acl`"), "{found:?}");
        assert!(lint(&stack(&[Module::Acl, Module::Account], &anon_rule), Some(&anon)).is_empty());
    }
}
