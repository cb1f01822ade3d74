//! The PROXY protocol header parser on arbitrary bytes from a balancer:
//! it never panics, never claims more bytes than it was given or than the
//! limits allow, and a header it accepts parses the same on its own.
#![no_main]

use ferroftpd::server::proxy_protocol::{parse, V2_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse(data) {
        assert!(parsed.len <= data.len() && parsed.len <= V2_MAX);
        assert_eq!(parse(&data[..parsed.len]), Ok(parsed));
    }
});
