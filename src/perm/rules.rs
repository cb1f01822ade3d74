//! ACL rules: checking and compiling what an administrator wrote
//! ([`RuleSpec`]) into a [`Rule`] that answers quickly, and the precedence
//! between rules ([`Specificity`]).
//!
//! A leaf module (it knows nothing of accounts or sessions), so the
//! configuration loader can use it to report a bad rule at its line, and
//! the user database can compile a user's own rules at login.
//!
//! Rules name *real* paths, canonicalised once here: a rule protects a
//! directory whichever virtual directory a client reaches it through, and
//! `/srv/ftp` written through a symlink still matches what the server sees.
//! The part of a path that does not exist yet (a file to be uploaded) is
//! kept as written below its longest existing ancestor.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::op::{OpSet, Operation};
use crate::config::{RuleSpec, SourceLine};

/// A compiled rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Empty only for a user's own rules, which name that user.
    pub who: Vec<Who>,
    pub place: Place,
    pub allow: OpSet,
    pub deny: OpSet,
    pub origin: Origin,
}

/// Whom a rule is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    /// `*`.
    Everyone,
    /// `anonymous`: accounts of the anonymous module (whatever name they
    /// logged in with).
    Anonymous,
    /// `@name`.
    Group(String),
    /// A user name.
    User(String),
}

/// How closely a `who` entry names an account: a rule naming the user
/// beats one naming a group, which beats `*`, at equal path specificity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WhoRank {
    Everyone,
    Group,
    User,
}

impl Who {
    fn parse(text: &str) -> Result<Who, String> {
        let bad = |what: &str| {
            Err(format!(
                "`{}` {what}\n = write a user name, `@group`, `anonymous` or `*`",
                text.escape_debug()
            ))
        };
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("is empty or has spaces or control characters");
        }
        match text {
            "*" => Ok(Who::Everyone),
            "anonymous" => Ok(Who::Anonymous),
            _ if text.contains(['*', '?']) => bad("has a wildcard, which `who` does not take"),
            _ => match text.strip_prefix('@') {
                Some("") => bad("names no group"),
                Some(group) => Ok(Who::Group(group.to_string())),
                None => Ok(Who::User(text.to_string())),
            },
        }
    }

    pub fn rank(&self) -> WhoRank {
        match self {
            Who::Everyone => WhoRank::Everyone,
            Who::Group(_) => WhoRank::Group,
            Who::User(_) | Who::Anonymous => WhoRank::User,
        }
    }

    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        match self {
            Who::Everyone => true,
            Who::Anonymous => subject.anonymous,
            Who::Group(g) => subject.groups.iter().any(|s| s == g),
            Who::User(u) => !subject.anonymous && subject.name == u,
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Everyone => f.write_str("*"),
            Who::Anonymous => f.write_str("anonymous"),
            Who::Group(g) => write!(f, "@{g}"),
            Who::User(u) => f.write_str(u),
        }
    }
}

/// The identity a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub groups: &'a [String],
    pub anonymous: bool,
}

/// Where a rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `path`: this file or directory itself.
    Exact(PathBuf),
    /// `tree`: this directory and everything below it.
    Tree(PathBuf),
    /// `pattern`: paths below `base` whose remaining components match.
    Pattern { base: PathBuf, segments: Vec<Segment> },
}

/// One component of a pattern after its literal base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `**`: any number of components, none included.
    AnyDepth,
    /// A name with `*` (any characters) and `?` (one character).
    Glob(String),
}

/// Which kind of place, in increasing precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlaceKind {
    Tree,
    Pattern,
    Exact,
}

impl PlaceKind {
    pub fn key(self) -> &'static str {
        match self {
            PlaceKind::Tree => "tree",
            PlaceKind::Pattern => "pattern",
            PlaceKind::Exact => "path",
        }
    }
}

/// Precedence between matching rules, compared in field order: the kind
/// of place (file over pattern over tree), then how deep its directory is
/// (a tree below another beats it), then how closely `who` names the
/// account. At equal specificity a deny beats an allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Specificity {
    pub kind: PlaceKind,
    /// Components in the path, the tree, or the pattern's literal base.
    pub depth: usize,
    pub who: WhoRank,
}

