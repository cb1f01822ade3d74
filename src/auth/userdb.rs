//! The `userdb` module: virtual users in an embedded SQLite database.
