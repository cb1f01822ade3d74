//! Configuration: the TOML schema with its defaults ([`schema`]) and loading
//! with validation that reports file, line and a fix ([`load`]).

pub mod load;
pub mod schema;
pub mod types;

pub use load::{load_file, parse_str, validate, ConfigError};
pub use schema::*;
pub use types::{ByteSize, Cidr, Rate};
