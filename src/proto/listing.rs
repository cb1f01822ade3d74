//! Listing formats: `ls -l` lines for LIST, facts for MLSD/MLST, and the
//! timestamps MDTM and MLSx use.
//!
//! All times are shown in UTC: MDTM and MLSx require it (RFC 3659), and using
//! the same zone for LIST keeps the three consistent for clients that mix them.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, Utc};

use crate::vfs::{DirEntry, FileKind, Metadata};

/// 1000-01-01T00:00:00Z: the earliest time RFC 3659 `time-val` can express.
pub(super) const MIN_SECS: i64 = -30_610_224_000;
/// 9999-12-31T23:59:59Z: the latest.
pub(super) const MAX_SECS: i64 = 253_402_300_799;
/// Half a Gregorian year, the age at which `ls` switches from time to year.
const SIX_MONTHS_SECS: i64 = 31_556_952 / 2;

/// One `ls -l` style line (without line ending), as clients parse it:
/// `-rw-r--r--   1 ftp      ftp              1234 Nov 25 04:21 name`. Dates
/// older than six months (or in the future) show the year instead of the time.
///
/// Owner and group are always `ftp`: real uids mean nothing to a client of a
/// virtual-user server and would leak local account names.
pub fn list_line(entry: &DirEntry, now: SystemTime) -> String {
    let meta = &entry.meta;
    let (kind, default_mode) = match meta.kind {
        FileKind::File => ('-', 0o644),
        FileKind::Dir => ('d', 0o755),
        FileKind::Symlink => ('l', 0o777),
    };
    let perms = permission_string(meta.mode.unwrap_or(default_mode));
    // Backends without link counts report 0; `ls` never shows that.
    let nlink = meta.nlink.max(1);
    let secs = meta.modified.map_or(0, unix_secs);
    let age = unix_secs(now).saturating_sub(secs);
    let when = utc(secs);
    let date = if (0..SIX_MONTHS_SECS).contains(&age) {
        when.format("%b %e %H:%M")
    } else {
        when.format("%b %e  %Y")
    };
    format!(
        "{kind}{perms} {nlink:>3} ftp      ftp      {len:>12} {date} {name}",
        len = meta.len,
        name = entry.name
    )
}

/// `rwxr-xr-x` from Unix mode bits, with setuid/setgid/sticky shown in the
/// execute slots the way `ls` does (`s`/`S`, `t`/`T`).
fn permission_string(mode: u32) -> String {
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    let special = |mask: u32, exec_mask: u32, set: char, unset: char, plain: char| match (
        mode & mask != 0,
        mode & exec_mask != 0,
    ) {
        (true, true) => set,
        (true, false) => unset,
        (false, true) => plain,
        (false, false) => '-',
    };
    [
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o4000, 0o100, 's', 'S', 'x'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o2000, 0o010, 's', 'S', 'x'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o1000, 0o001, 't', 'T', 'x'),
    ]
    .iter()
    .collect()
}

/// MLSx facts for one entry followed by a space and the name, e.g.
/// `type=file;size=12;modify=20261125042100;perm=r;unique=803u12; name`.
/// `perm` is computed by the caller from the permission module (RFC 3659 7.5.5).
///
/// `type_override` replaces the `type` fact (`cdir`, `pdir`). An unfollowable
/// symlink is `type=OS.unix=symlink` so clients never take it for a file.
/// `size` is given for files only: a directory's size is meaningless to a client.
pub fn mlsx_line(name: &str, meta: &Metadata, perm: &str, type_override: Option<&str>) -> String {
    let kind = type_override.unwrap_or(match meta.kind {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "OS.unix=symlink",
    });
    let mut out = String::with_capacity(96 + name.len());
    // Writing to a String cannot fail.
    let _ = write!(out, "type={kind};");
    if meta.is_file() {
        let _ = write!(out, "size={};", meta.len);
    }
    if let Some(modified) = meta.modified {
        let _ = write!(out, "modify={};", ftp_timestamp(modified));
    }
    let _ = write!(out, "perm={perm};");
    if let Some(unique) = &meta.unique {
        let _ = write!(out, "unique={unique};");
    }
    if let Some(mode) = meta.mode {
        let _ = write!(out, "UNIX.mode={:04o};", mode & 0o7777);
    }
    out.push(' ');
    out.push_str(name);
    out
}

/// `YYYYMMDDHHMMSS` in UTC, as MDTM and MLSx `modify` want. Times outside
/// the years 1000–9999 (which RFC 3659 cannot express) are clamped, so the
/// result always has 14 digits and [`parse_ftp_timestamp`] accepts it.
pub fn ftp_timestamp(time: SystemTime) -> String {
    utc(unix_secs(time)).format("%Y%m%d%H%M%S").to_string()
}

