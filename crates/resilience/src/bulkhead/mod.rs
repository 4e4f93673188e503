//! A bulkhead: a fixed number of calls in flight to one dependency, so a slow dependency
//! cannot take every connection, task and byte of memory of its caller.
//!
//! A call takes a slot in `poll_ready` and gives it back when its response arrives (or its
//! future is dropped). With every slot taken, `poll_ready` waits at most
//! [`max_wait`](BulkheadConfig::max_wait) for one to free, then reports ready anyway and the
//! call fails at once with [`BulkheadFull`]: there is no queue beyond that bound, and a
//! rejection costs no more than a failed atomic update. (tower's `ConcurrencyLimit` waits
//! without bound and tower's `LoadShed` sheds without any wait; this is the two with a bound
//! in between, and with the rejection counted.)
//!
//! The slots are shared by every service the layer builds and by all their clones. A call
//! holds its slot from the moment it is admitted, including while the inner service gets
//! ready (a channel reconnecting), so the bound is on everything waiting on the dependency.

mod config;
mod error;
pub mod future;
mod layer;

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError},
    time::Sleep,
};
use tokio_util::sync::PollSemaphore;
use tower::Service;

pub use self::{config::BulkheadConfig, error::BulkheadFull, layer::BulkheadLayer};
use crate::BoxError;

/// Sees the bulkhead's occupancy and rejections, for `bulkhead_in_flight` and
/// `bulkhead_rejected_total`.
pub trait BulkheadObserver: Send + Sync + 'static {
    /// A call took or gave back a slot; `in_flight` is the count just after.
    fn on_in_flight(&self, in_flight: usize) {
        let _ = in_flight;
    }

    /// A call was rejected.
    fn on_rejected(&self) {}
}

/// The observer that observes nothing.
impl BulkheadObserver for () {}

struct Shared {
    semaphore: Arc<Semaphore>,
    config: BulkheadConfig,
    observer: Arc<dyn BulkheadObserver>,
}

impl Shared {
    fn new(config: BulkheadConfig, observer: Arc<dyn BulkheadObserver>) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(config.max_concurrent)),
            config,
            observer,
        }
    }

    fn in_flight(&self) -> usize {
        self.config.max_concurrent - self.semaphore.available_permits()
    }

    fn admit(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        self.observer.on_in_flight(self.in_flight());
        Slot {
            permit: Some(permit),
            shared: Arc::clone(self),
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// One call's place in the bulkhead; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.shared.observer.on_in_flight(self.shared.in_flight());
    }
}

/// Where one service instance is in getting a slot.
enum Admission {
    Idle,
    Waiting {
        semaphore: PollSemaphore,
        timer: Pin<Box<Sleep>>,
    },
    Admitted(Slot),
    Rejected,
}

/// Bounds the calls in flight to the inner service; built by [`BulkheadLayer`].
pub struct Bulkhead<S> {
    inner: S,
    shared: Arc<Shared>,
    admission: Admission,
}

// === impl Bulkhead ===

impl<S> Bulkhead<S> {
    fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            shared,
            admission: Admission::Idle,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Takes a slot, waits for one, or decides to reject.
    fn poll_admission(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.admission {
                Admission::Admitted(_) | Admission::Rejected => return Poll::Ready(()),
                Admission::Idle => {
                    self.admission = match Arc::clone(&self.shared.semaphore).try_acquire_owned() {
                        Ok(permit) => Admission::Admitted(self.shared.admit(permit)),
                        Err(TryAcquireError::NoPermits)
                            if !self.shared.config.max_wait.is_zero() =>
                        {
                            Admission::Waiting {
                                semaphore: PollSemaphore::new(Arc::clone(&self.shared.semaphore)),
                                timer: Box::pin(tokio::time::sleep(self.shared.config.max_wait)),
                            }
                        }
                        Err(_) => Admission::Rejected,
                    };
                }
                Admission::Waiting { semaphore, timer } => {
                    self.admission = match semaphore.poll_acquire(cx) {
                        Poll::Ready(Some(permit)) => Admission::Admitted(self.shared.admit(permit)),
                        Poll::Ready(None) => Admission::Rejected,
                        Poll::Pending if timer.as_mut().poll(cx).is_ready() => Admission::Rejected,
                        Poll::Pending => return Poll::Pending,
                    };
                }
            }
        }
    }
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.poll_admission(cx));
        match self.admission {
            Admission::Rejected => Poll::Ready(Ok(())),
            _ => self.inner.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match std::mem::replace(&mut self.admission, Admission::Idle) {
            Admission::Admitted(slot) => {
                future::ResponseFuture::new(self.inner.call(request), slot)
            }
            Admission::Rejected => {
                self.shared.observer.on_rejected();
                future::ResponseFuture::rejected()
            }
            Admission::Idle | Admission::Waiting { .. } => {
                panic!("poll_ready must return Ready before call")
            }
        }
    }
}

