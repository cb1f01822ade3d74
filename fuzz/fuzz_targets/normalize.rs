//! The path resolver on arbitrary input: a normalised path is absolute, has
//! no `.`, `..` or empty component, and normalising it again changes nothing.
#![no_main]

use ferroftpd::vfs::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line is the current directory, the rest the argument.
    let (cwd_arg, arg) = text.split_once('\n').unwrap_or(("/", &text));
    let cwd = normalize("/", cwd_arg).unwrap_or_else(|_| "/".to_string());
    if let Ok(p) = normalize(&cwd, arg) {
        assert!(p.starts_with('/'), "{p:?}");
        assert!(p == "/" || p[1..].split('/').all(|c| !c.is_empty() && c != "." && c != ".."), "{p:?}");
        assert_eq!(normalize("/", &p).as_deref(), Ok(p.as_str()));
    }
});
