//! Loading and validating a configuration file.

use std::path::Path;

use super::Config;

/// A configuration problem, already phrased for a person: file, line and
/// what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads, parses and validates a configuration file. Relative paths in it
/// are resolved against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    parse_str(&text, path)
}

/// Parses and validates configuration text; `origin` names the file in errors.
pub fn parse_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError(format!("{}: {e}", origin.display())))
}
