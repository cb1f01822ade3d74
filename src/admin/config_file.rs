//! Changes to the configuration file from the admin pages: edited as a TOML
//! document (comments and layout kept), checked exactly as `check-config`
//! checks a file, written atomically, then the running server reloads it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml_edit::DocumentMut;

use crate::server::Shared;

/// Why a change was not saved: one message per problem, as `check-config`
/// words them (the file's name, line and key included).
#[derive(Debug, Clone)]
pub struct Rejected(pub Vec<String>);

impl Rejected {
    fn one(text: impl Into<String>) -> Rejected {
        Rejected(vec![text.into()])
    }
}

/// The file the running server was started with.
pub fn path(shared: &Shared) -> Option<PathBuf> {
    shared.config_path().map(Path::to_path_buf)
}

/// The file as an editable document.
pub fn read(path: &Path) -> Result<DocumentMut, Rejected> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Rejected::one(format!("{}: {e}", path.display())))?;
    text.parse::<DocumentMut>().map_err(|e| Rejected::one(format!("{}: {e}", path.display())))
}

/// Applies `edit`, validates the result, saves it and reloads the server.
pub async fn change(
    shared: &Arc<Shared>,
    admin: &str,
    what: &str,
    edit: impl FnOnce(&mut DocumentMut) -> Result<(), String>,
) -> Result<(), Rejected> {
    let Some(path) = path(shared) else {
        return Err(Rejected::one(
            "the server runs without a configuration file (demo setup): start it with --config FILE to edit settings",
        ));
    };
    let mut doc = read(&path)?;
    edit(&mut doc).map_err(Rejected::one)?;
    let text = doc.to_string();
    let shared = shared.clone();
    let target = path.clone();
    let result = tokio::task::spawn_blocking(move || save_and_reload(&shared, &target, &text)).await;
    match result {
        Ok(Ok(())) => {
            tracing::info!(admin, change = what, file = %path.display(), "configuration changed by an admin");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(Rejected::one(format!("saving failed: {e}"))),
    }
}

fn save_and_reload(shared: &Shared, path: &Path, text: &str) -> Result<(), Rejected> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
    let temp = dir.join(format!(".{name}.admin-{}.tmp", std::process::id()));
    std::fs::write(&temp, text).map_err(|e| Rejected::one(format!("{}: {e}", temp.display())))?;
    // The same checks as `ferroftpd check-config`, on the new text.
    if let Err(e) = crate::config::load_file(&temp) {
        let _ = std::fs::remove_file(&temp);
        let shown = temp.display().to_string();
        let real = path.display().to_string();
        return Err(Rejected(e.0.split("\n\n").map(|p| p.replace(&shown, &real)).collect()));
    }
    if let Err(e) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(Rejected::one(format!("{}: {e}", path.display())));
    }
    shared.reload().map_err(|e| Rejected::one(format!("saved, but the reload failed: {e:#}")))
}
