//! Password hashing (argon2id), run off the async workers and bounded.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so the
//! parameters travel with each hash and can be raised later without breaking
//! stored passwords. A verification costs tens of milliseconds of CPU and
//! ~19 MiB of memory by design; it therefore runs on tokio's blocking pool,
//! and a global semaphore caps how many run at once (2 × CPUs), so a login
//! storm queues up instead of starving transfers or exhausting memory.
//!
//! [`dummy_verify`] spends the same work on a fixed hash: the chain calls it
//! when no module knows the user, so response time does not reveal which
//! user names exist.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot hash password: {0}")]
pub struct HashError(String);

/// The hasher every new hash uses: argon2id with the crate's recommended
/// parameters (OWASP's m=19 MiB, t=2, p=1).
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// Hashes `password` with a fresh random salt into a PHC string.
///
/// Blocking and CPU-heavy: call it from a CLI or inside `spawn_blocking`.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Checks `password` against a stored PHC string, synchronously. A malformed
/// hash never matches (and is logged, since it means a damaged database).
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    let parsed = match PasswordHash::new(phc) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("stored password hash is malformed: {e}");
            return false;
        }
    };
    // Parameters (memory, iterations, algorithm) come from the hash itself.
    hasher().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Most verifications allowed to run at once, process-wide.
pub fn max_concurrent_verifications() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_mul(2)
}

fn slots() -> &'static Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(max_concurrent_verifications())))
}

/// Runs `work` on the blocking pool once a verification slot is free. The
/// permit moves into the blocking task, so it stays held even if the login
/// future is dropped (client gone) while the hash is still being computed.
async fn bounded<F: FnOnce() -> bool + Send + 'static>(work: F) -> bool {
    let Ok(permit) = slots().clone().acquire_owned().await else {
        return false; // The semaphore is never closed; fail closed anyway.
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .unwrap_or(false)
}

/// Checks `password` against a stored PHC string off the async workers,
/// bounded by the global verification limit.
pub async fn verify(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    bounded(move || verify_blocking(&password, &phc)).await
}

/// A hash with the current parameters, made once, for [`dummy_verify`].
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        // Hashing cannot fail with default parameters and a generated salt;
        // should it ever, an empty string makes the dummy cheaper, not wrong.
        hash_password("ferroftpd timing equaliser").unwrap_or_default()
    })
}

/// Spends as much as a real verification (same parameters, same pool and
/// limit) and always fails. Used when no module knows the user.
pub async fn dummy_verify() {
    bounded(|| verify_blocking("not the password", dummy_hash())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_blocking("s3cret", &h));
        assert!(!verify_blocking("S3cret", &h));
        assert!(!verify_blocking("", &h));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash_password("x").unwrap(), hash_password("x").unwrap());
    }

    #[test]
    fn malformed_hash_never_matches() {
        assert!(!verify_blocking("x", "not a hash"));
        assert!(!verify_blocking("x", ""));
    }

    #[tokio::test]
    async fn async_verify_and_dummy() {
        let h = hash_password("pw").unwrap();
        assert!(verify("pw", &h).await);
        assert!(!verify("nope", &h).await);
        dummy_verify().await;
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert!(max_concurrent_verifications() >= 2);
    }
}