impl fmt::Display for Specificity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.who {
            WhoRank::Everyone => "everyone",
            WhoRank::Group => "a group",
            WhoRank::User => "the user",
        };
        write!(f, "{} at depth {}, naming {who}", self.kind.key(), self.depth)
    }
}

impl Place {
    pub fn kind(&self) -> PlaceKind {
        match self {
            Place::Exact(_) => PlaceKind::Exact,
            Place::Tree(_) => PlaceKind::Tree,
            Place::Pattern { .. } => PlaceKind::Pattern,
        }
    }

    /// The literal directory or path the place starts from.
    pub fn anchor(&self) -> &Path {
        match self {
            Place::Exact(p) | Place::Tree(p) => p,
            Place::Pattern { base, .. } => base,
        }
    }

    pub fn depth(&self) -> usize {
        self.anchor().components().count()
    }

    pub fn matches(&self, real: &Path) -> bool {
        match self {
            Place::Exact(p) => real == p,
            Place::Tree(p) => real.starts_with(p),
            Place::Pattern { base, segments } => match real.strip_prefix(base) {
                Ok(rest) => {
                    let names: Vec<std::borrow::Cow<'_, str>> =
                        rest.components().map(|c| c.as_os_str().to_string_lossy()).collect();
                    segments_match(segments, &names)
                }
                Err(_) => false,
            },
        }
    }

    /// Whether the place can match `dir` or something below it.
    pub fn reaches(&self, dir: &Path) -> bool {
        match self {
            Place::Exact(p) => p.starts_with(dir),
            Place::Tree(p) => p.starts_with(dir) || dir.starts_with(p),
            Place::Pattern { base, segments } => {
                if base.starts_with(dir) {
                    return true;
                }
                match dir.strip_prefix(base) {
                    Ok(rest) => {
                        let names: Vec<std::borrow::Cow<'_, str>> =
                            rest.components().map(|c| c.as_os_str().to_string_lossy()).collect();
                        segments_prefix_match(segments, &names)
                    }
                    Err(_) => false,
                }
            }
        }
    }

    /// True if the pattern's wildcards span directories (`**`).
    pub fn is_recursive(&self) -> bool {
        matches!(self, Place::Pattern { segments, .. } if segments.contains(&Segment::AnyDepth))
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Exact(p) => write!(f, "path = {:?}", p.display().to_string()),
            Place::Tree(p) => write!(f, "tree = {:?}", p.display().to_string()),
            Place::Pattern { base, segments } => {
                let mut text = base.display().to_string();
                for s in segments {
                    if !text.ends_with('/') {
                        text.push('/');
                    }
                    match s {
                        Segment::AnyDepth => text.push_str("**"),
                        Segment::Glob(g) => text.push_str(g),
                    }
                }
                write!(f, "pattern = {text:?}")
            }
        }
    }
}

/// Where a rule was written, for explanations and log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `[[acl.rule]]` number `index` (0-based) of a configuration file.
    Config { file: PathBuf, line: Option<usize>, index: usize },
    /// Rule number `index` (0-based) of a user's own rules in the database.
    User { user: String, index: usize },
}

impl Origin {
    fn from_spec(spec: &RuleSpec, index: usize) -> Origin {
        match &spec.origin {
            Some(SourceLine { file, line }) => Origin::Config { file: file.clone(), line: *line, index },
            None => Origin::Config { file: PathBuf::from("configuration"), line: None, index },
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Config { file, line: Some(line), .. } => write!(f, "{}:{line}", file.display()),
            Origin::Config { file, line: None, index } => {
                write!(f, "{} [[acl.rule]] #{}", file.display(), index + 1)
            }
            Origin::User { user, index } => write!(f, "`{user}`'s own rule #{}", index + 1),
        }
    }
}

impl Origin {
    /// The origin as the subject of a sentence: "rule FILE:LINE" or
    /// "`alice`'s own rule #1 (user database)".
    pub fn label(&self) -> String {
        match self {
            Origin::Config { .. } => format!("rule {self}"),
            Origin::User { .. } => format!("{self} (user database)"),
        }
    }
}

impl Rule {
    /// The decision this rule gives for `op`, if it names it.
    pub fn verdict(&self, op: Operation) -> Option<bool> {
        if self.deny.contains(op) {
            Some(false)
        } else if self.allow.contains(op) {
            Some(true)
        } else {
            None
        }
    }

