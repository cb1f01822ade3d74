//! The `anonymous` module: users `anonymous` and `ftp`, any password.
