//! The PROXY protocol (HAProxy's v1 text and v2 binary headers) on control
//! listeners behind a TCP load balancer, so that address rules, bans,
//! per-address limits, logs, the transfer log and the data-connection checks
//! (passive accept-from, PORT/EPRT bounce check) see the real client
//! address instead of the balancer's.
//!
//! Only sources in `proxy_protocol.trusted` may send a header, and they must:
//! a header is how a trusted balancer names its client, so anything else
//! from it (garbage, a truncated or oversized header, nothing within
//! `header_timeout`) closes the connection with a log line. Other sources
//! speak plain FTP, or are refused when the listener has `required = true`.
//! A header from an untrusted source is therefore never believed: its bytes
//! reach the FTP parser, which rejects them as a bad command.
//!
//! The header is read with `peek` and then consumed exactly, never a byte
//! further: with implicit TLS the ClientHello follows in the same segment
//! and must stay in the socket for the handshake. Memory is bounded by
//! [`V1_MAX`] and [`V2_MAX`]. Parsing is done by the `ppp` crate, which
//! follows HAProxy's specification; this module only decides what to
//! trust and how much to read.
//!
//! Passive data connections come straight to the node, not through the
//! balancer, so they never carry a header (see `data::channel`).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ppp::{v1, v2, HeaderResult, PartialResult as _};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::ProxyProtocolConfig;

/// Longest v1 header, CRLF included (the specification's limit).
pub const V1_MAX: usize = 107;

/// Longest v2 header accepted: the 16-byte fixed part and up to 4 KiB of
/// addresses and TLVs (HAProxy's own TLVs, even with TLS details, are a
/// few hundred bytes; the format would allow 64 KiB).
pub const V2_MAX: usize = 16 + 4096;

/// The v2 signature, the first 12 bytes of every v2 header.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Pause between two looks at a header that has arrived only in part
/// (peeking does not consume, so the socket stays readable and waiting for
/// readiness would spin).
const PARTIAL_POLL: Duration = Duration::from_millis(10);

/// What a listener expects from a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A trusted balancer: a header must come first.
    Header,
    /// Plain FTP (or TLS) from the first byte.
    Plain,
    /// The listener requires the balancer and this source is not trusted.
    Refuse,
}

/// Decides, at accept, whether the connection from `from` on the listener
/// configured as `listener` starts with a header.
pub fn expect(cfg: &ProxyProtocolConfig, listener: SocketAddr, from: IpAddr) -> Expect {
    let applies = cfg.listen.is_empty() || cfg.listen.contains(&listener);
    if !applies || cfg.trusted.is_empty() {
        return Expect::Plain;
    }
    if cfg.trusted.iter().any(|net| net.contains(from)) {
        Expect::Header
    } else if cfg.required {
        Expect::Refuse
    } else {
        Expect::Plain
    }
}

/// Who a header says the connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Relayed for this client.
    Client(SocketAddr),
    /// The balancer's own connection (v2 LOCAL: health checks).
    Local,
    /// Relayed, but the balancer does not know the client (v1 `UNKNOWN`,
    /// v2 unspecified or UNIX addresses): the specification says to use the
    /// connection's own endpoints.
    Unknown,
}

/// A complete header at the start of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Bytes the header takes; the FTP (or TLS) stream starts after them.
    pub len: usize,
    pub origin: Origin,
}

/// Why the bytes are not (yet) a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A header may still be completed by at least `need` bytes in all.
    Incomplete { need: usize },
    /// Longer than [`V1_MAX`] or [`V2_MAX`].
    TooLong,
    /// Not a header at all, or a malformed one.
    Invalid(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Incomplete { .. } => f.write_str("incomplete PROXY header"),
            Problem::TooLong => f.write_str("PROXY header too long"),
            Problem::Invalid(why) => write!(f, "invalid PROXY header: {why}"),
        }
    }
}

