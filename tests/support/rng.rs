//! Reproducible randomness and run length for the reliability suite and the
//! fuzz properties (`src/http/fuzz` includes this file too), with
//! no dependency: SplitMix64, seeded from `RELIABILITY_SEED` or the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// SplitMix64: tiny, fast, and good enough to pick operations and inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The seed of a run: `RELIABILITY_SEED` if set, else the clock. Printed
/// (shown by `cargo test` when a test fails) so that a failure can be
/// replayed with the same seed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{test}: RELIABILITY_SEED={seed}");
    seed
}

/// How many times longer than the CI default to run: `RELIABILITY_SCALE`
/// (default 1; e.g. 10 for a local soak run).
pub fn scale() -> u64 {
    std::env::var("RELIABILITY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}