/// Parses `YYYYMMDDHHMMSS[.sss]` (UTC) into seconds since the Unix epoch.
///
/// Ranges are those of RFC 3659 2.3: year 1000–9999, a real calendar date,
/// hour 0–23, minute 0–59, second 0–59, or 60 at 23:59 for a leap second
/// (counted as the next day's first second, as Unix time does). A fraction
/// of any length is accepted and ignored: no backend here stores sub-seconds
/// reliably.
pub fn parse_ftp_timestamp(text: &str) -> Option<i64> {
    let (digits, fraction) = match text.split_once('.') {
        Some((digits, fraction)) => (digits, Some(fraction)),
        None => (text, None),
    };
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    // All ASCII digits, so byte slicing is on char boundaries and parsing cannot fail.
    let field = |range: std::ops::Range<usize>| digits.get(range).and_then(|s| s.parse::<u32>().ok());
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1000..=9999).contains(&year) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 || (second == 60 && (hour, minute) != (23, 59)) {
        return None;
    }
    let midnight = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?.and_hms_opt(0, 0, 0)?;
    Some(midnight.and_utc().timestamp() + i64::from(hour * 3600 + minute * 60 + second))
}

/// Whole seconds since the epoch, rounded towards the past (so a time just
/// before the epoch is -1, not 0), saturating instead of overflowing.
fn unix_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before: Duration = before.duration();
            let secs = i64::try_from(before.as_secs()).map_or(i64::MIN, |s| -s);
            if before.subsec_nanos() > 0 {
                secs.saturating_sub(1)
            } else {
                secs
            }
        }
    }
}