/// Parses a header at the start of `bytes` (which may hold more after it).
/// Pure: no I/O, fuzzable.
pub fn parse(bytes: &[u8]) -> Result<Parsed, Problem> {
    // The v2 length is known from 16 bytes on: refuse an oversized header
    // before waiting for (or allocating) its body.
    if bytes.len() >= 16 && bytes.starts_with(V2_SIGNATURE) {
        let declared = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        if 16 + declared > V2_MAX {
            return Err(Problem::TooLong);
        }
    }
    let result = HeaderResult::parse(bytes);
    if result.is_incomplete() {
        let need = match &result {
            HeaderResult::V2(Err(v2::ParseError::Partial(_, length))) => 16 + length,
            HeaderResult::V2(Err(_)) => 16,
            _ => bytes.len() + 1,
        };
        return Err(Problem::Incomplete { need: need.max(bytes.len() + 1) });
    }
    match result {
        HeaderResult::V1(Ok(header)) => {
            let origin = match header.addresses {
                v1::Addresses::Tcp4(a) => {
                    Origin::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                v1::Addresses::Tcp6(a) => Origin::Client(client(IpAddr::V6(a.source_address), a.source_port)),
                v1::Addresses::Unknown => Origin::Unknown,
            };
            Ok(Parsed { len: header.header.len(), origin })
        }
        HeaderResult::V1(Err(v1::BinaryParseError::Parse(v1::ParseError::HeaderTooLong))) => {
            Err(Problem::TooLong)
        }
        HeaderResult::V1(Err(e)) => Err(Problem::Invalid(e.to_string())),
        HeaderResult::V2(Ok(header)) => {
            let origin = match (header.command, header.addresses) {
                (v2::Command::Local, _) => Origin::Local,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Origin::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Origin::Client(client(IpAddr::V6(a.source_address), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => Origin::Unknown,
            };
            Ok(Parsed { len: header.len(), origin })
        }
        HeaderResult::V2(Err(e)) => Err(Problem::Invalid(e.to_string())),
    }
}

/// An IPv4-mapped IPv6 source counts as the IPv4 address, as everywhere
/// else in the server.
fn client(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.to_canonical(), port)
}

/// Why no header could be read.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing complete within the time allowed; `received` bytes had come.
    Timeout {
        received: usize,
    },
    /// The balancer closed the connection before sending anything.
    Closed,
    Header(Problem),
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Timeout { received } => {
                write!(f, "no complete PROXY header in time ({received} bytes received)")
            }
            ReadError::Closed => f.write_str("closed before a PROXY header"),
            ReadError::Header(problem) => problem.fmt(f),
            ReadError::Io(e) => write!(f, "reading the PROXY header: {e}"),
        }
    }
}

