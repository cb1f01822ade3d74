//! Command parsing: one line from the control connection (without its CR LF)
//! into a typed [`Command`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use super::listing::parse_ftp_timestamp;

/// Representation type (RFC 959 TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// TYPE A (and `A N`): line endings converted to CR LF on the wire.
    Ascii,
    /// TYPE I (and `L 8`): bytes as they are.
    Image,
}

/// The argument of EPSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// `EPSV`: the control connection's protocol.
    Any,
    /// `EPSV 1` / `EPSV 2`.
    Protocol(u8),
    /// `EPSV ALL`: from now on refuse PORT, EPRT and PASV.
    All,
}

/// A parsed command. Path arguments are the raw text the client sent (UTF-8,
/// spaces kept); the session normalises them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(String),
    Acct(String),
    Quit,
    Rein,
    Noop,
    Syst,
    /// STAT with no argument: server status (or transfer status while one runs);
    /// with an argument: a listing over the control connection.
    Stat(Option<String>),
    Help(Option<String>),
    /// SITE and its argument text (e.g. `CHMOD 644 f`, `HELP`).
    Site(String),
    Type(TransferType),
    /// MODE S only; other modes are refused by the parser with 504.
    Mode,
    /// STRU F only; others refused with 504.
    Stru,
    Pwd,
    Cwd(String),
    Cdup,
    Mkd(String),
    Rmd(String),
    Dele(String),
    Rnfr(String),
    Rnto(String),
    /// LIST [options] [path]; `ls`-style options such as `-la` are dropped.
    List(Option<String>),
    Nlst(Option<String>),
    Retr(String),
    Stor(String),
    /// STOU with an optional name hint.
    Stou(Option<String>),
    Appe(String),
    Rest(u64),
    /// ALLO: the size in bytes, when given.
    Allo(Option<u64>),
    Abor,
    Pasv,
    Port(SocketAddr),
    Epsv(EpsvArg),
    Eprt(SocketAddr),
    Feat,
    /// OPTS, e.g. `UTF8 ON`, `MLST type;size;`.
    Opts(String),
    Size(String),
    Mdtm(String),
    Mlst(Option<String>),
    Mlsd(Option<String>),
    /// MFMT YYYYMMDDHHMMSS path: the time as seconds since the Unix epoch (UTC).
    Mfmt {
        time: i64,
        path: String,
    },
    /// HOST (RFC 7151).
    Host(String),
    /// AUTH, PBSZ, PROT, CCC: parsed so the session can answer them.
    Auth(String),
    Pbsz(String),
    Prot(String),
    Ccc,
}

/// Why a line is not a valid command. Each maps to a standard reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// 500: unknown verb.
    #[error("'{0}' not understood")]
    Unknown(String),
    /// 501: a verb that needs an argument got none, or a malformed one.
    #[error("{0}")]
    Syntax(String),
    /// 504: known command, unsupported parameter (TYPE E, MODE B, STRU R …).
    #[error("{0}")]
    Unsupported(String),
    /// 522: EPRT/EPSV name a network protocol other than 1 (IPv4) or 2 (IPv6).
    #[error("Network protocol not supported, use (1,2)")]
    UnsupportedProtocol,
    /// 500: line is not UTF-8 or contains a NUL or a bare CR.
    #[error("invalid characters in command line")]
    InvalidEncoding,
}

impl ParseError {
    pub fn code(&self) -> u16 {
        match self {
            ParseError::Unknown(_) | ParseError::InvalidEncoding => 500,
            ParseError::Syntax(_) => 501,
            ParseError::Unsupported(_) => 504,
            ParseError::UnsupportedProtocol => 522,
        }
    }
}

/// Longest verb echoed back in [`ParseError::Unknown`]: every real verb fits,
/// and a hostile line cannot bloat the reply.
const MAX_ECHOED_VERB: usize = 16;

/// Telnet "Interpret As Command" and "Data Mark" bytes (RFC 854).
const IAC: u8 = 0xFF;
const DM: u8 = 0xF2;

/// Classifies a line with invalid bytes by where they are.
fn encoding_error(line: &[u8]) -> ParseError {
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    let verb_end = line[start..].iter().position(|&b| b == b' ').map_or(line.len(), |i| start + i);
    let verb_ok = line[start..verb_end].iter().all(u8::is_ascii_alphanumeric) && verb_end > start;
    if verb_ok && verb_end < line.len() {
        ParseError::Syntax("invalid character in argument".into())
    } else {
        ParseError::InvalidEncoding
    }
}

