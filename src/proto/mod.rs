//! The FTP protocol without I/O: command parsing ([`parse`]), replies
//! ([`Reply`]) and listing formats ([`listing`]). Nothing here is async or
//! touches a socket, so it is fuzzable and unit-testable.

pub mod command;
pub mod listing;
pub mod reply;

#[cfg(test)]
mod proptests;

pub use command::{parse, Command, EpsvArg, ParseError, TransferType};
pub use reply::Reply;
