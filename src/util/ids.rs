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
    // `format!("{prefix:016x}-{n:x}")`, without the formatting machinery:
    // that cost a thousand instructions on every request.
    let mut id = String::with_capacity(33);
    push_hex(&mut id, prefix, 16);
    id.push('-');
    push_hex(&mut id, n, 1);
    id
}

/// Appends `value` in lower-case hex, zero-padded to `min_digits`.
fn push_hex(out: &mut String, value: u64, min_digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(min_digits);
    for shift in (0..digits).rev().map(|d| d * 4) {
        out.push(char::from(HEX[(value >> shift) as usize & 0xf]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::sane_request_id;

    #[test]
    fn ids_are_unique_and_sane() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert!(sane_request_id(&a), "{a}");
    }

    #[test]
    fn hex_is_what_format_writes() {
        for n in [0, 1, 0xf, 0x10, 0xdead_beef, u64::MAX] {
            let mut short = String::new();
            push_hex(&mut short, n, 1);
            assert_eq!(short, format!("{n:x}"));
            let mut padded = String::new();
            push_hex(&mut padded, n, 16);
            assert_eq!(padded, format!("{n:016x}"));
        }
    }
}
