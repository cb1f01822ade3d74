//! Virtual path arithmetic: pure string work, no I/O.

/// Why a client-supplied path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path contains a NUL, CR or LF byte")]
    ControlCharacter,
    #[error("path is too long")]
    TooLong,
}

/// Longest virtual path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// Joins `arg` to the current directory `cwd` and normalises the result:
/// absolute, `/`-separated (a `\` counts as a separator), no empty, `.` or
/// `..` components, never above `/`. `cwd` must already be normalised.
pub fn normalize(cwd: &str, arg: &str) -> Result<String, PathError> {
    if arg.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(PathError::ControlCharacter);
    }
    if arg.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let arg = arg.replace('\\', "/");
    let mut parts: Vec<&str> = Vec::new();
    let start = if arg.starts_with('/') { "" } else { cwd };
    for comp in start.split('/').chain(arg.split('/')) {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    let mut out = String::with_capacity(arg.len() + cwd.len() + 1);
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    if out.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    Ok(out)
}

/// If `path` is `prefix` or lies below it, the remainder relative to it
/// (`""` for the prefix itself). Both are normalised virtual paths.
pub fn strip_mount_prefix<'a>(prefix: &str, path: &'a str) -> Option<&'a str> {
    if prefix == "/" {
        return Some(path.trim_start_matches('/'));
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

/// If `mount` is a direct child of `dir`, its last component.
pub fn child_name<'a>(dir: &str, mount: &'a str) -> Option<&'a str> {
    if mount == "/" {
        return None;
    }
    let (parent, name) = mount.rsplit_once('/')?;
    let parent = if parent.is_empty() { "/" } else { parent };
    (parent == dir).then_some(name)
}

/// Parent directory and last component of a normalised virtual path.
/// `/` has no parent.
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    if path == "/" {
        return None;
    }
    let (parent, name) = path.rsplit_once('/')?;
    Some((if parent.is_empty() { "/" } else { parent }, name))
}

/// Shell-style matching of `*` and `?` (no character classes), iterative with
/// one backtrack point so hostile patterns stay linear-ish.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_relative_and_absolute() {
        assert_eq!(normalize("/a/b", "c").unwrap(), "/a/b/c");
        assert_eq!(normalize("/a/b", "/c//d/./e/").unwrap(), "/c/d/e");
        assert_eq!(normalize("/a/b", "../../../../x").unwrap(), "/x");
        assert_eq!(normalize("/", "..").unwrap(), "/");
        assert_eq!(normalize("/a", "..\\..\\etc").unwrap(), "/etc");
        assert_eq!(normalize("/", "").unwrap(), "/");
    }

    #[test]
    fn refuses_control_bytes() {
        assert_eq!(normalize("/", "a\0b"), Err(PathError::ControlCharacter));
        assert_eq!(normalize("/", "a\nb"), Err(PathError::ControlCharacter));
    }

    #[test]
    fn mount_prefixes() {
        assert_eq!(strip_mount_prefix("/", "/a/b"), Some("a/b"));
        assert_eq!(strip_mount_prefix("/", "/"), Some(""));
        assert_eq!(strip_mount_prefix("/pub", "/pub"), Some(""));
        assert_eq!(strip_mount_prefix("/pub", "/pub/x"), Some("x"));
        assert_eq!(strip_mount_prefix("/pub", "/public"), None);
        assert_eq!(child_name("/", "/pub"), Some("pub"));
        assert_eq!(child_name("/a", "/a/b"), Some("b"));
        assert_eq!(child_name("/", "/a/b"), None);
        assert_eq!(split_parent("/a/b"), Some(("/a", "b")));
        assert_eq!(split_parent("/a"), Some(("/", "a")));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.gz"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("?", ""));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
    }
}
