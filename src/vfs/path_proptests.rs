//! Property tests for the path resolver: whatever a client sends, a
//! normalised path is absolute, has no `.`, `..` or empty component (so it
//! can never rise above `/`), is a fixed point of normalisation, and maps to
//! a storage-relative path without `..` under the mount it names.

use proptest::prelude::*;

use super::path::{normalize, split_parent, strip_mount_prefix, PathError, MAX_PATH_LEN};

/// Path pieces a hostile client likes.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("...".to_string()),
        Just("..\\..".to_string()),
        Just("%2e%2e".to_string()),
        Just("etc".to_string()),
        Just("ро".to_string()),
        "[a-z]{1,8}",
        "[ -~]{0,12}",
    ]
}

/// A client argument: pieces joined by `/` or `\`, maybe absolute.
fn argument() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec((component(), any::<bool>()), 0..12)).prop_map(
        |(absolute, parts)| {
            let mut s = String::from(if absolute { "/" } else { "" });
            for (part, backslash) in parts {
                s.push_str(&part);
                s.push(if backslash { '\\' } else { '/' });
            }
            s
        },
    )
}

/// A normalised current directory.
fn cwd() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z]{1,6}", 0..6).prop_map(|parts| format!("/{}", parts.join("/")))
}

fn well_formed(p: &str) -> bool {
    p == "/" || (p.starts_with('/') && p[1..].split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}

proptest! {
    #[test]
    fn normalized_paths_are_absolute_and_clean(cwd in cwd(), arg in argument()) {
        if let Ok(p) = normalize(&cwd, &arg) {
            prop_assert!(well_formed(&p), "{cwd:?} + {arg:?} → {p:?}");
            prop_assert!(!p.contains('\\'));
            prop_assert!(p.len() <= MAX_PATH_LEN);
        }
    }

    #[test]
    fn normalization_is_idempotent(cwd in cwd(), arg in argument(), other in cwd()) {
        if let Ok(p) = normalize(&cwd, &arg) {
            prop_assert_eq!(normalize("/", &p), Ok(p.clone()));
            // An absolute result means the same from any directory.
            prop_assert_eq!(normalize(&other, &p), Ok(p.clone()));
        }
    }

    #[test]
    fn relative_is_the_same_as_joined(cwd in cwd(), arg in argument()) {
        prop_assume!(!arg.starts_with('/') && !arg.starts_with('\\'));
        let joined = format!("{cwd}/{arg}");
        prop_assert_eq!(normalize(&cwd, &arg), normalize("/", &joined));
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root(arg in argument(), ups in 0usize..40) {
        let p = normalize("/", &format!("{}{arg}", "../".repeat(ups)));
        if let Ok(p) = p {
            prop_assert!(well_formed(&p));
            // Going up from the root is going nowhere.
            prop_assert_eq!(Ok(p), normalize("/", &arg));
        }
    }

    #[test]
    fn down_one_level_and_up_again(cwd in cwd(), name in "[a-z]{1,6}") {
        let down = normalize(&cwd, &name).unwrap();
        prop_assert_eq!(normalize(&down, ".."), Ok(cwd.clone()));
        let (parent, last) = split_parent(&down).unwrap();
        prop_assert_eq!(parent, cwd.as_str());
        prop_assert_eq!(last, name.as_str());
    }

    #[test]
    fn control_bytes_are_always_refused(cwd in cwd(), a in "[ -~]{0,10}", b in "[ -~]{0,10}", c in prop::sample::select(vec!['\0', '\r', '\n'])) {
        prop_assert_eq!(normalize(&cwd, &format!("{a}{c}{b}")), Err(PathError::ControlCharacter));
    }

    #[test]
    fn long_paths_are_refused_never_truncated(cwd in cwd(), len in (MAX_PATH_LEN - 8)..(MAX_PATH_LEN + 64)) {
        let arg = "x".repeat(len);
        match normalize(&cwd, &arg) {
            Ok(p) => prop_assert!(p.len() <= MAX_PATH_LEN && p.ends_with(&arg)),
            Err(e) => prop_assert_eq!(e, PathError::TooLong),
        }
    }

    #[test]
    fn mount_relative_paths_stay_below_the_mount(arg in argument(), mount in cwd()) {
        if let Ok(p) = normalize("/", &arg) {
            if let Some(rel) = strip_mount_prefix(&mount, &p) {
                prop_assert!(!rel.starts_with('/'));
                prop_assert!(rel.is_empty() || rel.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
                let back = if rel.is_empty() { mount.clone() } else if mount == "/" { format!("/{rel}") } else { format!("{mount}/{rel}") };
                prop_assert_eq!(back, p);
            }
        }
    }
}
