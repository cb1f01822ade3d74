//! Virtual paths and the storage behind them.
//!
//! A client sees one tree rooted at `/`. [`Vfs`] maps a virtual path to a
//! [`Storage`] backend and a path relative to that backend's root, through the
//! account's root and its virtual directories (mounts, longest prefix wins).
//! Confinement is enforced twice: virtual paths are normalised so they never
//! rise above `/`, and every backend resolves relative paths beneath its own
//! root on the real file system (see [`local`]), so `..`, symlinks and odd
//! encodings cannot reach outside.

pub mod local;
pub mod object;
pub mod path;
#[cfg(test)]
mod path_proptests;
pub mod quota;
pub mod storage;

pub use path::{normalize, PathError};
pub use storage::{
    Capabilities, DirEntry, EntryStream, FileKind, Metadata, Reader, Storage, StorageError, StorageErrorKind,
    Upload, WriteMode,
};

use std::path::PathBuf;
use std::sync::Arc;

/// One virtual directory of an account, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MountSpec {
    /// Normalised virtual path, e.g. `/pub`.
    pub virtual_path: String,
    /// The real directory grafted there.
    pub real_path: PathBuf,
    /// Refuse every modification below this mount.
    pub read_only: bool,
}

impl MountSpec {
    /// Parses `/virt=/real`, `/virt=/real:ro` or `/virt=/real:rw` (the
    /// command line's and the configuration's syntax). Checks the shape
    /// only: whether the real directory exists is the caller's concern.
    pub fn parse(spec: &str) -> Result<MountSpec, String> {
        let Some((virt, real)) = spec.split_once('=') else {
            return Err("write it as /VIRT=/REAL or /VIRT=/REAL:ro".into());
        };
        let (real, read_only) = match real.strip_suffix(":ro") {
            Some(r) => (r, true),
            None => (real.strip_suffix(":rw").unwrap_or(real), false),
        };
        if !virt.starts_with('/') {
            return Err(format!("`{}` is not an absolute virtual path", virt.escape_debug()));
        }
        let virtual_path = normalize("/", virt).map_err(|e| e.to_string())?;
        if virtual_path == "/" {
            return Err("`/` is the user's root; change the root instead".into());
        }
        if real.is_empty() {
            return Err("the real directory is missing after `=`".into());
        }
        Ok(MountSpec { virtual_path, real_path: PathBuf::from(real), read_only })
    }
}

/// Identifies a local tree for sharing between sessions.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TreeKey {
    root: PathBuf,
    mounts: Vec<MountSpec>,
}

type OpenTrees = std::collections::HashMap<TreeKey, std::sync::Weak<Vfs>>;

fn open_trees() -> std::sync::MutexGuard<'static, OpenTrees> {
    static TREES: std::sync::OnceLock<std::sync::Mutex<OpenTrees>> = std::sync::OnceLock::new();
    let trees = TREES.get_or_init(Default::default);
    trees.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The backend behind a root or a mount's real path.
fn open_storage(real: &std::path::Path) -> Result<Arc<dyn Storage>, StorageError> {
    match object::StoreRef::parse(real) {
        Some(Ok(store)) => Ok(Arc::new(object::ObjectStorage::open(&store)?)),
        Some(Err(e)) => Err(StorageError::new(StorageErrorKind::InvalidName, e)),
        None => Ok(Arc::new(local::LocalStorage::new(real)?)),
    }
}

/// A mounted backend in a session's tree.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Normalised virtual prefix: `/` for the account root, or e.g. `/pub`.
    pub virtual_prefix: String,
    pub storage: Arc<dyn Storage>,
    pub read_only: bool,
}

/// Where a virtual path lives.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub mount: &'a Mount,
    /// Path relative to the mount's storage root: `""` for the root itself, else `a/b`.
    pub rel: &'a str,
}

impl Resolved<'_> {
    /// The real location, for permission rules and log lines.
    pub fn real_location(&self) -> PathBuf {
        self.mount.storage.real_location(self.rel)
    }
}

/// The tree one logged-in session sees.
#[derive(Debug, Clone, Default)]
pub struct Vfs {
    /// Sorted by prefix length, longest first, so the first match wins.
    mounts: Vec<Mount>,
}

impl Vfs {
    /// Builds the tree for an account: `root` at `/`, then each mount. A
    /// root or mount written `store:NAME/prefix` is a configured object
    /// store ([`object`]), anything else a local directory. Fails if a
    /// directory is missing or a store is not configured.
    pub fn local(root: &std::path::Path, mounts: &[MountSpec]) -> Result<Vfs, StorageError> {
        let mut list =
            vec![Mount { virtual_prefix: "/".to_string(), storage: open_storage(root)?, read_only: false }];
        for spec in mounts {
            list.push(Mount {
                virtual_prefix: spec.virtual_path.clone(),
                storage: open_storage(&spec.real_path)?,
                read_only: spec.read_only,
            });
        }
        Ok(Vfs::from_mounts(list))
    }

    /// The tree for `root` and `mounts`, shared with every other session
    /// that has the same ones (all anonymous sessions, say): one directory
    /// handle and one set of mounts for all of them instead of one each.
    /// Blocking when the tree is not open yet.
    pub fn shared_local(root: &std::path::Path, mounts: &[MountSpec]) -> Result<Arc<Vfs>, StorageError> {
        if let Some(vfs) = Vfs::shared_local_if_open(root, mounts) {
            return Ok(vfs);
        }
        let vfs = Arc::new(Vfs::local(root, mounts)?);
        let mut trees = open_trees();
        // Drop entries of trees no session uses any more, now and then.
        if trees.len() >= 64 && trees.len().is_power_of_two() {
            trees.retain(|_, tree| tree.strong_count() > 0);
        }
        trees.insert(TreeKey { root: root.to_path_buf(), mounts: mounts.to_vec() }, Arc::downgrade(&vfs));
        Ok(vfs)
    }

    /// [`Vfs::shared_local`] without I/O: the tree if a session has it open.
    pub fn shared_local_if_open(root: &std::path::Path, mounts: &[MountSpec]) -> Option<Arc<Vfs>> {
        let key = TreeKey { root: root.to_path_buf(), mounts: mounts.to_vec() };
        open_trees().get(&key).and_then(std::sync::Weak::upgrade)
    }

    pub fn from_mounts(mut mounts: Vec<Mount>) -> Vfs {
        mounts.sort_by_key(|m| std::cmp::Reverse(m.virtual_prefix.len()));
        Vfs { mounts }
    }

    /// Maps a normalised virtual path (from [`normalize`]) to its mount.
    /// Returns `None` only if there is no root mount.
    pub fn resolve<'a>(&'a self, virtual_path: &'a str) -> Option<Resolved<'a>> {
        self.mounts.iter().find_map(|m| {
            path::strip_mount_prefix(&m.virtual_prefix, virtual_path).map(|rel| Resolved { mount: m, rel })
        })
    }

    /// Names of mount points directly inside `virtual_dir`, so listings show
    /// them even where the underlying directory has no such entry.
    pub fn mount_points_in<'a>(&'a self, virtual_dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.mounts.iter().filter_map(move |m| path::child_name(virtual_dir, &m.virtual_prefix))
    }

    /// True if `virtual_path` is exactly a mount point (other than `/`):
    /// such directories cannot be removed or renamed.
    pub fn is_mount_point(&self, virtual_path: &str) -> bool {
        virtual_path != "/" && self.mounts.iter().any(|m| m.virtual_prefix == virtual_path)
    }
}
