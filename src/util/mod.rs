//! Small helpers with no knowledge of the rest of the crate: time and
//! dates, hand-written JSON output, form-urlencoded query strings, request
//! ids, strict decimal numbers, and a lock that outlives a panic.

pub mod ids;
pub mod json;
pub mod time;
pub mod urlencoded;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex` even if a thread panicked while holding it: for state that
/// is consistent at every unlock, so such a panic leaves nothing half-done.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A plain decimal number from a request (a `Content-Length`, an id, a
/// page): ASCII digits only, not empty, within `u64` (RFC 9110, section 8.6,
/// for lengths). Rust's integer parsing would also take `+2`, which a proxy
/// in front may read differently.
pub fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("0042"), Some(42));
        for bad in [
            "",
            "+2",
            "-1",
            " 2",
            "2 ",
            "1e3",
            "0x2",
            "18446744073709551616",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
}