/// Parses one command line, given without its line ending.
///
/// The verb is case-insensitive and ends at the first space; the argument
/// starts after the run of spaces that follows and is kept as sent, trailing
/// spaces included, because file names may contain them. Arguments that are
/// tokens (TYPE, PORT, REST …) are trimmed. Any input gives `Ok` or `Err`,
/// never a panic.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    // Telnet IP/Synch before ABOR or STAT is not UTF-8, so it goes first.
    let line = strip_telnet_prefix(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // A CR or LF inside could never be echoed back safely in a reply or a
    // listing, and NUL cannot be part of any path. In the argument that is a
    // bad argument (501); in the verb, a line that is not a command (500).
    let bad_byte = |b: &u8| matches!(*b, b'\0' | b'\r' | b'\n');
    let line = match std::str::from_utf8(line) {
        Ok(text) if !line.iter().any(bad_byte) => text,
        _ => return Err(encoding_error(line)),
    };
    let line = line.trim_start_matches(' ');
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let arg = Some(rest.trim_start_matches(' ')).filter(|a| !a.is_empty());
    let upper = verb.to_ascii_uppercase();
    let verb = upper.as_str();

    // The argument as sent, required.
    let text = || arg.map(str::to_owned).ok_or_else(|| missing_argument(verb));
    // The argument as sent, optional.
    let optional = || arg.map(str::to_owned);
    // The argument without trailing spaces, required (an all-space argument
    // never reaches here: it is `None`).
    let token = || arg.map(|a| a.trim_end_matches(' ')).ok_or_else(|| missing_argument(verb));

    Ok(match verb {
        "USER" => Command::User(text()?),
        // An empty password is legitimate (anonymous logins, some clients
        // send a bare PASS); refusing it would only confuse them.
        "PASS" => Command::Pass(optional().unwrap_or_default()),
        "ACCT" => Command::Acct(text()?),
        "QUIT" => Command::Quit,
        "REIN" => Command::Rein,
        "NOOP" => Command::Noop,
        "SYST" => Command::Syst,
        "STAT" => Command::Stat(optional()),
        "HELP" => Command::Help(optional()),
        "SITE" => Command::Site(text()?),
        "TYPE" => Command::Type(parse_type(token()?)?),
        "MODE" => {
            if !token()?.eq_ignore_ascii_case("S") {
                return Err(ParseError::Unsupported("only MODE S (stream) is supported".into()));
            }
            Command::Mode
        }
        "STRU" => {
            if !token()?.eq_ignore_ascii_case("F") {
                return Err(ParseError::Unsupported("only STRU F (file) is supported".into()));
            }
            Command::Stru
        }
        "PWD" | "XPWD" => Command::Pwd,
        "CWD" | "XCWD" => Command::Cwd(text()?),
        "CDUP" | "XCUP" => Command::Cdup,
        "MKD" | "XMKD" => Command::Mkd(text()?),
        "RMD" | "XRMD" => Command::Rmd(text()?),
        "DELE" => Command::Dele(text()?),
        "RNFR" => Command::Rnfr(text()?),
        "RNTO" => Command::Rnto(text()?),
        "LIST" => Command::List(strip_ls_options(arg)),
        "NLST" => Command::Nlst(strip_ls_options(arg)),
        "RETR" => Command::Retr(text()?),
        "STOR" => Command::Stor(text()?),
        "STOU" => Command::Stou(optional()),
        "APPE" => Command::Appe(text()?),
        "REST" => {
            Command::Rest(parse_decimal(token()?).ok_or_else(|| syntax("REST needs a decimal byte offset"))?)
        }
        "ALLO" => Command::Allo(Some(parse_allo(token()?)?)),
        "ABOR" => Command::Abor,
        "PASV" => Command::Pasv,
        "PORT" => Command::Port(parse_port(token()?)?),
        "EPSV" => Command::Epsv(parse_epsv(arg.map(|a| a.trim_end_matches(' ')))?),
        "EPRT" => Command::Eprt(parse_eprt(token()?)?),
        "FEAT" => Command::Feat,
        "OPTS" => Command::Opts(token()?.to_owned()),
        "SIZE" => Command::Size(text()?),
        "MDTM" => Command::Mdtm(text()?),
        "MLST" => Command::Mlst(optional()),
        "MLSD" => Command::Mlsd(optional()),
        "MFMT" => parse_mfmt(arg.ok_or_else(|| missing_argument(verb))?)?,
        "HOST" => Command::Host(token()?.to_owned()),
        "AUTH" => Command::Auth(token()?.to_owned()),
        "PBSZ" => Command::Pbsz(token()?.to_owned()),
        "PROT" => Command::Prot(token()?.to_owned()),
        "CCC" => Command::Ccc,
        _ => return Err(unknown(verb)),
    })
}

