//! The `acl` permission module: rules from the configuration
//! (`[[acl.rule]]`) and an account's own rules (from the user database),
//! pinned down to one real path and one operation.
//!
//! For an operation on a real path, the rules that name the account, name
//! the operation and match the path compete; the most specific wins
//! ([`Specificity`]: file over pattern over tree, deeper over shallower,
//! user over group over everyone), and at equal specificity a deny beats an
//! allow. A rule that does not name the operation takes no part, so a file
//! rule denying `delete` does not hide the tree rule that allows `read`.
//! When no rule takes part the module has no opinion and the next module
//! (or the default) decides.

use std::path::Path;

use super::op::Operation;
use super::rules::{beats, Rule, Specificity, Subject};
use crate::auth::Account;

/// The rules of one configuration.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<Rule>,
}

/// A rule that takes part in a decision.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub rule: &'a Rule,
    pub specificity: Specificity,
    pub allow: bool,
}

impl Candidate<'_> {
    fn beats(&self, other: &Candidate<'_>) -> bool {
        beats((self.specificity, self.allow), (other.specificity, other.allow))
    }
}

/// The identity the rules see for an account.
pub fn subject(account: &Account) -> Subject<'_> {
    Subject { name: &account.name, groups: &account.groups, anonymous: account.anonymous }
}

impl Acl {
    pub fn new(rules: Vec<Rule>) -> Acl {
        Acl { rules }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every rule that takes part for this account, operation and path, in
    /// the order written (configuration first, then the account's own).
    pub fn candidates<'a>(&'a self, account: &'a Account, op: Operation, real: &Path) -> Vec<Candidate<'a>> {
        let who = subject(account);
        self.rules
            .iter()
            .chain(account.rules.iter())
            .filter_map(|rule| consider(rule, &who, op, real))
            .collect()
    }

    /// The rule that decides, if any takes part.
    pub fn decide<'a>(&'a self, account: &'a Account, op: Operation, real: &Path) -> Option<Candidate<'a>> {
        let who = subject(account);
        let mut best: Option<Candidate<'a>> = None;
        for rule in self.rules.iter().chain(account.rules.iter()) {
            if let Some(c) = consider(rule, &who, op, real) {
                if best.as_ref().is_none_or(|b| c.beats(b)) {
                    best = Some(c);
                }
            }
        }
        best
    }
}

/// The rule as a candidate, if it takes part.
fn consider<'a>(rule: &'a Rule, who: &Subject<'_>, op: Operation, real: &Path) -> Option<Candidate<'a>> {
    // Cheapest test first: listings ask this for every entry.
    let allow = rule.verdict(op)?;
    let rank = rule.who_rank(who)?;
    rule.place.matches(real).then(|| Candidate { rule, specificity: rule.specificity(rank), allow })
}

#[cfg(test)]
mod tests {
    use super::super::rules::compile_user_rule;
    use super::*;
    use crate::config::RuleSpec;
    use std::path::PathBuf;

    fn account(name: &str, groups: &[&str]) -> Account {
        Account {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            anonymous: name == "anonymous",
            root: PathBuf::from("/srv"),
            mounts: vec![],
            initial_dir: "/".into(),
            read_only: false,
            upload_dirs: vec![],
            max_sessions: None,
            module: "test",
            rules: vec![],
            shaping: Default::default(),
        }
    }