    /// The closest way `who` names the subject; `None` if it does not.
    /// A user's own rules (empty `who`) always name their user.
    pub fn who_rank(&self, subject: &Subject<'_>) -> Option<WhoRank> {
        if self.who.is_empty() {
            return Some(WhoRank::User);
        }
        self.who.iter().filter(|w| w.matches(subject)).map(Who::rank).max()
    }

    /// The rule's precedence for a subject it names.
    pub fn specificity(&self, who: WhoRank) -> Specificity {
        Specificity { kind: self.place.kind(), depth: self.place.depth(), who }
    }

    /// The rule as one line of TOML-like text.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if !self.who.is_empty() {
            let who: Vec<String> = self.who.iter().map(|w| format!("{:?}", w.to_string())).collect();
            out.push_str(&format!("who = [{}], ", who.join(", ")));
        }
        out.push_str(&self.place.to_string());
        if !self.allow.is_empty() && self.allow.union(self.deny) == OpSet::all() {
            out.push_str(&format!(", only = [{}]", self.allow));
            return out;
        }
        if !self.allow.is_empty() {
            out.push_str(&format!(", allow = [{}]", self.allow));
        }
        if !self.deny.is_empty() {
            out.push_str(&format!(", deny = [{}]", self.deny));
        }
        out
    }
}

/// Whether `a` beats `b` for the same operation: more specific, or equally
/// specific and a deny against an allow. A full tie keeps the earlier rule.
pub fn beats(a: (Specificity, bool), b: (Specificity, bool)) -> bool {
    match a.0.cmp(&b.0) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => !a.1 && b.1,
    }
}

/// A problem with one rule: which key, which element of its array (if
/// any), and what to write instead (hints after the first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub key: &'static str,
    pub item: Option<usize>,
    pub message: String,
}

impl RuleError {
    fn new(key: &'static str, message: impl Into<String>) -> RuleError {
        RuleError { key, item: None, message: message.into() }
    }

    fn at(key: &'static str, item: usize, message: impl Into<String>) -> RuleError {
        RuleError { key, item: Some(item), message: message.into() }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message.replace("\n = ", "; "))
    }
}

/// Compiles `[[acl.rule]]` number `index` of a configuration.
pub fn compile(spec: &RuleSpec, index: usize) -> Result<Rule, Vec<RuleError>> {
    let origin = Origin::from_spec(spec, index);
    let mut errors = Vec::new();
    let mut who = Vec::new();
    if spec.who.is_empty() {
        errors.push(RuleError::new(
            "who",
            "the rule names nobody\n = write, for example: who = [\"alice\", \"@staff\", \"anonymous\", \"*\"]",
        ));
    }
    for (i, text) in spec.who.iter().enumerate() {
        match Who::parse(text) {
            Ok(w) if who.contains(&w) => {
                errors.push(RuleError::at("who", i, format!("`{w}` is listed twice")))
            }
            Ok(w) => who.push(w),
            Err(e) => errors.push(RuleError::at("who", i, e)),
        }
    }
    compile_rest(spec, who, origin, errors)
}

/// Compiles rule `index` of `user`'s own rules, written as a TOML inline
/// table (`{ tree = "/srv/x", allow = ["read"] }`; the braces may be left
/// out). Paths must be absolute: there is no file to be relative to.
pub fn compile_user_rule(text: &str, user: &str, index: usize) -> Result<Rule, String> {
    let spec = parse_rule_text(text)?;
    if !spec.who.is_empty() {
        return Err("a user's own rules apply to that user only: leave out `who`".to_string());
    }
    for p in [&spec.path, &spec.tree, &spec.pattern].into_iter().flatten() {
        if !p.starts_with('/') {
            return Err(format!("`{}` must be an absolute real path", p.escape_debug()));
        }
    }
    let origin = Origin::User { user: user.to_string(), index };
    compile_rest(&spec, Vec::new(), origin, Vec::new())
        .map_err(|errors| errors.iter().map(RuleError::to_string).collect::<Vec<_>>().join("; "))
}

