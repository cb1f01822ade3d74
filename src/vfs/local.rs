//! The local file-system backend.

use std::path::{Path, PathBuf};

use super::StorageError;

#[derive(Debug)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: &Path) -> Result<LocalStorage, StorageError> {
        Ok(LocalStorage { root: root.to_path_buf() })
    }
}

// Placeholder until the backend lands: every call is unsupported.
#[async_trait::async_trait]
impl super::Storage for LocalStorage {
    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities { append: true, resume_upload: true, set_modified: true, set_mode: cfg!(unix) }
    }
    fn real_location(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
    async fn metadata(&self, _: &str) -> Result<super::Metadata, StorageError> {
        Err(unsupported())
    }
    async fn list(&self, _: &str) -> Result<super::EntryStream, StorageError> {
        Err(unsupported())
    }
    async fn read(&self, _: &str, _: u64) -> Result<super::Reader, StorageError> {
        Err(unsupported())
    }
    async fn write(&self, _: &str, _: super::WriteMode) -> Result<Box<dyn super::Upload>, StorageError> {
        Err(unsupported())
    }
    async fn make_dir(&self, _: &str) -> Result<(), StorageError> {
        Err(unsupported())
    }
    async fn remove_dir(&self, _: &str) -> Result<(), StorageError> {
        Err(unsupported())
    }
    async fn remove_file(&self, _: &str) -> Result<(), StorageError> {
        Err(unsupported())
    }
    async fn rename(&self, _: &str, _: &str) -> Result<(), StorageError> {
        Err(unsupported())
    }
    async fn set_modified(&self, _: &str, _: std::time::SystemTime) -> Result<(), StorageError> {
        Err(unsupported())
    }
    async fn set_mode(&self, _: &str, _: u32) -> Result<(), StorageError> {
        Err(unsupported())
    }
}

fn unsupported() -> StorageError {
    StorageError::new(super::StorageErrorKind::Unsupported, "not yet")
}
