//! Command parsing: one line from the control connection (without its CR LF)
//! into a typed [`Command`].

use std::net::SocketAddr;

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
        }
    }
}

/// Parses one command line, given without its line ending.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let _ = line;
    Err(ParseError::Unknown(String::new()))
}
