//! The engine's only sources of time and randomness, injected so a simulation can drive both.
//!
//! State machines get `now` from the [`Clock`]; timers sleep with tokio's clock (which a
//! simulation or `tokio::time::pause` controls the same way). Random values — a new store's
//! incarnation, each transaction's nonce, a process's gid session — come from the [`Rng`].

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tandem_core::Timestamp;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// Wall-clock time in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// Random 64-bit values. Uniqueness, not secrecy, is what they are for.
pub trait Rng: Send + Sync + 'static {
    fn next_u64(&self) -> u64;
    fn next_u32(&self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Randomness from the operating system (the per-process random keys of std's hash maps),
/// mixed with a counter so two draws never repeat.
#[derive(Debug, Default)]
pub struct OsRng {
    counter: AtomicU64,
}

impl Rng for OsRng {
    fn next_u64(&self) -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        h.finish()
    }
}

/// A seeded generator (splitmix64): the same seed gives the same sequence. For simulations
/// and tests.
#[derive(Debug)]
pub struct SeededRng {
    state: AtomicU64,
}

impl SeededRng {
    pub fn new(seed: u64) -> SeededRng {
        SeededRng {
            state: AtomicU64::new(seed),
        }
    }
}

impl Rng for SeededRng {
    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