/// Reads the header at the start of `stream` within `within`, consuming
/// exactly its bytes. Holds at most [`V2_MAX`] bytes, and only while it
/// reads.
pub async fn read_header(stream: &mut TcpStream, within: Duration) -> Result<Parsed, ReadError> {
    let deadline = Instant::now() + within;
    // Room for any v1 header (plus one byte to see that it is too long) and
    // for a v2 header without TLVs; grown only as a v2 length asks.
    let mut buf = vec![0u8; V1_MAX + 1];
    let mut received = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Err(_) => return Err(ReadError::Timeout { received }),
            Ok(Err(e)) => return Err(ReadError::Io(e)),
            Ok(Ok(0)) if received == 0 => return Err(ReadError::Closed),
            // Peeking only returns 0 at the end of the stream.
            Ok(Ok(0)) => return Err(ReadError::Header(Problem::Incomplete { need: received + 1 })),
            Ok(Ok(n)) => n,
        };
        received = n;
        match parse(&buf[..n]) {
            Ok(parsed) => {
                // The bytes are already here: consuming them cannot wait.
                let consumed =
                    tokio::time::timeout_at(deadline, stream.read_exact(&mut buf[..parsed.len])).await;
                return match consumed {
                    Ok(Ok(_)) => Ok(parsed),
                    Ok(Err(e)) => Err(ReadError::Io(e)),
                    Err(_) => Err(ReadError::Timeout { received }),
                };
            }
            Err(Problem::Incomplete { need }) if need > buf.len() => {
                // A v2 header longer than the buffer, within V2_MAX (checked
                // by `parse`).
                buf.resize(need.min(V2_MAX), 0);
            }
            Err(Problem::Incomplete { .. }) => {
                if tokio::time::timeout_at(deadline, tokio::time::sleep(PARTIAL_POLL)).await.is_err() {
                    return Err(ReadError::Timeout { received });
                }
            }
            Err(problem) => return Err(ReadError::Header(problem)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cidr;

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        let len = (addresses.len() + tlvs.len()) as u16;
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(addresses);
        h.extend_from_slice(tlvs);
        h
    }

    fn v2_tcp4(src: [u8; 4], port: u16) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&src);
        a.extend_from_slice(&[127, 0, 0, 1]);
        a.extend_from_slice(&port.to_be_bytes());
        a.extend_from_slice(&2121u16.to_be_bytes());
        v2(0x1, 0x11, &a, &[])
    }

    fn client_at(s: &str) -> Origin {
        Origin::Client(s.parse().unwrap())
    }

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.5 51000 2121\r\nUSER alice\r\n";
        let parsed = parse(h).unwrap();
        assert_eq!(parsed.origin, client_at("192.0.2.7:51000"));
        assert_eq!(&h[parsed.len..], b"USER alice\r\n", "nothing past the header is taken");
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 2121\r\n";
        assert_eq!(parse(h).unwrap().origin, client_at("[2001:db8::7]:51000"));
        let mapped = b"PROXY TCP6 ::ffff:192.0.2.7 ::ffff:10.0.0.5 51000 2121\r\n";
        assert_eq!(parse(mapped).unwrap().origin, client_at("192.0.2.7:51000"), "IPv4-mapped is IPv4");
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse(unknown).unwrap(), Parsed { len: unknown.len(), origin: Origin::Unknown });
    }

    #[test]
    fn v2_headers() {
        let mut h = v2_tcp4([192, 0, 2, 7], 51000);
        let header_len = h.len();
        h.extend_from_slice(b"\x16\x03\x01"); // a TLS ClientHello follows at once
        let parsed = parse(&h).unwrap();
        assert_eq!(parsed, Parsed { len: header_len, origin: client_at("192.0.2.7:51000") });

        let mut a = Vec::new();
        a.extend_from_slice(&"2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap().octets());
        a.extend_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        a.extend_from_slice(&51000u16.to_be_bytes());
        a.extend_from_slice(&21u16.to_be_bytes());
        assert_eq!(parse(&v2(0x1, 0x21, &a, &[])).unwrap().origin, client_at("[2001:db8::7]:51000"));

        // TLVs (here a NOOP and a unique id) are skipped with the header.
        let with_tlvs = v2(0x1, 0x11, &v2_tcp4([192, 0, 2, 7], 1)[16..], &[0x04, 0, 1, 42, 0x05, 0, 2, 1, 2]);
        assert_eq!(parse(&with_tlvs).unwrap().len, with_tlvs.len());

        let local = v2(0x0, 0x00, &[], &[]);
        assert_eq!(parse(&local).unwrap(), Parsed { len: 16, origin: Origin::Local });
        let unspec = v2(0x1, 0x00, &[], &[]);
        assert_eq!(parse(&unspec).unwrap().origin, Origin::Unknown);
    }

    #[test]
    fn truncated_headers_ask_for_more() {
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.5 51000 2121\r\n";
        for cut in [0, 1, 5, 6, 20, v1.len() - 1] {
            assert!(
                matches!(parse(&v1[..cut]), Err(Problem::Incomplete { .. })),
                "v1 cut at {cut}: {:?}",
                parse(&v1[..cut])
            );
        }
        let v2 = v2_tcp4([192, 0, 2, 7], 51000);
        for cut in [1, 11, 12, 15, 16, v2.len() - 1] {
            match parse(&v2[..cut]) {
                Err(Problem::Incomplete { need }) => {
                    assert!(need > cut && need <= v2.len(), "cut {cut}: {need}")
                }
                other => panic!("v2 cut at {cut}: {other:?}"),
            }
        }
        // From 16 bytes on, the whole length is asked for at once.
        assert_eq!(parse(&v2[..16]), Err(Problem::Incomplete { need: v2.len() }));
    }

    #[test]
    fn garbage_is_refused() {
        for garbage in [
            &b"USER alice\r\n"[..],
            b"\x16\x03\x01\x02\x00", // a TLS ClientHello without a header
            b"PROXY TCP4 not-an-address 10.0.0.5 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.5 99999 2121\r\n",
            b"PROXY TCP5 192.0.2.7 10.0.0.5 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.5 1 2\n",
            b"proxy TCP4 192.0.2.7 10.0.0.5 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.5 1 2\r\xff\r\n",
        ] {
            assert!(matches!(parse(garbage), Err(Problem::Invalid(_))), "{garbage:?}: {:?}", parse(garbage));
        }
        let mut bad_version = v2_tcp4([192, 0, 2, 7], 1);
        bad_version[12] = 0x11;
        assert!(matches!(parse(&bad_version), Err(Problem::Invalid(_))));
        let mut bad_command = v2_tcp4([192, 0, 2, 7], 1);
        bad_command[12] = 0x2f;
        assert!(matches!(parse(&bad_command), Err(Problem::Invalid(_))));
        // An IPv4 family with too few address bytes.
        let short = v2(0x1, 0x11, &[1, 2, 3], &[]);
        assert!(matches!(parse(&short), Err(Problem::Invalid(_))));
    }

    #[test]
    fn oversized_headers_are_refused() {
        let long_v1 = format!("PROXY TCP4 192.0.2.7 10.0.0.5 51000 2121{}\r\n", " ".repeat(80));
        assert_eq!(parse(long_v1.as_bytes()), Err(Problem::TooLong));
        let no_end = vec![b'P'; V1_MAX + 1];
        assert!(parse(&no_end).is_err());
        let mut endless = b"PROXY UNKNOWN ".to_vec();
        endless.resize(V1_MAX + 1, b'x');
        assert_eq!(parse(&endless), Err(Problem::TooLong));
        // Refused from its fixed part alone, before its body arrives.
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge), Err(Problem::TooLong));
        let fits = v2(0x1, 0x11, &v2_tcp4([192, 0, 2, 7], 1)[16..], &vec![0x04; V2_MAX - 16 - 12]);
        assert_eq!(parse(&fits).map(|p| p.len), Ok(V2_MAX));
        let over = v2(0x1, 0x11, &v2_tcp4([192, 0, 2, 7], 1)[16..], &vec![0x04; V2_MAX - 16 - 11]);
        assert_eq!(parse(&over), Err(Problem::TooLong));
    }

    #[test]
    fn only_trusted_sources_send_headers() {
        let cfg = |trusted: &[&str], listen: &[&str], required: bool| ProxyProtocolConfig {
            trusted: trusted.iter().map(|s| s.parse::<Cidr>().unwrap()).collect(),
            listen: listen.iter().map(|s| s.parse().unwrap()).collect(),
            required,
            ..ProxyProtocolConfig::default()
        };
        let listener: SocketAddr = "0.0.0.0:2121".parse().unwrap();
        let other: SocketAddr = "0.0.0.0:2122".parse().unwrap();
        let balancer: IpAddr = "10.0.0.9".parse().unwrap();
        let stranger: IpAddr = "192.0.2.7".parse().unwrap();

        assert_eq!(
            expect(&ProxyProtocolConfig::default(), listener, balancer),
            Expect::Plain,
            "off by default"
        );
        let open = cfg(&["10.0.0.0/8"], &[], false);
        assert_eq!(expect(&open, listener, balancer), Expect::Header);
        assert_eq!(expect(&open, listener, "::ffff:10.0.0.9".parse().unwrap()), Expect::Header);
        assert_eq!(expect(&open, listener, stranger), Expect::Plain, "untrusted: plain FTP");
        let required = cfg(&["10.0.0.0/8"], &[], true);
        assert_eq!(expect(&required, listener, stranger), Expect::Refuse);
        assert_eq!(expect(&required, listener, balancer), Expect::Header);
        let subset = cfg(&["10.0.0.0/8"], &["0.0.0.0:2121"], true);
        assert_eq!(expect(&subset, listener, balancer), Expect::Header);
        assert_eq!(expect(&subset, other, balancer), Expect::Plain, "a listener outside the subset");
        assert_eq!(expect(&subset, other, stranger), Expect::Plain);
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn reads_exactly_the_header() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, mut server) = pair().await;
        let mut bytes = v2_tcp4([127, 0, 0, 2], 40000);
        bytes.extend_from_slice(b"\x16\x03\x01rest");
        client.write_all(&bytes).await.unwrap();
        let parsed = read_header(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(parsed.origin, client_at("127.0.0.2:40000"));
        let mut rest = [0u8; 7];
        let read = tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut rest)).await;
        read.expect("the bytes after the header were consumed").unwrap();
        assert_eq!(&rest, b"\x16\x03\x01rest", "the bytes after the header stay for TLS");
    }

    #[tokio::test]
    async fn a_header_in_pieces_is_assembled() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, mut server) = pair().await;
        let writer = tokio::spawn(async move {
            for piece in [&b"PROXY TCP4 127.0.0.2"[..], b" 127.0.0.1 4000", b"0 2121\r", b"\nUSER x\r\n"] {
                client.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            client
        });
        let parsed = read_header(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(parsed.origin, client_at("127.0.0.2:40000"));
        let _client = writer.await.unwrap();
        let mut rest = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut rest)).await;
        read.expect("the bytes after the header were consumed").unwrap();
        assert_eq!(&rest, b"USER x\r\n");
    }

    #[tokio::test]
    async fn silence_partial_headers_and_garbage_end_in_time() {
        use tokio::io::AsyncWriteExt as _;
        let within = Duration::from_millis(300);
        let (_silent, mut server) = pair().await;
        let started = std::time::Instant::now();
        assert!(matches!(read_header(&mut server, within).await, Err(ReadError::Timeout { received: 0 })));
        assert!(started.elapsed() < Duration::from_secs(3));

        let (mut partial, mut server) = pair().await;
        partial.write_all(b"PROXY TCP4 127.0.0.2").await.unwrap();
        assert!(matches!(read_header(&mut server, within).await, Err(ReadError::Timeout { received: 20 })));

        let (mut garbage, mut server) = pair().await;
        garbage.write_all(b"USER alice\r\n").await.unwrap();
        assert!(matches!(
            read_header(&mut server, within).await,
            Err(ReadError::Header(Problem::Invalid(_)))
        ));

        let (closed, mut server) = pair().await;
        drop(closed);
        assert!(matches!(read_header(&mut server, within).await, Err(ReadError::Closed)));

        let (mut truncated, mut server) = pair().await;
        truncated.write_all(&v2_tcp4([127, 0, 0, 2], 1)[..20]).await.unwrap();
        truncated.shutdown().await.unwrap();
        assert!(read_header(&mut server, within).await.is_err());

        let (mut big, mut server) = pair().await;
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        big.write_all(&huge).await.unwrap();
        assert!(matches!(read_header(&mut server, within).await, Err(ReadError::Header(Problem::TooLong))));
    }

    proptest::proptest! {
        /// Whatever a balancer sends, parsing neither panics nor claims
        /// more bytes than it was given or than the limits allow.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(parsed) = parse(&bytes) {
                proptest::prop_assert!(parsed.len <= bytes.len() && parsed.len <= V2_MAX);
            }
        }

        #[test]
        fn v2_prefix_then_anything(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut bytes = V2_SIGNATURE.to_vec();
            bytes.extend_from_slice(&tail);
            if let Ok(parsed) = parse(&bytes) {
                proptest::prop_assert!(parsed.len <= bytes.len());
            }
        }
    }
}