/// Drops leading Telnet commands. Clients send IAC IP IAC DM before ABOR
/// (RFC 959 4.1.3); the DM travels as TCP urgent data, so without
/// SO_OOBINLINE it is missing and a lone IAC remains, and with it a lone DM
/// may arrive. A line never legitimately starts with these bytes.
fn strip_telnet_prefix(mut line: &[u8]) -> &[u8] {
    loop {
        match line {
            [IAC, 0xF0..=0xFE, rest @ ..] | [IAC | DM, rest @ ..] => line = rest,
            _ => return line,
        }
    }
}

fn syntax(message: &str) -> ParseError {
    ParseError::Syntax(message.to_owned())
}

fn missing_argument(verb: &str) -> ParseError {
    ParseError::Syntax(format!("{verb} needs an argument"))
}

/// The verb for a 500 reply: uppercased, shortened, control characters
/// replaced so nothing the client sent can disturb the reply line.
fn unknown(verb: &str) -> ParseError {
    let shown = verb.chars().take(MAX_ECHOED_VERB).map(|c| if c.is_control() { '?' } else { c }).collect();
    ParseError::Unknown(shown)
}

/// A plain decimal number: digits only (no sign, no spaces), fitting in u64.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// TYPE A [N] | I | L 8 are served; other well-formed types (E, A T, A C,
/// L n) are valid FTP but unsupported (504); anything else is a syntax error.
fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let mut words = arg.split(' ').filter(|w| !w.is_empty());
    let (code, param) = (words.next().unwrap_or(""), words.next());
    if words.next().is_some() {
        return Err(syntax("TYPE takes at most two parameters"));
    }
    let unsupported = |what: &str| Err(ParseError::Unsupported(format!("TYPE {what} not implemented")));
    let is_format = |p: &str| ["N", "T", "C"].iter().any(|f| p.eq_ignore_ascii_case(f));
    match code.to_ascii_uppercase().as_str() {
        "A" => match param {
            None => Ok(TransferType::Ascii),
            Some(p) if p.eq_ignore_ascii_case("N") => Ok(TransferType::Ascii),
            Some(p) if is_format(p) => unsupported(&format!("A {}", p.to_ascii_uppercase())),
            Some(_) => Err(syntax("TYPE A takes a format of N, T or C")),
        },
        "E" => match param {
            None => unsupported("E"),
            Some(p) if is_format(p) => unsupported(&format!("E {}", p.to_ascii_uppercase())),
            Some(_) => Err(syntax("TYPE E takes a format of N, T or C")),
        },
        "I" if param.is_none() => Ok(TransferType::Image),
        "I" => Err(syntax("TYPE I takes no parameter")),
        "L" => match param.and_then(parse_decimal) {
            Some(8) => Ok(TransferType::Image),
            Some(n @ 1..=255) => unsupported(&format!("L {n}")),
            _ => Err(syntax("TYPE L needs a byte size")),
        },
        _ => Err(syntax("unknown TYPE; use A or I")),
    }
}

/// `ALLO n` or `ALLO n R m`; only the size matters (storage is not preallocated).
fn parse_allo(arg: &str) -> Result<u64, ParseError> {
    let words: Vec<&str> = arg.split(' ').filter(|w| !w.is_empty()).collect();
    let size = match words.as_slice() {
        [n] => parse_decimal(n),
        [n, r, m] if r.eq_ignore_ascii_case("R") && parse_decimal(m).is_some() => parse_decimal(n),
        _ => None,
    };
    size.ok_or_else(|| syntax("ALLO needs a decimal size, optionally followed by R and a record size"))
}

/// `h1,h2,h3,h4,p1,p2` (RFC 959), each a decimal 0–255.
fn parse_port(arg: &str) -> Result<SocketAddr, ParseError> {
    let bad = || syntax("PORT needs h1,h2,h3,h4,p1,p2 with each number in 0-255");
    let mut fields = [0u8; 6];
    let mut parts = arg.split(',');
    for field in &mut fields {
        let part = parts.next().ok_or_else(bad)?.trim_matches(' ');
        *field = parse_decimal(part).and_then(|n| u8::try_from(n).ok()).ok_or_else(bad)?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    let [h1, h2, h3, h4, p1, p2] = fields;
    let ip = Ipv4Addr::new(h1, h2, h3, h4);
    Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([p1, p2]))))
}

