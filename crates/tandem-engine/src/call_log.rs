//! The log lines about branch calls that keep failing: a transaction's first failed call is
//! logged at once (naming its URL and the error), later ones at most once per
//! [`REPEAT_EVERY`] per transaction with a count; and across all transactions at most
//! [`LINES_MAX`] such lines per [`WINDOW`], the rest counted into the next line.
//!
//! Why: a branch whose service is down is retried with backoff for many minutes before the
//! transaction is parked; without a line in the log nobody can tell why a transaction is
//! slow, but one line per retry of every transaction would drown the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two lines about one transaction.
pub(crate) const REPEAT_EVERY: Duration = Duration::from_secs(60);
/// Most lines about failed calls in one [`WINDOW`], over all transactions.
pub(crate) const LINES_MAX: u64 = 20;
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// One transaction's memory of what it logged.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    last: Option<Instant>,
    /// Failed calls since the last line.
    unlogged: u32,
}

/// The engine-wide budget of lines.
struct Budget {
    window_start: Option<Instant>,
    used: u64,
}

static BUDGET: Mutex<Budget> = Mutex::new(Budget {
    window_start: None,
    used: 0,
});
/// Lines dropped for the budget since the last line written.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Whether the budget `b` allows one more line now.
fn take_budget(b: &mut Budget, now: Instant) -> bool {
    match b.window_start {
        Some(start) if now.duration_since(start) < WINDOW => {}
        _ => {
            b.window_start = Some(now);
            b.used = 0;
        }
    }
    if b.used < LINES_MAX {
        b.used += 1;
        true
    } else {
        false
    }
}

impl CallLog {
    /// Records one failed call and logs it if this transaction's and the engine's limits
    /// allow.
    pub(crate) fn failed(
        &mut self,
        gid: &str,
        branch_id: &str,
        op: &str,
        url: &str,
        error: &str,
        attempts: u32,
    ) {
        let now = Instant::now();
        self.unlogged += 1;
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < REPEAT_EVERY)
        {
            return;
        }
        let granted = take_budget(&mut BUDGET.lock().unwrap_or_else(|p| p.into_inner()), now);
        if !granted {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let earlier = self.unlogged - 1;
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        self.last = Some(now);
        self.unlogged = 0;
        let url = if url.is_empty() { "(in-process)" } else { url };
        tracing::warn!(
            gid,
            branch_id,
            op,
            url,
            error,
            attempts,
            unlogged_failures = earlier,
            other_lines_suppressed = dropped,
            "branch call failed; retrying with backoff (next such line for this transaction in {} s at the earliest)",
            REPEAT_EVERY.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction logs its first failure and then stays quiet for `REPEAT_EVERY`.
    #[test]
    fn repeats_are_held_back() {
        let mut log = CallLog::default();
        // The first line needs the engine-wide budget, which other tests in this process
        // may share: with it spent, the failure is only counted.
        log.failed("g", "01", "action", "http://x/a", "connection refused", 1);
        if log.last.is_none() {
            return;
        }
        assert_eq!(log.unlogged, 0);
        log.failed("g", "01", "action", "http://x/a", "connection refused", 2);
        log.failed("g", "01", "action", "http://x/a", "connection refused", 3);
        assert_eq!(log.unlogged, 2, "held back and counted for the next line");
    }

    /// The engine-wide budget refuses past `LINES_MAX` lines in a window and opens again
    /// in the next one.
    #[test]
    fn budget_is_bounded_per_window() {
        let mut b = Budget {
            window_start: None,
            used: 0,
        };
        let t0 = Instant::now();
        let granted = (0..LINES_MAX + 5)
            .filter(|_| take_budget(&mut b, t0))
            .count() as u64;
        assert_eq!(granted, LINES_MAX);
        assert!(!take_budget(&mut b, t0 + WINDOW / 2));
        assert!(take_budget(&mut b, t0 + WINDOW));
    }
}