/// Parses one rule written as a TOML inline table, braces optional.
pub fn parse_rule_text(text: &str) -> Result<RuleSpec, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wrapper {
        rule: RuleSpec,
    }
    let text = text.trim();
    let inline = if text.starts_with('{') { text.to_string() } else { format!("{{ {text} }}") };
    if inline.contains(['\n', '\r']) {
        return Err("write the rule on one line".to_string());
    }
    toml::from_str::<Wrapper>(&format!("rule = {inline}")).map(|w| w.rule).map_err(|e| {
        format!(
            "not a rule ({}); write, for example: {{ tree = \"/srv/ftp/pub\", allow = [\"read-only\"] }}",
            e.message().trim()
        )
    })
}

fn compile_rest(
    spec: &RuleSpec,
    who: Vec<Who>,
    origin: Origin,
    mut errors: Vec<RuleError>,
) -> Result<Rule, Vec<RuleError>> {
    let place = match (&spec.path, &spec.tree, &spec.pattern) {
        (Some(p), None, None) => compile_exact(p).map_err(|e| RuleError::new("path", e)),
        (None, Some(t), None) => compile_tree(t).map_err(|e| RuleError::new("tree", e)),
        (None, None, Some(p)) => compile_pattern(p).map_err(|e| RuleError::new("pattern", e)),
        (None, None, None) => Err(RuleError::new(
            "path",
            "the rule names no place\n = write one of: path = \"/srv/ftp/file\" (that file or directory \
             itself), tree = \"/srv/ftp/pub\" (it and everything below), pattern = \"/srv/ftp/pub/*.iso\"",
        )),
        _ => Err(RuleError::new(
            if spec.pattern.is_some() { "pattern" } else { "tree" },
            "a rule takes one of `path`, `tree` and `pattern`\n = write one rule per place",
        )),
    };
    let allow = op_list("allow", &spec.allow, &mut errors);
    let deny = op_list("deny", &spec.deny, &mut errors);
    let only = op_list("only", &spec.only, &mut errors);
    let (allow, deny) = if spec.only.is_empty() {
        (allow, deny)
    } else {
        if !spec.allow.is_empty() || !spec.deny.is_empty() {
            errors.push(RuleError::new(
                "only",
                "`only` allows its operations and denies all others: it cannot be combined with \
                 `allow` or `deny`\n = keep `only`, or write the rule with `allow` and `deny`",
            ));
        }
        (only, OpSet::all().difference(only))
    };
    let both = allow.intersection(deny);
    if !both.is_empty() && spec.only.is_empty() {
        errors.push(RuleError::new(
            "deny",
            format!("{both} both allowed and denied by the same rule\n = list each operation once"),
        ));
    }
    if allow.is_empty() && deny.is_empty() && spec.only.is_empty() && errors.is_empty() {
        errors.push(RuleError::new(
            "allow",
            "the rule allows and denies nothing\n = write, for example: allow = [\"read-only\"] or deny = [\"delete\"]",
        ));
    }
    match place {
        Ok(place) if errors.is_empty() => Ok(Rule { who, place, allow, deny, origin }),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.insert(0, e);
            Err(errors)
        }
    }
}