/// A clone starts without a slot: each instance asks for its own.
impl<S: Clone> Clone for Bulkhead<S> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug> fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let admission = match self.admission {
            Admission::Idle => "idle",
            Admission::Waiting { .. } => "waiting",
            Admission::Admitted(_) => "admitted",
            Admission::Rejected => "rejected",
        };
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .field("admission", &admission)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use tokio::sync::Notify;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::is_caused_by;

    /// An inner service that records the peak number of calls in flight and answers only when
    /// `release` is notified.
    fn gated(
        peak: Arc<(AtomicUsize, AtomicUsize)>,
        release: Arc<Notify>,
    ) -> impl Service<(), Response = (), Error = BoxError, Future: Send> + Clone + Send {
        service_fn(move |()| {
            let (peak, release) = (peak.clone(), release.clone());
            async move {
                let now = peak.0.fetch_add(1, Ordering::SeqCst) + 1;
                peak.1.fetch_max(now, Ordering::SeqCst);
                release.notified().await;
                peak.0.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_never_exceeds_the_limit_and_the_rest_is_rejected_at_once() {
        let peak = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let release = Arc::new(Notify::new());
        let layer = BulkheadLayer::try_new(BulkheadConfig::default().with_max_concurrent(8))
            .expect("valid config");
        let service = layer.layer(gated(peak.clone(), release.clone()));

        // Poll every call once: a rejection must be ready at once (no queueing), an admitted
        // call waits inside the inner service.
        let mut rejected = 0;
        let mut admitted = Vec::new();
        for _ in 0..200 {
            let mut call = Box::pin(service.clone().oneshot(()));
            match futures::poll!(&mut call) {
                Poll::Ready(result) => {
                    let error = result.expect_err("only rejections finish");
                    assert!(is_caused_by::<BulkheadFull>(&*error));
                    rejected += 1;
                }
                Poll::Pending => admitted.push(call),
            }
        }
        assert_eq!(rejected, 192);
        assert_eq!(layer.in_flight(), 8);
        release.notify_waiters();
        for call in admitted {
            call.await.expect("admitted calls succeed");
        }
        assert_eq!(peak.1.load(Ordering::SeqCst), 8);
        assert_eq!(layer.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_takes_a_freed_slot_within_max_wait_else_is_rejected() {
        let release = Arc::new(Notify::new());
        let peak = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let config = BulkheadConfig::default()
            .with_max_concurrent(1)
            .with_max_wait(Duration::from_millis(100));
        let layer = BulkheadLayer::try_new(config).expect("valid config");
        let service = layer.layer(gated(peak, release.clone()));

        let first = tokio::spawn(service.clone().oneshot(()));
        tokio::task::yield_now().await;
        let start = tokio::time::Instant::now();
        let error = service
            .clone()
            .oneshot(())
            .await
            .expect_err("no slot within 100 ms");
        assert!(is_caused_by::<BulkheadFull>(&*error));
        assert_eq!(start.elapsed(), Duration::from_millis(100));

        let second = tokio::spawn(service.clone().oneshot(()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_one(); // the first call finishes; the waiting second takes its slot
        first.await.expect("no panic").expect("first succeeds");
        tokio::task::yield_now().await;
        release.notify_one();
        second
            .await
            .expect("no panic")
            .expect("second got the freed slot");
    }

    #[test]
    fn zero_slots_is_a_config_error() {
        let error = BulkheadConfig::default()
            .with_max_concurrent(0)
            .validate()
            .expect_err("bad");
        assert_eq!(error.field(), "max_concurrent");
    }
}
