//! Request ids the server makes when the client sent none (or an unusable
//! one): unique within the process and unlikely to repeat across restarts.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A new request id: a random per-process prefix and a counter, e.g.
/// `5f3a9c1e20b47d6a-1f`.
pub fn request_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS's randomness once per process.
    let prefix = *PREFIX.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}-{n:x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::sane_request_id;

    #[test]
    fn ids_are_unique_and_sane() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert!(sane_request_id(&a), "{a}");
    }
}