/// EPSV [1|2|ALL] (RFC 2428).
fn parse_epsv(arg: Option<&str>) -> Result<EpsvArg, ParseError> {
    match arg {
        None => Ok(EpsvArg::Any),
        Some("1") => Ok(EpsvArg::Protocol(1)),
        Some("2") => Ok(EpsvArg::Protocol(2)),
        Some(a) if a.eq_ignore_ascii_case("ALL") => Ok(EpsvArg::All),
        Some(a) if parse_decimal(a).is_some() => Err(ParseError::UnsupportedProtocol),
        Some(_) => Err(syntax("EPSV takes 1, 2 or ALL")),
    }
}

/// `<d>proto<d>address<d>port<d>` (RFC 2428), where `d` is any printable
/// ASCII character other than space; proto 1 needs an IPv4 address, 2 IPv6.
fn parse_eprt(arg: &str) -> Result<SocketAddr, ParseError> {
    let bad = || syntax("EPRT needs |1|IPv4 address|port| or |2|IPv6 address|port|");
    let delimiter = arg.chars().next().filter(|c| ('!'..='~').contains(c)).ok_or_else(bad)?;
    let fields: Vec<&str> = arg.split(delimiter).collect();
    let ["", proto, address, port, ""] = fields.as_slice() else {
        return Err(bad());
    };
    let port = parse_decimal(port).and_then(|p| u16::try_from(p).ok()).ok_or_else(bad)?;
    let ip: IpAddr = match *proto {
        "1" => address.parse::<Ipv4Addr>().map_err(|_| bad())?.into(),
        "2" => address.parse::<Ipv6Addr>().map_err(|_| bad())?.into(),
        other if parse_decimal(other).is_some() => return Err(ParseError::UnsupportedProtocol),
        _ => return Err(bad()),
    };
    Ok(SocketAddr::new(ip, port))
}

/// `LIST -la dir` → `dir`: many clients pass `ls` options, which a server
/// that does not run `ls` should ignore rather than treat as a path.
fn strip_ls_options(arg: Option<&str>) -> Option<String> {
    let mut rest = arg?;
    while rest.starts_with('-') {
        rest = rest.split_once(' ').map_or("", |(_, after)| after).trim_start_matches(' ');
    }
    Some(rest).filter(|r| !r.trim_end_matches(' ').is_empty()).map(str::to_owned)
}

