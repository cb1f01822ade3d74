//! Password hashing (argon2id), run off the async workers and bounded.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so the
//! parameters travel with each hash and can be raised later without breaking
//! stored passwords. A verification costs tens of milliseconds of CPU and
//! ~19 MiB of memory by design; it therefore runs on tokio's blocking pool,
//! and a process-wide memory budget (`limits.hashing_memory`) caps how many
//! run at once: each holds its hash's memory cost of the budget while it
//! runs, so a login storm queues up instead of starving transfers or
//! exhausting memory.
//!
//! [`dummy_verify`] spends the same work on a fixed hash: the chain calls it
//! when no module knows the user, so response time does not reveal which
//! user names exist.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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

/// Memory, in KiB, that one hash made by [`hash_password`] needs to verify.
fn hash_memory_kib() -> u32 {
    argon2::Params::DEFAULT_M_COST
}

/// Memory one verification of a hash made by this server needs, in bytes:
/// the least `limits.hashing_memory` may be.
pub fn hash_memory_bytes() -> u64 {
    u64::from(hash_memory_kib()) * 1024
}

/// The memory a stored hash will take to verify, in KiB (its `m` parameter).
fn memory_cost_kib(phc: &PasswordHash<'_>) -> u32 {
    phc.params.get_decimal("m").unwrap_or_else(hash_memory_kib)
}

/// The budget applied until a server sets one (`limits.hashing_memory`'s
/// default).
const DEFAULT_BUDGET_KIB: u32 = 64 * 1024;

/// The process-wide memory budget for verifications, in KiB: one permit of
/// the semaphore per KiB. A verification holds as many permits as its hash's
/// memory cost while it runs, so the memory of all verifications running at
/// once never exceeds the budget; the others wait in line.
struct Budget {
    permits: Arc<Semaphore>,
    /// Current size of the budget.
    total_kib: Mutex<u32>,
    /// KiB held by running verifications, and the most ever held (for
    /// status and tests).
    in_use_kib: AtomicU64,
    peak_kib: AtomicU64,
}

fn budget() -> &'static Budget {
    static BUDGET: OnceLock<Budget> = OnceLock::new();
    BUDGET.get_or_init(|| Budget {
        permits: Arc::new(Semaphore::new(DEFAULT_BUDGET_KIB as usize)),
        total_kib: Mutex::new(DEFAULT_BUDGET_KIB),
        in_use_kib: AtomicU64::new(0),
        peak_kib: AtomicU64::new(0),
    })
}

/// Sets the memory all verifications running at once may use together
/// (`limits.hashing_memory`). Process-wide; a smaller budget takes effect as
/// running verifications finish.
pub fn set_memory_budget(bytes: u64) {
    let kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).clamp(1, MAX_BUDGET_KIB);
    let b = budget();
    let mut total = b.total_kib.lock().unwrap_or_else(|e| e.into_inner());
    if kib > *total {
        b.permits.add_permits((kib - *total) as usize);
    } else if kib < *total {
        let excess = *total - kib;
        let forgotten = b.permits.forget_permits(excess as usize) as u32;
        if forgotten < excess {
            // The rest is held by running verifications: take it back as
            // they finish.
            let debt = excess - forgotten;
            let permits = b.permits.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move {
                        if let Ok(p) = permits.acquire_many_owned(debt).await {
                            p.forget();
                        }
                    });
                }
                Err(_) => {
                    tracing::warn!("hashing memory budget lowered outside a runtime; applies at restart")
                }
            }
        }
    }
    if kib != *total {
        tracing::info!(
            budget_kib = kib,
            verifications = kib / hash_memory_kib(),
            "password hashing memory budget"
        );
    }
    *total = kib;
}

/// Tokio's semaphores hold at most `usize::MAX >> 3` permits; a budget of
/// 1 TiB is far beyond any use.
const MAX_BUDGET_KIB: u32 = 1 << 30;

/// The current budget, in bytes.
pub fn memory_budget() -> u64 {
    u64::from(*budget().total_kib.lock().unwrap_or_else(|e| e.into_inner())) * 1024
}

/// The most memory verifications have held at once since start, in bytes
/// (by their hashes' declared cost).
pub fn peak_hashing_memory() -> u64 {
    budget().peak_kib.load(Ordering::Relaxed) * 1024
}

/// Verifications that fit in the current budget at once, for hashes made by
/// this server.
pub fn max_concurrent_verifications() -> usize {
    (memory_budget() / hash_memory_bytes()).max(1) as usize
}

/// Runs `work` on the blocking pool once `cost_kib` of the memory budget is
/// free. The permits move into the blocking task, so they stay held even if
/// the login future is dropped (client gone) while the hash is computed.
async fn bounded<F: FnOnce() -> bool + Send + 'static>(cost_kib: u32, work: F) -> bool {
    let b = budget();
    let total = *b.total_kib.lock().unwrap_or_else(|e| e.into_inner());
    if cost_kib > total {
        // A hash costlier than the whole budget would wait forever: it runs
        // alone instead, holding the whole budget.
        tracing::warn!(
            cost_kib,
            budget_kib = total,
            "a stored hash needs more memory than limits.hashing_memory; verifying it alone"
        );
    }
    let cost = cost_kib.clamp(1, total.max(1));
    let Ok(permit) = b.permits.clone().acquire_many_owned(cost).await else {
        return false; // The semaphore is never closed; fail closed anyway.
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let b = budget();
        let now = b.in_use_kib.fetch_add(u64::from(cost_kib), Ordering::Relaxed) + u64::from(cost_kib);
        b.peak_kib.fetch_max(now, Ordering::Relaxed);
        let ok = work();
        b.in_use_kib.fetch_sub(u64::from(cost_kib), Ordering::Relaxed);
        ok
    })
    .await
    .unwrap_or(false)
}

/// Checks `password` against a stored PHC string off the async workers,
/// bounded by the global verification limit.
pub async fn verify(password: &str, phc: &str) -> bool {
    let cost = match PasswordHash::new(phc) {
        Ok(parsed) => memory_cost_kib(&parsed),
        Err(_) => 1, // malformed: verify_blocking logs and refuses it at once
    };
    let (password, phc) = (password.to_owned(), phc.to_owned());
    bounded(cost, move || verify_blocking(&password, &phc)).await
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
    bounded(hash_memory_kib(), || verify_blocking("not the password", dummy_hash())).await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_verifications_stays_within_the_memory_budget() {
        let h = hash_password("pw").unwrap();
        // The default budget (64 MiB): three default-cost hashes at once.
        let flood: Vec<_> = (0..12)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { verify(if i % 2 == 0 { "pw" } else { "no" }, &h).await })
            })
            .collect();
        for (i, task) in flood.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), i % 2 == 0);
        }
        let peak = peak_hashing_memory();
        assert!(peak >= hash_memory_bytes(), "peak {peak}");
        assert!(peak <= u64::from(DEFAULT_BUDGET_KIB) * 1024, "peak {peak} over the budget");
        assert_eq!(max_concurrent_verifications(), 3);
    }

    #[test]
    fn the_cost_comes_from_the_hash() {
        let h = hash_password("pw").unwrap();
        assert_eq!(memory_cost_kib(&PasswordHash::new(&h).unwrap()), 19 * 1024);
        let cheap = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$L9Z2kIYuVTgiIv3VkpEN3Q";
        assert_eq!(memory_cost_kib(&PasswordHash::new(cheap).unwrap()), 8);
    }
}