/// The UTC date-time of `secs`, clamped to the years 1000–9999. chrono's own
/// `From<SystemTime>` panics on out-of-range times, which a backend can report.
fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs.clamp(MIN_SECS, MAX_SECS), 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> SystemTime {
        let secs = NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_opt(h, mi, s))
            .expect("valid test date")
            .and_utc()
            .timestamp();
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }

    fn meta(kind: FileKind, len: u64, modified: Option<SystemTime>, mode: Option<u32>) -> Metadata {
        Metadata { kind, len, modified, mode, unique: None, nlink: 1 }
    }

    fn entry(name: &str, meta: Metadata) -> DirEntry {
        DirEntry { name: name.to_string(), meta }
    }

    fn now() -> SystemTime {
        at(2026, 11, 25, 12, 0, 0)
    }

    #[test]
    fn clamp_bounds_are_the_rfc_years() {
        assert_eq!(utc(MIN_SECS).format("%Y%m%d%H%M%S").to_string(), "10000101000000");
        assert_eq!(utc(MAX_SECS).format("%Y%m%d%H%M%S").to_string(), "99991231235959");
    }

    #[test]
    fn list_recent_file() {
        let e = entry("name", meta(FileKind::File, 1234, Some(at(2026, 11, 25, 4, 21, 0)), None));
        assert_eq!(list_line(&e, now()), "-rw-r--r--   1 ftp      ftp              1234 Nov 25 04:21 name");
    }

    #[test]
    fn list_old_file_shows_year_and_pads_day() {
        let e = entry("old.txt", meta(FileKind::File, 5, Some(at(2025, 3, 5, 10, 0, 0)), Some(0o600)));
        assert_eq!(
            list_line(&e, now()),
            "-rw-------   1 ftp      ftp                 5 Mar  5  2025 old.txt"
        );
    }

    #[test]
    fn list_future_file_shows_year() {
        let e = entry("f", meta(FileKind::File, 0, Some(at(2026, 11, 25, 12, 0, 1)), None));
        assert_eq!(list_line(&e, now()), "-rw-r--r--   1 ftp      ftp                 0 Nov 25  2026 f");
    }

    #[test]
    fn list_six_month_boundary() {
        let just_inside = now() - Duration::from_secs(SIX_MONTHS_SECS as u64 - 1);
        let at_limit = now() - Duration::from_secs(SIX_MONTHS_SECS as u64);
        let line = |t| list_line(&entry("x", meta(FileKind::File, 0, Some(t), None)), now());
        assert!(line(just_inside).contains(':'), "{}", line(just_inside));
        assert!(!line(at_limit).contains(':'), "{}", line(at_limit));
        assert!(line(now()).contains("12:00"));
    }

    #[test]
    fn list_dir_default_mode_and_nlink() {
        let mut m = meta(FileKind::Dir, 4096, Some(at(2026, 10, 1, 8, 5, 0)), None);
        m.nlink = 12;
        assert_eq!(
            list_line(&entry("pub", m), now()),
            "drwxr-xr-x  12 ftp      ftp              4096 Oct  1 08:05 pub"
        );
    }

    #[test]
    fn list_symlink_shows_name_only() {
        let e = entry("link", meta(FileKind::Symlink, 7, Some(at(2026, 11, 1, 0, 0, 0)), None));
        assert_eq!(list_line(&e, now()), "lrwxrwxrwx   1 ftp      ftp                 7 Nov  1 00:00 link");
    }

    #[test]
    fn list_missing_time_nlink_zero_and_spaces_in_name() {
        let mut m = meta(FileKind::File, 10_000_000_000, None, Some(0o755));
        m.nlink = 0;
        assert_eq!(
            list_line(&entry("my file .txt", m), now()),
            "-rwxr-xr-x   1 ftp      ftp       10000000000 Jan  1  1970 my file .txt"
        );
    }

    #[test]
    fn list_extreme_times_do_not_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let e = entry("x", meta(FileKind::File, 0, Some(far), None));
        assert!(list_line(&e, now()).ends_with("Dec 31  9999 x"));
        // Same instant as "now": recent, so the (clamped) time is shown.
        assert!(list_line(&e, far).ends_with("Dec 31 23:59 x"));
    }

    #[test]
    fn permission_strings() {
        assert_eq!(permission_string(0o644), "rw-r--r--");
        assert_eq!(permission_string(0o7777), "rwsrwsrwt");
        assert_eq!(permission_string(0o7000), "--S--S--T");
        assert_eq!(permission_string(0o1777), "rwxrwxrwt");
        assert_eq!(permission_string(0), "---------");
    }

    #[test]
    fn mlsx_file_all_facts() {
        let mut m = meta(FileKind::File, 12, Some(at(2026, 11, 25, 4, 21, 0)), Some(0o100644));
        m.unique = Some("803u12".into());
        assert_eq!(
            mlsx_line("a b.txt", &m, "adfrw", None),
            "type=file;size=12;modify=20261125042100;perm=adfrw;unique=803u12;UNIX.mode=0644; a b.txt"
        );
    }

    #[test]
    fn mlsx_dir_minimal_and_overrides() {
        let m = meta(FileKind::Dir, 4096, None, None);
        assert_eq!(mlsx_line("pub", &m, "el", None), "type=dir;perm=el; pub");
        assert_eq!(mlsx_line(".", &m, "el", Some("cdir")), "type=cdir;perm=el; .");
        assert_eq!(mlsx_line("..", &m, "", Some("pdir")), "type=pdir;perm=; ..");
        let l = meta(FileKind::Symlink, 3, None, Some(0o777));
        assert_eq!(mlsx_line("l", &l, "", None), "type=OS.unix=symlink;perm=;UNIX.mode=0777; l");
    }

    #[test]
    fn timestamps() {
        assert_eq!(ftp_timestamp(UNIX_EPOCH), "19700101000000");
        assert_eq!(ftp_timestamp(at(2026, 11, 25, 4, 21, 0)), "20261125042100");
        assert_eq!(ftp_timestamp(UNIX_EPOCH - Duration::from_millis(1)), "19691231235959");
        assert_eq!(ftp_timestamp(UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2)), "99991231235959");
        assert_eq!(ftp_timestamp(at(1000, 1, 1, 0, 0, 0) - Duration::from_secs(1)), "10000101000000");
        assert_eq!(parse_ftp_timestamp("19700101000000"), Some(0));
        assert_eq!(parse_ftp_timestamp("20261125042100"), Some(1_795_580_460));
        assert_eq!(parse_ftp_timestamp("20261125042100.5"), Some(1_795_580_460));
        assert_eq!(parse_ftp_timestamp("20261125042100.123456"), Some(1_795_580_460));
        assert_eq!(parse_ftp_timestamp("19691231235959"), Some(-1));
        assert_eq!(parse_ftp_timestamp("20240229000000"), Some(1_709_164_800));
        assert_eq!(parse_ftp_timestamp("20161231235960"), parse_ftp_timestamp("20170101000000"));
    }

    #[test]
    fn bad_timestamps() {
        for bad in [
            "",
            "2026112504210",
            "202611250421000",
            "2026112504210a",
            "20261325042100",
            "20260025042100",
            "20261100042100",
            "20261131042100",
            "20230229000000",
            "20261125242100",
            "20261125046000",
            "20261125042160",
            "20261125042360",
            "09991231235959",
            "20261125042100.",
            "20261125042100.x",
            "20261125042100.1.2",
            "+2026112504210",
            " 20261125042100",
            "２0261125042100",
        ] {
            assert_eq!(parse_ftp_timestamp(bad), None, "{bad:?}");
        }
    }
}
