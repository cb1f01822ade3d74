//! Property tests: the parser is the first thing untrusted bytes reach, so
//! it must hold up on any input, and the formats that clients feed back to
//! us (PORT, EPRT, timestamps) must round-trip.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::command::{parse, Command};
use super::listing::{ftp_timestamp, parse_ftp_timestamp, MAX_SECS, MIN_SECS};

const VERBS: &[&str] = &[
    "USER", "PASS", "ACCT", "QUIT", "REIN", "NOOP", "SYST", "STAT", "HELP", "SITE", "TYPE", "MODE", "STRU",
    "PWD", "XPWD", "CWD", "XCWD", "CDUP", "XCUP", "MKD", "XMKD", "RMD", "XRMD", "DELE", "RNFR", "RNTO",
    "LIST", "NLST", "RETR", "STOR", "STOU", "APPE", "REST", "ALLO", "ABOR", "PASV", "PORT", "EPSV", "EPRT",
    "FEAT", "OPTS", "SIZE", "MDTM", "MLST", "MLSD", "MFMT", "HOST", "AUTH", "PBSZ", "PROT", "CCC",
];

fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Randomises the case of ASCII letters, as clients may.
fn mixed_case(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| if mask >> (i % 64) & 1 == 1 { c.to_ascii_lowercase() } else { c })
        .collect()
}

proptest! {
    #[test]
    fn parse_never_panics_on_bytes(line in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&line);
    }

    #[test]
    fn parse_never_panics_on_known_verbs(
        verb in prop::sample::select(VERBS),
        prefix in prop::collection::vec(prop::sample::select(&[0xFFu8, 0xF4, 0xF2, b' '][..]), 0..6),
        arg in "[ -~\u{80}-\u{10FFFF}]{0,64}",
        mask in any::<u64>(),
    ) {
        let mut line = prefix;
        line.extend_from_slice(mixed_case(verb, mask).as_bytes());
        line.push(b' ');
        line.extend_from_slice(arg.as_bytes());
        let _ = parse(&line);
    }

    #[test]
    fn path_arguments_are_kept_as_sent(
        verb in prop::sample::select(&["RETR", "STOR", "DELE", "CWD", "MKD", "RNFR", "SIZE"][..]),
        arg in "[^ \r\n\0][^\r\n\0]{0,80}",
    ) {
        let cmd = parse(format!("{verb} {arg}").as_bytes());
        let got = match cmd {
            Ok(Command::Retr(a) | Command::Stor(a) | Command::Dele(a) | Command::Cwd(a)
                | Command::Mkd(a) | Command::Rnfr(a) | Command::Size(a)) => a,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(got, arg);
    }

    #[test]
    fn port_round_trips(ip in any::<Ipv4Addr>(), port in any::<u16>(), mask in any::<u64>()) {
        let [h1, h2, h3, h4] = ip.octets();
        let [p1, p2] = port.to_be_bytes();
        let line = format!("{} {h1},{h2},{h3},{h4},{p1},{p2}", mixed_case("PORT", mask));
        prop_assert_eq!(parse(line.as_bytes()), Ok(Command::Port(SocketAddr::new(IpAddr::V4(ip), port))));
    }

    #[test]
    fn eprt_round_trips(
        ip in prop_oneof![any::<Ipv4Addr>().prop_map(IpAddr::V4), any::<Ipv6Addr>().prop_map(IpAddr::V6)],
        port in any::<u16>(),
        delimiter in prop::sample::select(&['|', '!', '#', '$', '%', '^', '~', '@', 'z'][..]),
    ) {
        let proto = if ip.is_ipv4() { 1 } else { 2 };
        let d = delimiter;
        let line = format!("EPRT {d}{proto}{d}{ip}{d}{port}{d}");
        prop_assert_eq!(parse(line.as_bytes()), Ok(Command::Eprt(SocketAddr::new(ip, port))));
    }

    #[test]
    fn timestamps_round_trip(secs in MIN_SECS..=MAX_SECS, nanos in 0u32..1_000_000_000) {
        let time = system_time(secs) + Duration::from_nanos(u64::from(nanos));
        let text = ftp_timestamp(time);
        prop_assert_eq!(text.len(), 14);
        prop_assert_eq!(parse_ftp_timestamp(&text), Some(secs));
        prop_assert_eq!(parse_ftp_timestamp(&format!("{text}.{nanos:09}")), Some(secs));
    }

    #[test]
    fn any_time_formats_to_a_parseable_timestamp(secs in any::<i64>(), nanos in 0u32..1_000_000_000) {
        // SystemTime's own range is platform-defined; try what it can hold.
        let magnitude = Duration::from_secs(secs.unsigned_abs());
        let base = if secs >= 0 { UNIX_EPOCH.checked_add(magnitude) } else { UNIX_EPOCH.checked_sub(magnitude) };
        let Some(time) = base.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos)))) else {
            return Ok(());
        };
        prop_assert!(parse_ftp_timestamp(&ftp_timestamp(time)).is_some());
    }

    #[test]
    fn parsed_timestamps_format_back_identically(text in "[0-9]{14}") {
        // A leap second (…235960) is accepted but has no text of its own.
        if let (Some(secs), false) = (parse_ftp_timestamp(&text), text.ends_with("60")) {
            prop_assert_eq!(ftp_timestamp(system_time(secs)), text);
        }
    }

    #[test]
    fn parse_ftp_timestamp_never_panics(text in "\\PC{0,24}") {
        let _ = parse_ftp_timestamp(&text);
    }
}