    /// A rule from one line of TOML (`who = [...]` included).
    fn rule(text: &str) -> Rule {
        let spec: RuleSpec = super::super::rules::parse_rule_text(text).unwrap();
        super::super::rules::compile(&spec, 0).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    /// Table-driven precedence: each case is a rule set, an account, an
    /// operation on a path, and the expected answer: `Some(true)` allowed
    /// by a rule, `Some(false)` denied, `None` no rule takes part; plus the
    /// index of the deciding rule.
    #[test]
    fn precedence_table() {
        struct Case {
            name: &'static str,
            rules: &'static [&'static str],
            user: (&'static str, &'static [&'static str]),
            op: Operation,
            path: &'static str,
            want: Option<(bool, usize)>,
        }
        use Operation::*;
        let alice = ("alice", &[][..]);
        let staff_bob = ("bob", &["staff"][..]);
        let cases = [
            Case {
                name: "no rule: no opinion",
                rules: &[],
                user: alice,
                op: Read,
                path: "/srv/a",
                want: None,
            },
            Case {
                name: "tree allows below it",
                rules: &[r#"who = ["*"], tree = "/srv/pub", allow = ["read"]"#],
                user: alice,
                op: Read,
                path: "/srv/pub/d/f",
                want: Some((true, 0)),
            },
            Case {
                name: "tree covers the directory itself",
                rules: &[r#"who = ["*"], tree = "/srv/pub", deny = ["list"]"#],
                user: alice,
                op: List,
                path: "/srv/pub",
                want: Some((false, 0)),
            },
            Case {
                name: "rule not naming the operation takes no part",
                rules: &[r#"who = ["*"], tree = "/srv/pub", deny = ["delete"]"#],
                user: alice,
                op: Read,
                path: "/srv/pub/f",
                want: None,
            },
            Case {
                name: "file beats tree",
                rules: &[
                    r#"who = ["*"], tree = "/srv/pub", allow = ["read"]"#,
                    r#"who = ["*"], path = "/srv/pub/secret", deny = ["read"]"#,
                ],
                user: alice,
                op: Read,
                path: "/srv/pub/secret",
                want: Some((false, 1)),
            },
            Case {
                name: "file allow beats tree deny",
                rules: &[
                    r#"who = ["*"], tree = "/srv/pub", deny = ["read"]"#,
                    r#"who = ["*"], path = "/srv/pub/open", allow = ["read"]"#,
                ],
                user: alice,
                op: Read,
                path: "/srv/pub/open",
                want: Some((true, 1)),
            },
            Case {
                name: "path is the thing itself, not below it",
                rules: &[r#"who = ["*"], path = "/srv/pub", deny = ["read"]"#],
                user: alice,
                op: Read,
                path: "/srv/pub/f",
                want: None,
            },
            Case {
                name: "pattern beats tree, even a deeper one",
                rules: &[
                    r#"who = ["*"], pattern = "/srv/pub/*.iso", deny = ["read"]"#,
                    r#"who = ["*"], tree = "/srv/pub/isos", allow = ["read"]"#,
                ],
                user: alice,
                op: Read,
                path: "/srv/pub/isos.iso",
                want: Some((false, 0)),
            },
            Case {
                name: "file beats pattern",
                rules: &[
                    r#"who = ["*"], pattern = "/srv/pub/*.iso", deny = ["read"]"#,
                    r#"who = ["*"], path = "/srv/pub/free.iso", allow = ["read"]"#,
                ],
                user: alice,
                op: Read,
                path: "/srv/pub/free.iso",
                want: Some((true, 1)),
            },
            Case {
                name: "pattern does not reach into subdirectories",
                rules: &[r#"who = ["*"], pattern = "/srv/pub/*.iso", deny = ["read"]"#],
                user: alice,
                op: Read,
                path: "/srv/pub/d/x.iso",
                want: None,
            },
            Case {
                name: "** reaches any depth",
                rules: &[r#"who = ["*"], pattern = "/srv/pub/**/*.iso", deny = ["read"]"#],
                user: alice,
                op: Read,
                path: "/srv/pub/d/e/x.iso",
                want: Some((false, 0)),
            },
            Case {
                name: "deeper tree beats its parent",
                rules: &[
                    r#"who = ["*"], tree = "/srv/pub/in", allow = ["write-new"]"#,
                    r#"who = ["*"], tree = "/srv/pub", deny = ["write-new"]"#,
                ],
                user: alice,
                op: Write,
                path: "/srv/pub/in/f",
                want: Some((true, 0)),
            },
            Case {
                name: "deeper pattern base beats shallower pattern",
                rules: &[
                    r#"who = ["*"], pattern = "/srv/**/*.iso", deny = ["read"]"#,
                    r#"who = ["*"], pattern = "/srv/pub/*.iso", allow = ["read"]"#,
                ],
                user: alice,
                op: Read,
                path: "/srv/pub/x.iso",
                want: Some((true, 1)),
            },
            Case {
                name: "equal specificity: deny beats allow, whatever the order",
                rules: &[
                    r#"who = ["*"], tree = "/srv/pub", deny = ["delete"]"#,
                    r#"who = ["*"], tree = "/srv/pub", allow = ["delete"]"#,
                ],
                user: alice,
                op: Delete,
                path: "/srv/pub/f",
                want: Some((false, 0)),
            },
            Case {
                name: "equal specificity: deny beats allow (deny written second)",
                rules: &[
                    r#"who = ["*"], tree = "/srv/pub", allow = ["delete"]"#,
                    r#"who = ["*"], tree = "/srv/pub", deny = ["delete"]"#,
                ],
                user: alice,
                op: Delete,
                path: "/srv/pub/f",
                want: Some((false, 1)),
            },
            Case {
                name: "full tie: the first rule is named",
                rules: &[
                    r#"who = ["*"], tree = "/srv/pub", allow = ["read"]"#,
                    r#"who = ["*"], tree = "/srv/pub", allow = ["read-only"]"#,
                ],
                user: alice,
                op: Read,
                path: "/srv/pub/f",
                want: Some((true, 0)),
            },
            Case {
                name: "same place: naming the user beats everyone",
                rules: &[
                    r#"who = ["*"], tree = "/srv/pub", deny = ["write-new"]"#,
                    r#"who = ["alice"], tree = "/srv/pub", allow = ["write-new"]"#,
                ],
                user: alice,
                op: Write,
                path: "/srv/pub/f",
                want: Some((true, 1)),
            },
            Case {
                name: "same place: a group beats everyone",
                rules: &[
                    r#"who = ["*"], tree = "/srv/pub", deny = ["read"]"#,
                    r#"who = ["@staff"], tree = "/srv/pub", allow = ["read"]"#,
                ],
                user: staff_bob,
                op: Read,
                path: "/srv/pub/f",
                want: Some((true, 1)),
            },
            Case {
                name: "same place: the user beats the group",
                rules: &[
                    r#"who = ["bob"], tree = "/srv/pub", deny = ["read"]"#,
                    r#"who = ["@staff"], tree = "/srv/pub", allow = ["read"]"#,
                ],
                user: staff_bob,
                op: Read,
                path: "/srv/pub/f",
                want: Some((false, 0)),
            },
            Case {
                name: "the path comes before who: a file rule for everyone beats the user's tree",
                rules: &[
                    r#"who = ["alice"], tree = "/srv", allow = ["full"]"#,
                    r#"who = ["*"], path = "/srv/pub/secret", deny = ["read"]"#,
                ],
                user: alice,
                op: Read,
                path: "/srv/pub/secret",
                want: Some((false, 1)),
            },
            Case {
                name: "rules for others take no part",
                rules: &[r#"who = ["bob", "@admins"], tree = "/srv", deny = ["read"]"#],
                user: alice,
                op: Read,
                path: "/srv/f",
                want: None,
            },
            Case {
                name: "only: allows its set, denies the rest",
                rules: &[r#"who = ["alice"], tree = "/srv/drop", only = ["upload-only"]"#],
                user: alice,
                op: List,
                path: "/srv/drop",
                want: Some((false, 0)),
            },
            Case {
                name: "anonymous keyword",
                rules: &[r#"who = ["anonymous"], tree = "/srv", deny = ["read"]"#],
                user: ("anonymous", &["anonymous"][..]),
                op: Read,
                path: "/srv/f",
                want: Some((false, 0)),
            },
            Case {
                name: "tree is cut at a component boundary",
                rules: &[r#"who = ["*"], tree = "/srv/pub", deny = ["read"]"#],
                user: alice,
                op: Read,
                path: "/srv/public/f",
                want: None,
            },
        ];
        for case in &cases {
            let rules: Vec<Rule> = case.rules.iter().map(|t| rule(t)).collect();
            let acl = Acl::new(rules);
            let account = account(case.user.0, case.user.1);
            let got = acl.decide(&account, case.op, Path::new(case.path)).map(|c| {
                let index = acl.rules().iter().position(|r| std::ptr::eq(r, c.rule)).unwrap();
                (c.allow, index)
            });
            assert_eq!(got, case.want, "case: {}", case.name);
        }
    }

    #[test]
    fn own_rules_join_the_contest_as_naming_the_user() {
        let acl = Acl::new(vec![rule(r#"who = ["*"], tree = "/srv/drop", deny = ["write-new"]"#)]);
        let mut bob = account("bob", &[]);
        assert_eq!(
            acl.decide(&bob, Operation::Write, Path::new("/srv/drop/f")).map(|c| c.allow),
            Some(false)
        );
        bob.rules =
            vec![compile_user_rule(r#"tree = "/srv/drop", allow = ["write-new"]"#, "bob", 0).unwrap()];
        let c = acl.decide(&bob, Operation::Write, Path::new("/srv/drop/f")).unwrap();
        assert!(c.allow);
        assert_eq!(c.rule.origin.to_string(), "`bob`'s own rule #1");
        // Another account does not see bob's rules.
        let alice = account("alice", &[]);
        assert_eq!(
            acl.decide(&alice, Operation::Write, Path::new("/srv/drop/f")).map(|c| c.allow),
            Some(false)
        );
        assert_eq!(acl.candidates(&bob, Operation::Write, Path::new("/srv/drop/f")).len(), 2);
    }
}
