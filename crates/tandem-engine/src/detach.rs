//! [`Detachable`]: a driver that runs inside its caller's task until the caller goes away.
//!
//! A caller that waits for a transaction's outcome would otherwise spawn the driver and
//! sleep until it answers: a task hand-off at the start and a wake-up at the end, each a
//! context switch on a busy machine. Running the driver in the caller's own task avoids
//! both. The price is that the caller's task now carries the transaction, and a caller may
//! stop waiting at any moment (a timeout, a client that hangs up, a cancelled request):
//! dropping a `Detachable` whose driver has not finished spawns the rest of it as a task of
//! its own, from exactly where it stood. A boxed future can move between tasks even while it
//! is half-way through an `.await`, so nothing is lost or run twice.
//!
//! Outside a runtime (a caller dropped after the runtime is gone) the rest of the driver is
//! dropped instead; what it had made durable is in the log, and recovery resumes from that.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A future run in place, spawned on drop if unfinished.
pub(crate) struct Detachable {
    fut: Option<Boxed>,
}

impl Detachable {
    pub(crate) fn new(fut: impl Future<Output = ()> + Send + 'static) -> Self {
        Detachable {
            fut: Some(Box::pin(fut)),
        }
    }
}

impl Future for Detachable {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(());
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.fut = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Detachable {
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(fut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A caller that stops waiting half-way leaves the rest running on its own.
    #[tokio::test]
    async fn dropped_half_way_the_rest_runs_once() {
        let steps = Arc::new(AtomicUsize::new(0));
        let (s, done) = tokio::sync::oneshot::channel();
        let st = steps.clone();
        let d = Detachable::new(async move {
            st.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            st.fetch_add(1, Ordering::SeqCst);
            let _ = s.send(());
        });
        let waited = tokio::time::timeout(Duration::from_millis(10), d).await;
        assert!(waited.is_err(), "the caller gave up before the end");
        assert_eq!(steps.load(Ordering::SeqCst), 1);
        done.await.expect("the detached rest finished");
        assert_eq!(steps.load(Ordering::SeqCst), 2);
    }

    /// Run to the end in place: nothing is spawned afterwards.
    #[tokio::test]
    async fn finished_in_place_is_not_run_again() {
        let steps = Arc::new(AtomicUsize::new(0));
        let st = steps.clone();
        Detachable::new(async move {
            st.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        tokio::task::yield_now().await;
        assert_eq!(steps.load(Ordering::SeqCst), 1);
    }
}