fn op_list(key: &'static str, names: &[String], errors: &mut Vec<RuleError>) -> OpSet {
    let mut set = OpSet::EMPTY;
    for (i, name) in names.iter().enumerate() {
        match OpSet::from_name(name) {
            Some(ops) => set = set.union(ops),
            None => {
                let valid = OpSet::names();
                let mut message = format!(
                    "unknown operation `{}`\n = valid operations: {}",
                    name.escape_debug(),
                    valid.join(", ")
                );
                if let Some(guess) = crate::config::load::closest(name, &valid) {
                    message.push_str(&format!("\n = did you mean `{guess}`?"));
                }
                errors.push(RuleError::at(key, i, message));
            }
        }
    }
    set
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

fn compile_exact(text: &str) -> Result<Place, String> {
    if text.len() > 1 && text.ends_with('/') {
        return Err(format!(
            "`{}` ends with `/`: `path` is the file or directory itself\n = for it and everything \
             below, write: tree = {:?}",
            text.escape_debug(),
            text.trim_end_matches('/')
        ));
    }
    if has_glob(text) {
        return Err(format!("`{}` has wildcards\n = write: pattern = {text:?}", text.escape_debug()));
    }
    Ok(Place::Exact(real_path(text)?))
}

fn compile_tree(text: &str) -> Result<Place, String> {
    if has_glob(text) {
        return Err(format!("`{}` has wildcards\n = write: pattern = {text:?}", text.escape_debug()));
    }
    Ok(Place::Tree(real_path(text)?))
}

fn compile_pattern(text: &str) -> Result<Place, String> {
    let path = Path::new(text);
    let mut base = PathBuf::new();
    let mut segments = Vec::new();
    for c in path.components() {
        let name = c.as_os_str().to_string_lossy();
        if segments.is_empty() && !has_glob(&name) {
            base.push(c.as_os_str());
            continue;
        }
        match c {
            Component::Normal(_) if name == "**" => segments.push(Segment::AnyDepth),
            Component::Normal(_) if name.contains("**") => {
                return Err(format!(
                    "`{}`: `**` must be a whole name between slashes\n = write, for example: \
                     pattern = \"/srv/ftp/**/*.iso\"",
                    text.escape_debug()
                ))
            }
            Component::Normal(_) => segments.push(Segment::Glob(name.into_owned())),
            _ => return Err(format!("`{}`: `.` and `..` cannot follow a wildcard", text.escape_debug())),
        }
    }
    if segments.is_empty() {
        return Err(format!(
            "`{}` has no wildcard (`*`, `?`)\n = write path = {text:?} for the thing itself, or \
             tree = {text:?} for it and everything below",
            text.escape_debug()
        ));
    }
    let base = real_path(&base.to_string_lossy())?;
    Ok(Place::Pattern { base, segments })
}

/// An absolute, canonical real path: made absolute against the working
/// directory (the loader has already joined the config file's directory),
/// then its longest existing ancestor canonicalised.
fn real_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("the path is empty\n = write an absolute real path such as \"/srv/ftp/pub\"".into());
    }
    if text.contains(['\0', '\n', '\r']) {
        return Err("the path contains NUL, CR or LF".into());
    }
    let path = Path::new(text);
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "`{}` contains `..`\n = write the path without `..`, as it is on disk",
            text.escape_debug()
        ));
    }
    let absolute = std::path::absolute(path).map_err(|e| format!("`{}`: {e}", text.escape_debug()))?;
    Ok(soft_canonicalize(&absolute))
}

/// Canonicalises the longest existing ancestor of an absolute path and
/// appends the rest as written (`.` components dropped).
pub fn soft_canonicalize(path: &Path) -> PathBuf {
    let clean: PathBuf = path.components().filter(|c| !matches!(c, Component::CurDir)).collect();
    let mut existing = clean.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(existing) {
            let mut out = canonical;
            for name in rest.iter().rev() {
                out.push(name);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return clean,
        }
    }
}

/// Matches path components against pattern segments (dynamic programming
/// over both, so several `**` stay linear in their product).
fn segments_match<S: AsRef<str>>(segments: &[Segment], names: &[S]) -> bool {
    // ok[j]: segments[..i] match names[..j].
    let mut ok = vec![false; names.len() + 1];
    ok[0] = true;
    for seg in segments {
        let mut next = vec![false; names.len() + 1];
        match seg {
            Segment::AnyDepth => {
                let mut reachable = false;
                for j in 0..=names.len() {
                    reachable |= ok[j];
                    next[j] = reachable;
                }
            }
            Segment::Glob(g) => {
                for j in 0..names.len() {
                    if ok[j] && crate::vfs::path::glob_match(g, names[j].as_ref()) {
                        next[j + 1] = true;
                    }
                }
            }
        }
        ok = next;
    }
    ok[names.len()]
}

