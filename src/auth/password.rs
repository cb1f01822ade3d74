//! Password hashing (argon2id), run off the async workers and bounded.
