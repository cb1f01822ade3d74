//! The one place where storage errors become FTP replies.

use crate::proto::Reply;
use crate::vfs::{PathError, StorageError, StorageErrorKind};

pub fn storage_reply(e: &StorageError) -> Reply {
    let (code, text) = match e.kind {
        StorageErrorKind::NotFound => (550, "No such file or directory."),
        StorageErrorKind::PermissionDenied => (550, "Permission denied."),
        StorageErrorKind::AlreadyExists => (550, "File exists."),
        StorageErrorKind::NotADirectory => (550, "Not a directory."),
        StorageErrorKind::IsADirectory => (550, "Is a directory."),
        StorageErrorKind::DirectoryNotEmpty => (550, "Directory not empty."),
        StorageErrorKind::NoSpace => (452, "Insufficient storage space."),
        StorageErrorKind::InvalidName => (553, "File name not allowed."),
        StorageErrorKind::Unsupported => (502, "Not supported by this storage."),
        StorageErrorKind::Other => (451, "Local error in processing."),
    };
    Reply::new(code, text)
}

/// Replies for a failed upload: a full disk during STOR is 552 (RFC 959).
pub fn upload_storage_reply(e: &StorageError) -> Reply {
    if e.kind == StorageErrorKind::NoSpace {
        Reply::new(552, "Insufficient storage space; upload discarded.")
    } else {
        storage_reply(e)
    }
}

pub fn path_reply(e: &PathError) -> Reply {
    match e {
        PathError::ControlCharacter => Reply::new(501, "Invalid character in file name."),
        PathError::TooLong => Reply::new(501, "File name too long."),
    }
}

pub fn permission_denied() -> Reply {
    Reply::new(550, "Permission denied.")
}