/// Whether `names` can begin a path the segments match (more names may
/// follow): some state of the matcher is still alive after them.
fn segments_prefix_match<S: AsRef<str>>(segments: &[Segment], names: &[S]) -> bool {
    // alive[i]: segments[..i] consumed so far.
    let close = |alive: &mut Vec<bool>| {
        for i in 0..segments.len() {
            if alive[i] && segments[i] == Segment::AnyDepth {
                alive[i + 1] = true;
            }
        }
    };
    let mut alive = vec![false; segments.len() + 1];
    alive[0] = true;
    close(&mut alive);
    for name in names {
        let mut next = vec![false; segments.len() + 1];
        for i in 0..segments.len() {
            if !alive[i] {
                continue;
            }
            match &segments[i] {
                Segment::AnyDepth => next[i] = true,
                Segment::Glob(g) if crate::vfs::path::glob_match(g, name.as_ref()) => next[i + 1] = true,
                Segment::Glob(_) => {}
            }
        }
        close(&mut next);
        alive = next;
    }
    alive.iter().any(|&a| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(who: &[&str], place: (&str, &str), allow: &[&str], deny: &[&str]) -> RuleSpec {
        let mut s = RuleSpec {
            who: who.iter().map(|s| s.to_string()).collect(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            ..RuleSpec::default()
        };
        match place.0 {
            "path" => s.path = Some(place.1.into()),
            "tree" => s.tree = Some(place.1.into()),
            _ => s.pattern = Some(place.1.into()),
        }
        s
    }

    fn errors(s: &RuleSpec) -> String {
        compile(s, 0)
            .expect_err("rule should be refused")
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn globs() {
        assert!(crate::vfs::path::glob_match("*.iso", "a.iso"));
        assert!(!crate::vfs::path::glob_match("*.iso", "a.iso.part"));
        assert!(crate::vfs::path::glob_match("a?c*", "abcdef"));
        assert!(crate::vfs::path::glob_match("*", ""));
        assert!(!crate::vfs::path::glob_match("?", ""));
        let seg = |s: &[&str]| -> Vec<Segment> {
            s.iter()
                .map(|x| if *x == "**" { Segment::AnyDepth } else { Segment::Glob(x.to_string()) })
                .collect()
        };
        assert!(segments_match(&seg(&["*.iso"]), &["a.iso"]));
        assert!(!segments_match(&seg(&["*.iso"]), &["d", "a.iso"]));
        assert!(segments_match(&seg(&["**", "*.iso"]), &["a.iso"]));
        assert!(segments_match(&seg(&["**", "*.iso"]), &["d", "e", "a.iso"]));
        assert!(!segments_match(&seg(&["**", "*.iso"]), &["d", "e"]));
        assert!(segments_match(&seg(&["**"]), &[] as &[&str]));
        assert!(segments_match(&seg(&["*", "**", "x"]), &["a", "b", "c", "x"]));
        assert!(!segments_match(&seg(&["*"]), &[] as &[&str]));
        assert!(segments_prefix_match(&seg(&["*", "x", "*.iso"]), &["a"]));
        assert!(segments_prefix_match(&seg(&["*", "x", "*.iso"]), &["a", "x", "b.iso"]));
        assert!(!segments_prefix_match(&seg(&["*", "x", "*.iso"]), &["a", "y"]));
        assert!(!segments_prefix_match(&seg(&["*.iso"]), &["anon"]));
        assert!(!segments_prefix_match(&seg(&["*.iso"]), &["a.iso", "b"]));
        assert!(segments_prefix_match(&seg(&["**", "*.iso"]), &["a", "b", "c"]));
        assert!(segments_prefix_match(&seg(&["d", "**"]), &["d", "e"]));
    }

    #[test]
    fn places_match_real_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let r = |s: &str| root.join(s);
        let t = |p: &str| root.join(p).display().to_string();

        let exact = compile(&spec(&["*"], ("path", &t("pub/a.txt")), &["read"], &[]), 0).unwrap().place;
        assert!(exact.matches(&r("pub/a.txt")));
        assert!(!exact.matches(&r("pub/a.txt/x")) && !exact.matches(&r("pub")));

        let tree = compile(&spec(&["*"], ("tree", &t("pub")), &["read"], &[]), 0).unwrap().place;
        assert!(tree.matches(&r("pub")) && tree.matches(&r("pub/a/b")));
        assert!(!tree.matches(&r("public")), "a tree ends at a component boundary");

        let pat = compile(&spec(&["*"], ("pattern", &t("pub/*.iso")), &["read"], &[]), 0).unwrap().place;
        assert!(pat.matches(&r("pub/x.iso")));
        assert!(!pat.matches(&r("pub/d/x.iso")) && !pat.matches(&r("pub")) && !pat.matches(&r("x.iso")));
        assert_eq!(pat.depth(), root.join("pub").components().count());

        let deep = compile(&spec(&["*"], ("pattern", &t("pub/**/*.iso")), &["read"], &[]), 0).unwrap().place;
        assert!(deep.matches(&r("pub/x.iso")) && deep.matches(&r("pub/d/e/x.iso")));
        assert!(deep.is_recursive() && !pat.is_recursive());
    }

    #[cfg(unix)]
    #[test]
    fn paths_are_canonical_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        std::os::unix::fs::symlink(root.join("data"), root.join("link")).unwrap();
        let rule = compile(
            &spec(&["*"], ("tree", &root.join("link/./sub").display().to_string()), &["read"], &[]),
            0,
        )
        .unwrap();
        assert_eq!(rule.place, Place::Tree(root.join("data/sub")), "not-yet-existing tail kept");
        let e = errors(&spec(&["*"], ("tree", "/srv/../etc"), &["read"], &[]));
        assert!(e.contains("contains `..`"), "{e}");
    }

    #[test]
    fn who_and_shorthands() {
        let rule = compile(
            &spec(&["alice", "@staff", "anonymous", "*"], ("tree", "/srv"), &["read-only"], &["delete"]),
            0,
        )
        .unwrap();
        assert_eq!(
            rule.who,
            [Who::User("alice".into()), Who::Group("staff".into()), Who::Anonymous, Who::Everyone]
        );
        assert_eq!(rule.allow, OpSet::from_name("read-only").unwrap());
        let alice = Subject { name: "alice", groups: &[], anonymous: false };
        let staff = ["staff".to_string()];
        let bob = Subject { name: "bob", groups: &staff, anonymous: false };
        let anon_groups = ["anonymous".to_string()];
        let anon = Subject { name: "anonymous", groups: &anon_groups, anonymous: true };
        assert_eq!(rule.who_rank(&alice), Some(WhoRank::User));
        assert_eq!(rule.who_rank(&bob), Some(WhoRank::Group));
        assert_eq!(rule.who_rank(&anon), Some(WhoRank::User));
        let only_alice = compile(&spec(&["alice"], ("tree", "/srv"), &["read"], &[]), 0).unwrap();
        assert_eq!(only_alice.who_rank(&bob), None);
        // A user named like the keyword is not the anonymous module's user.
        let fake = Subject { name: "anonymous", groups: &[], anonymous: false };
        assert_eq!(
            compile(&spec(&["anonymous"], ("tree", "/srv"), &["read"], &[]), 0).unwrap().who_rank(&fake),
            None
        );

        let mut only = spec(&["bob"], ("tree", "/srv/drop"), &[], &[]);
        only.only = vec!["upload-only".into()];
        let rule = compile(&only, 0).unwrap();
        assert_eq!(rule.verdict(Operation::Write), Some(true));
        assert_eq!(rule.verdict(Operation::List), Some(false));
        assert_eq!(rule.verdict(Operation::Read), Some(false));
    }

    #[test]
    fn refusals_say_what_to_write() {
        let cases: &[(RuleSpec, &str)] = &[
            (spec(&[], ("tree", "/srv"), &["read"], &[]), "names nobody"),
            (spec(&["a b"], ("tree", "/srv"), &["read"], &[]), "spaces"),
            (spec(&["@"], ("tree", "/srv"), &["read"], &[]), "names no group"),
            (spec(&["al*"], ("tree", "/srv"), &["read"], &[]), "wildcard"),
            (spec(&["*", "*"], ("tree", "/srv"), &["read"], &[]), "listed twice"),
            (spec(&["*"], ("tree", "/srv"), &["raed"], &[]), "did you mean `read`?"),
            (spec(&["*"], ("tree", "/srv"), &["read"], &["read-only"]), "read both allowed and denied"),
            (spec(&["*"], ("tree", "/srv"), &[], &[]), "allows and denies nothing"),
            (spec(&["*"], ("path", "/srv/pub/"), &["read"], &[]), "tree = \"/srv/pub\""),
            (spec(&["*"], ("path", "/srv/*.iso"), &["read"], &[]), "pattern = \"/srv/*.iso\""),
            (spec(&["*"], ("tree", "/srv/*"), &["read"], &[]), "pattern = \"/srv/*\""),
            (spec(&["*"], ("pattern", "/srv/pub"), &["read"], &[]), "has no wildcard"),
            (spec(&["*"], ("pattern", "/srv/a**b/x"), &["read"], &[]), "whole name"),
            (spec(&["*"], ("path", ""), &["read"], &[]), "empty"),
        ];
        for (s, want) in cases {
            let e = errors(s);
            assert!(e.contains(want), "want {want:?} in:\n{e}");
        }
        let mut no_place = spec(&["*"], ("tree", "/x"), &["read"], &[]);
        no_place.tree = None;
        assert!(errors(&no_place).contains("names no place"));
        let mut two = spec(&["*"], ("tree", "/x"), &["read"], &[]);
        two.path = Some("/y".into());
        assert!(errors(&two).contains("one of `path`, `tree` and `pattern`"));
        let mut mixed = spec(&["*"], ("tree", "/x"), &["read"], &[]);
        mixed.only = vec!["read".into()];
        assert!(errors(&mixed).contains("cannot be combined"));
        // Several problems are all reported, each at its key and item.
        let all = compile(&spec(&["*", "a b"], ("tree", "/x"), &["read", "nope"], &[]), 0).unwrap_err();
        assert_eq!(
            all.iter().map(|e| (e.key, e.item)).collect::<Vec<_>>(),
            [("who", Some(1)), ("allow", Some(1))]
        );
    }

    #[test]
    fn user_rules_parse_from_one_line() {
        let rule = compile_user_rule(r#"tree = "/srv/drop", only = ["upload-only"]"#, "bob", 2).unwrap();
        assert!(rule.who.is_empty());
        assert_eq!(rule.origin.to_string(), "`bob`'s own rule #3");
        assert_eq!(rule.origin.label(), "`bob`'s own rule #3 (user database)");
        assert_eq!(rule.summary(), r#"tree = "/srv/drop", only = [write-new, chdir]"#);
        assert!(compile_user_rule(r#"{ path = "/srv/x", deny = ["read"] }"#, "bob", 0).is_ok());
        let e = compile_user_rule(r#"who = ["*"], tree = "/srv", allow = ["read"]"#, "bob", 0).unwrap_err();
        assert!(e.contains("leave out `who`"), "{e}");
        let e = compile_user_rule(r#"tree = "srv", allow = ["read"]"#, "bob", 0).unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = compile_user_rule(r#"tree = "/srv", alow = ["read"]"#, "bob", 0).unwrap_err();
        assert!(e.contains("not a rule") && e.contains("alow"), "{e}");
        let e = compile_user_rule(r#"tree = "/srv", allow = ["reed"]"#, "bob", 0).unwrap_err();
        assert!(e.contains("allow: unknown operation `reed`"), "{e}");
    }

    #[test]
    fn summary_and_origin() {
        let mut s = spec(&["alice", "@staff"], ("pattern", "/srv/pub/*.iso"), &["read"], &["delete"]);
        s.origin = Some(SourceLine { file: "/etc/ferroftpd.toml".into(), line: Some(12) });
        let rule = compile(&s, 3).unwrap();
        assert_eq!(rule.origin.to_string(), "/etc/ferroftpd.toml:12");
        let summary = rule.summary();
        assert!(summary.starts_with(r#"who = ["alice", "@staff"], pattern = ""#), "{summary}");
        assert!(summary.ends_with(r#"*.iso", allow = [read], deny = [delete]"#), "{summary}");
        s.origin = Some(SourceLine { file: "built-in".into(), line: None });
        assert_eq!(compile(&s, 3).unwrap().origin.to_string(), "built-in [[acl.rule]] #4");
    }

    #[test]
    fn precedence_order() {
        let spec_of = |kind, depth, who| Specificity { kind, depth, who };
        let file = spec_of(PlaceKind::Exact, 3, WhoRank::Everyone);
        let pattern = spec_of(PlaceKind::Pattern, 2, WhoRank::Everyone);
        let tree = spec_of(PlaceKind::Tree, 2, WhoRank::User);
        let parent = spec_of(PlaceKind::Tree, 1, WhoRank::User);
        assert!(file > pattern && pattern > tree && tree > parent);
        assert!(spec_of(PlaceKind::Tree, 2, WhoRank::User) > spec_of(PlaceKind::Tree, 2, WhoRank::Group));
        // Equal: deny (false) beats allow (true), and not the other way round.
        assert!(beats((tree, false), (tree, true)));
        assert!(!beats((tree, true), (tree, false)));
        assert!(!beats((tree, true), (tree, true)), "a full tie keeps the earlier rule");
        assert!(beats((file, true), (tree, false)));
    }
}
