//! The command parser on arbitrary bytes: it must never panic, and what it
//! accepts must be well-formed (no control bytes in an argument, a reply
//! code in range for what it refuses).
#![no_main]

use ferroftpd::proto::{self, Command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    match proto::parse(line) {
        Ok(cmd) => {
            let shown = format!("{cmd:?}");
            assert!(!shown.is_empty());
            if let Command::Retr(arg) | Command::Stor(arg) | Command::Cwd(arg) | Command::Dele(arg) = &cmd {
                assert!(!arg.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n'), "{arg:?}");
            }
        }
        Err(e) => {
            let code = e.code();
            assert!((500..=504).contains(&code) || code == 522, "parse error code {code}");
        }
    }
});
