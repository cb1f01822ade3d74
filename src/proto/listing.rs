//! Listing formats: `ls -l` lines for LIST, facts for MLSD/MLST, and the
//! timestamps MDTM and MLSx use.

use std::time::SystemTime;

use crate::vfs::{DirEntry, Metadata};

/// One `ls -l` style line (without line ending), as clients parse it:
/// `-rw-r--r--   1 ftp      ftp          1234 Nov 25 04:21 name`. Dates
/// older than six months (or in the future) show the year instead of the time.
pub fn list_line(entry: &DirEntry, now: SystemTime) -> String {
    let _ = (entry, now);
    String::new()
}

/// MLSx facts for one entry followed by a space and the name, e.g.
/// `type=file;size=12;modify=20261125042100;perm=r;unique=803u12; name`.
/// `perm` is computed by the caller from the permission module (RFC 3659 7.5.5).
pub fn mlsx_line(name: &str, meta: &Metadata, perm: &str, type_override: Option<&str>) -> String {
    let _ = (name, meta, perm, type_override);
    String::new()
}

/// `YYYYMMDDHHMMSS` in UTC, as MDTM and MLSx `modify` want.
pub fn ftp_timestamp(time: SystemTime) -> String {
    let _ = time;
    String::new()
}

/// Parses `YYYYMMDDHHMMSS[.sss]` (UTC) into seconds since the Unix epoch.
pub fn parse_ftp_timestamp(text: &str) -> Option<i64> {
    let _ = text;
    None
}