/// `MFMT YYYYMMDDHHMMSS[.sss] path` (draft-somers-ftp-mfxx); the path is kept
/// as sent.
fn parse_mfmt(arg: &str) -> Result<Command, ParseError> {
    let (time, path) = arg.split_once(' ').ok_or_else(|| syntax("MFMT needs a time and a path"))?;
    let time = parse_ftp_timestamp(time).ok_or_else(|| syntax("MFMT time must be YYYYMMDDHHMMSS (UTC)"))?;
    let path = path.trim_start_matches(' ');
    if path.is_empty() {
        return Err(syntax("MFMT needs a time and a path"));
    }
    Ok(Command::Mfmt { time, path: path.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, ParseError> {
        parse(line.as_bytes())
    }

    fn ok(line: &str) -> Command {
        match p(line) {
            Ok(cmd) => cmd,
            Err(e) => panic!("{line:?} failed: {e:?}"),
        }
    }

    fn code(line: &str) -> u16 {
        match p(line) {
            Ok(cmd) => panic!("{line:?} parsed as {cmd:?}"),
            Err(e) => e.code(),
        }
    }

    fn s(text: &str) -> String {
        text.to_string()
    }

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((a, port))
    }

    #[test]
    fn verbs_without_argument() {
        for (line, cmd) in [
            ("QUIT", Command::Quit),
            ("REIN", Command::Rein),
            ("NOOP", Command::Noop),
            ("SYST", Command::Syst),
            ("PWD", Command::Pwd),
            ("XPWD", Command::Pwd),
            ("CDUP", Command::Cdup),
            ("XCUP", Command::Cdup),
            ("ABOR", Command::Abor),
            ("PASV", Command::Pasv),
            ("FEAT", Command::Feat),
            ("CCC", Command::Ccc),
            ("MODE S", Command::Mode),
            ("STRU F", Command::Stru),
        ] {
            assert_eq!(ok(line), cmd, "{line}");
            assert_eq!(ok(&line.to_lowercase()), cmd, "{line} lower case");
            assert_eq!(ok(&format!("  {line}  ")), cmd, "{line} padded");
        }
    }

    #[test]
    fn verbs_with_text_argument() {
        type Ctor = fn(String) -> Command;
        let table: [(&str, Ctor); 21] = [
            ("USER", Command::User),
            ("ACCT", Command::Acct),
            ("SITE", Command::Site),
            ("CWD", Command::Cwd),
            ("XCWD", Command::Cwd),
            ("MKD", Command::Mkd),
            ("XMKD", Command::Mkd),
            ("RMD", Command::Rmd),
            ("XRMD", Command::Rmd),
            ("DELE", Command::Dele),
            ("RNFR", Command::Rnfr),
            ("RNTO", Command::Rnto),
            ("RETR", Command::Retr),
            ("STOR", Command::Stor),
            ("APPE", Command::Appe),
            ("SIZE", Command::Size),
            ("MDTM", Command::Mdtm),
            ("HOST", Command::Host),
            ("AUTH", Command::Auth),
            ("PBSZ", Command::Pbsz),
            ("PROT", Command::Prot),
        ];
        for (verb, ctor) in table {
            assert_eq!(ok(&format!("{verb} arg")), ctor(s("arg")), "{verb}");
            assert_eq!(ok(&format!("{}   arg", verb.to_lowercase())), ctor(s("arg")), "{verb} lower");
            assert_eq!(code(verb), 501, "{verb} without argument");
            assert_eq!(code(&format!("{verb}    ")), 501, "{verb} with only spaces");
        }
        assert_eq!(ok("OPTS UTF8 ON"), Command::Opts(s("UTF8 ON")));
        assert_eq!(ok("opts MLST type;size; "), Command::Opts(s("MLST type;size;")));
        assert_eq!(code("OPTS"), 501);
    }

    #[test]
    fn path_arguments_keep_spaces() {
        assert_eq!(ok("RETR my file.txt"), Command::Retr(s("my file.txt")));
        assert_eq!(ok("RETR  two  spaces  "), Command::Retr(s("two  spaces  ")));
        assert_eq!(ok("STOR trailing "), Command::Stor(s("trailing ")));
        assert_eq!(ok("   CWD /pub/a b"), Command::Cwd(s("/pub/a b")));
        assert_eq!(ok("SITE CHMOD 644 a b"), Command::Site(s("CHMOD 644 a b")));
        assert_eq!(ok("RETR ünïcødé ファイル"), Command::Retr(s("ünïcødé ファイル")));
        assert_eq!(ok("RETR a\tb"), Command::Retr(s("a\tb")));
        // Only the separator is a space: tokens are still tokens.
        assert_eq!(ok("AUTH TLS  "), Command::Auth(s("TLS")));
    }

    #[test]
    fn pass_may_be_empty() {
        assert_eq!(ok("PASS secret word "), Command::Pass(s("secret word ")));
        assert_eq!(ok("PASS"), Command::Pass(String::new()));
        assert_eq!(ok("pass "), Command::Pass(String::new()));
    }

    #[test]
    fn optional_arguments() {
        assert_eq!(ok("STAT"), Command::Stat(None));
        assert_eq!(ok("STAT /pub"), Command::Stat(Some(s("/pub"))));
        assert_eq!(ok("HELP"), Command::Help(None));
        assert_eq!(ok("help   retr"), Command::Help(Some(s("retr"))));
        assert_eq!(ok("MLST"), Command::Mlst(None));
        assert_eq!(ok("MLST a b"), Command::Mlst(Some(s("a b"))));
        assert_eq!(ok("MLSD "), Command::Mlsd(None));
        assert_eq!(ok("MLSD dir"), Command::Mlsd(Some(s("dir"))));
        assert_eq!(ok("STOU"), Command::Stou(None));
        assert_eq!(ok("stou hint"), Command::Stou(Some(s("hint"))));
    }

    #[test]
    fn extra_arguments_to_argumentless_verbs_are_ignored() {
        assert_eq!(ok("NOOP now"), Command::Noop);
        assert_eq!(ok("PASV 1"), Command::Pasv);
    }

    #[test]
    fn line_ending_and_encoding() {
        assert_eq!(ok("NOOP\r"), Command::Noop);
        assert_eq!(ok("RETR a \r"), Command::Retr(s("a ")));
        let bad_argument = Err(ParseError::Syntax("invalid character in argument".into()));
        assert_eq!(parse(b"RETR \xff\xfe"), bad_argument);
        assert_eq!(parse(b"RETR a\0b"), bad_argument);
        assert_eq!(parse(b"RETR a\rb"), bad_argument);
        assert_eq!(parse(b"RETR a\r\r"), bad_argument);
        assert_eq!(parse(b"RETR a\nb"), bad_argument);
        assert_eq!(parse(b"RE\0TR a"), Err(ParseError::InvalidEncoding));
        assert_eq!(parse(b"\xc3"), Err(ParseError::InvalidEncoding));
        assert_eq!(code("NOOP\0"), 500);
    }

    #[test]
    fn telnet_prefix() {
        assert_eq!(parse(b"\xff\xf4\xff\xf2ABOR"), Ok(Command::Abor));
        assert_eq!(parse(b"\xff\xf4\xff\xf2ABOR\r"), Ok(Command::Abor));
        // DM consumed as urgent data: a lone IAC is left.
        assert_eq!(parse(b"\xff\xf4\xffABOR"), Ok(Command::Abor));
        assert_eq!(parse(b"\xf2ABOR"), Ok(Command::Abor));
        assert_eq!(parse(b"\xff\xf4\xff\xf2STAT"), Ok(Command::Stat(None)));
        assert_eq!(parse(b"\xff\xf4\xff\xf2 abor"), Ok(Command::Abor));
        assert_eq!(parse(b"\xff\xf4"), Err(ParseError::Unknown(String::new())));
        // Only a prefix is stripped.
        assert_eq!(parse(b"ABOR\xff\xf4"), Err(ParseError::InvalidEncoding));
        assert_eq!(parse(b"RETR \xff\xf4a"), Err(ParseError::Syntax("invalid character in argument".into())));
    }

    #[test]
    fn unknown_verbs() {
        assert_eq!(p("XYZZY"), Err(ParseError::Unknown(s("XYZZY"))));
        assert_eq!(p("foo bar"), Err(ParseError::Unknown(s("FOO"))));
        assert_eq!(p(""), Err(ParseError::Unknown(String::new())));
        assert_eq!(p("     "), Err(ParseError::Unknown(String::new())));
        assert_eq!(p("NOOP\tx"), Err(ParseError::Unknown(s("NOOP?X"))));
        assert_eq!(p("\u{1b}[31mRED"), Err(ParseError::Unknown(s("?[31MRED"))));
        assert_eq!(p("ÄBÖR"), Err(ParseError::Unknown(s("ÄBÖR"))));
        let long = "a".repeat(100_000);
        assert_eq!(p(&long), Err(ParseError::Unknown("A".repeat(MAX_ECHOED_VERB))));
        let wide = "ж".repeat(40);
        assert_eq!(p(&wide), Err(ParseError::Unknown("ж".repeat(MAX_ECHOED_VERB))));
        assert_eq!(code("GET file"), 500);
        assert_eq!(p("GET x").map_err(|e| e.to_string()), Err(s("'GET' not understood")));
    }

    #[test]
    fn over_long_arguments() {
        let name = "x y".repeat(20_000);
        assert_eq!(ok(&format!("RETR {name}")), Command::Retr(name));
        assert_eq!(code(&format!("REST {}", "9".repeat(1000))), 501);
        assert_eq!(code(&format!("PORT {}", "1,".repeat(1000))), 501);
    }

    #[test]
    fn type_variants() {
        for line in ["TYPE A", "type a", "TYPE A N", "TYPE a n", "TYPE  A   N ", "TYPE A\r"] {
            assert_eq!(ok(line), Command::Type(TransferType::Ascii), "{line}");
        }
        for line in ["TYPE I", "type i", "TYPE L 8", "TYPE l 8", "TYPE I  "] {
            assert_eq!(ok(line), Command::Type(TransferType::Image), "{line}");
        }
        for line in ["TYPE E", "TYPE e", "TYPE E N", "TYPE A T", "TYPE A C", "TYPE L 7", "TYPE L 16"] {
            assert_eq!(code(line), 504, "{line}");
        }
        for line in [
            "TYPE",
            "TYPE X",
            "TYPE AN",
            "TYPE IMAGE",
            "TYPE A X",
            "TYPE I N",
            "TYPE L",
            "TYPE L x",
            "TYPE L 0",
        ] {
            assert_eq!(code(line), 501, "{line}");
        }
        assert_eq!(code("TYPE L 256"), 501);
        assert_eq!(code("TYPE A N N"), 501);
        assert_eq!(p("TYPE a t"), Err(ParseError::Unsupported(s("TYPE A T not implemented"))));
    }

    #[test]
    fn mode_and_stru() {
        assert_eq!(ok("mode s"), Command::Mode);
        assert_eq!(ok("stru f "), Command::Stru);
        for line in ["MODE B", "MODE C", "MODE Z", "MODE SS", "STRU R", "STRU P", "STRU FF"] {
            assert_eq!(code(line), 504, "{line}");
        }
        assert_eq!(code("MODE"), 501);
        assert_eq!(code("STRU"), 501);
    }

    #[test]
    fn rest_and_allo() {
        assert_eq!(ok("REST 0"), Command::Rest(0));
        assert_eq!(ok("rest 1234567 "), Command::Rest(1_234_567));
        assert_eq!(ok("REST 18446744073709551615"), Command::Rest(u64::MAX));
        for line in
            ["REST", "REST -1", "REST +1", "REST 1.5", "REST 18446744073709551616", "REST 1 2", "REST x"]
        {
            assert_eq!(code(line), 501, "{line}");
        }
        assert_eq!(ok("ALLO 1024"), Command::Allo(Some(1024)));
        assert_eq!(ok("allo 1024 r 512"), Command::Allo(Some(1024)));
        assert_eq!(ok("ALLO  10  R  5 "), Command::Allo(Some(10)));
        for line in ["ALLO", "ALLO x", "ALLO 10 R", "ALLO 10 X 5", "ALLO 10 R x", "ALLO -1", "ALLO 1 2"] {
            assert_eq!(code(line), 501, "{line}");
        }
    }

    #[test]
    fn port() {
        assert_eq!(ok("PORT 192,168,1,2,7,138"), Command::Port(v4([192, 168, 1, 2], 7 * 256 + 138)));
        assert_eq!(ok("port 0,0,0,0,0,0"), Command::Port(v4([0, 0, 0, 0], 0)));
        assert_eq!(ok("PORT 255,255,255,255,255,255"), Command::Port(v4([255; 4], 65535)));
        assert_eq!(ok("PORT 10, 0, 0, 1, 4, 1 "), Command::Port(v4([10, 0, 0, 1], 1025)));
        assert_eq!(ok("PORT 010,000,000,001,004,001"), Command::Port(v4([10, 0, 0, 1], 1025)));
        for line in [
            "PORT",
            "PORT 1,2,3,4,5",
            "PORT 1,2,3,4,5,6,7",
            "PORT 1,2,3,4,5,256",
            "PORT 256,2,3,4,5,6",
            "PORT 1,2,3,4,5,-6",
            "PORT 1,2,3,4,5,",
            "PORT ,1,2,3,4,5",
            "PORT 1.2.3.4,5,6",
            "PORT 1,2,3,4,5,6x",
            "PORT 1,,3,4,5,6",
            "PORT a,b,c,d,e,f",
        ] {
            assert_eq!(code(line), 501, "{line}");
        }
    }

    #[test]
    fn eprt() {
        assert_eq!(ok("EPRT |1|132.235.1.2|6275|"), Command::Eprt(v4([132, 235, 1, 2], 6275)));
        assert_eq!(ok("EPRT |2|::1|5282|"), Command::Eprt("[::1]:5282".parse().expect("addr")));
        assert_eq!(
            ok("eprt |2|1080::8:800:200C:417A|5282| "),
            Command::Eprt("[1080::8:800:200c:417a]:5282".parse().expect("addr"))
        );
        assert_eq!(
            ok("EPRT !2!::ffff:1.2.3.4!21!"),
            Command::Eprt("[::ffff:1.2.3.4]:21".parse().expect("addr"))
        );
        assert_eq!(ok("EPRT ~1~10.0.0.1~65535~"), Command::Eprt(v4([10, 0, 0, 1], 65535)));
        assert_eq!(ok("EPRT #1#10.0.0.1#0#"), Command::Eprt(v4([10, 0, 0, 1], 0)));
        for line in [
            "EPRT",
            "EPRT |2|132.235.1.2|6275|",
            "EPRT |1|::1|6275|",
            "EPRT ||1.2.3.4|21|",
            "EPRT |1|1.2.3.4|65536|",
            "EPRT |1|1.2.3.4|-1|",
            "EPRT |1|1.2.3.4||",
            "EPRT |1|1.2.3.4|21",
            "EPRT |1|1.2.3.4|21||",
            "EPRT 1|1.2.3.4|21|",
            "EPRT .1.1.2.3.4.21.",
            "EPRT |1|1.2.3.4|21!",
            "EPRT |2|fe80::1%eth0|21|",
            "EPRT |2|[::1]|21|",
            "EPRT \u{7f}1\u{7f}1.2.3.4\u{7f}21\u{7f}",
            "EPRT é1é1.2.3.4é21é",
        ] {
            assert_eq!(code(line), 501, "{line}");
        }
    }

    #[test]
    fn epsv() {
        assert_eq!(ok("EPSV"), Command::Epsv(EpsvArg::Any));
        assert_eq!(ok("EPSV  "), Command::Epsv(EpsvArg::Any));
        assert_eq!(ok("EPSV 1"), Command::Epsv(EpsvArg::Protocol(1)));
        assert_eq!(ok("epsv 2 "), Command::Epsv(EpsvArg::Protocol(2)));
        assert_eq!(ok("EPSV ALL"), Command::Epsv(EpsvArg::All));
        assert_eq!(ok("epsv all"), Command::Epsv(EpsvArg::All));
        assert_eq!(ok("EPSV aLl"), Command::Epsv(EpsvArg::All));
        assert_eq!(code("EPSV 3"), 522);
        assert_eq!(code("EPRT |3|1.2.3.4|21|"), 522);
        for line in ["EPSV ALLX", "EPSV 1 2", "EPSV |1|"] {
            assert_eq!(code(line), 501, "{line}");
        }
    }

    #[test]
    fn list_and_nlst_options() {
        for (verb, ctor) in [("LIST", Command::List as fn(_) -> _), ("NLST", Command::Nlst)] {
            let c = |arg: Option<&str>| ctor(arg.map(str::to_owned));
            assert_eq!(ok(verb), c(None));
            assert_eq!(ok(&format!("{verb} ")), c(None));
            assert_eq!(ok(&format!("{verb} -la")), c(None));
            assert_eq!(ok(&format!("{verb} -la   ")), c(None));
            assert_eq!(ok(&format!("{verb} -l -a")), c(None));
            assert_eq!(ok(&format!("{verb} -a /pub")), c(Some("/pub")));
            assert_eq!(ok(&format!("{verb}  -l  -a   /pub")), c(Some("/pub")));
            assert_eq!(ok(&format!("{verb} -la dir with space")), c(Some("dir with space")));
            assert_eq!(ok(&format!("{verb} dir -la")), c(Some("dir -la")));
            assert_eq!(ok(&format!("{verb} /pub")), c(Some("/pub")));
            assert_eq!(ok(&format!("{} a b ", verb.to_lowercase())), c(Some("a b ")));
            assert_eq!(ok(&format!("{verb} -")), c(None));
        }
    }

    #[test]
    fn mfmt() {
        assert_eq!(
            ok("MFMT 20261125042100 file name.txt"),
            Command::Mfmt { time: 1_795_580_460, path: s("file name.txt") }
        );
        assert_eq!(ok("mfmt 19700101000000.123   a "), Command::Mfmt { time: 0, path: s("a ") });
        for line in [
            "MFMT",
            "MFMT 20261125042100",
            "MFMT 20261125042100 ",
            "MFMT 2026112504210 f",
            "MFMT 20261325042100 f",
            "MFMT 20261125042100. f",
            "MFMT f 20261125042100",
            "MFMT 20261125042100x f",
        ] {
            assert_eq!(code(line), 501, "{line}");
        }
    }

    #[test]
    fn error_codes_and_messages() {
        assert_eq!(p("RETR"), Err(ParseError::Syntax(s("RETR needs an argument"))));
        assert_eq!(p("xmkd"), Err(ParseError::Syntax(s("XMKD needs an argument"))));
        assert_eq!(ParseError::InvalidEncoding.code(), 500);
        assert_eq!(ParseError::Unknown(String::new()).code(), 500);
        assert_eq!(ParseError::Syntax(String::new()).code(), 501);
        assert_eq!(ParseError::Unsupported(String::new()).code(), 504);
    }
}
