//! Retry delays: exponential from a base, capped, with deterministic "equal jitter".
//!
//! Jitter spreads retries of many transactions that failed together (a participant restart)
//! so they do not return in lock-step. It is derived from a hash of the gid, branch and
//! attempt instead of a random generator, so the core stays deterministic and replayable.

/// Delay before retry number `streak` (1 = first retry): `base * 2^(streak-1)`, capped at
/// `cap`, then uniformly jittered into `[d/2, d]` by `seed`.
pub fn delay_ms(base_ms: u64, cap_ms: u64, streak: u32, seed: u64) -> u64 {
    let shift = streak.saturating_sub(1).min(32);
    let full = base_ms
        .saturating_mul(1u64 << shift)
        .min(cap_ms.max(base_ms))
        .max(1);
    let half = full / 2;
    half + mix(seed) % (full - half + 1)
}

/// A jitter seed for one attempt of one branch of one transaction (FNV-1a, then mixed).
pub fn seed(gid: &str, branch: usize, attempt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in gid
        .bytes()
        .chain((branch as u64).to_le_bytes())
        .chain(attempt.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters_within_bounds() {
        for streak in 1..40 {
            for s in 0..50 {
                let d = delay_ms(1_000, 60_000, streak, seed("g", 0, s));
                let full = (1_000u64 << (streak - 1).min(32)).min(60_000);
                assert!(
                    d >= full / 2 && d <= full,
                    "streak {streak}: {d} outside [{}, {full}]",
                    full / 2
                );
            }
        }
        let spread: std::collections::HashSet<u64> = (0..20)
            .map(|a| delay_ms(1_000, 60_000, 3, seed("g", 1, a)))
            .collect();
        assert!(
            spread.len() > 10,
            "jitter should spread retries: {spread:?}"
        );
    }
}
