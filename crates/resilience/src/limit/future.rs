//! The limit's response future.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::{
    Shared,
    response::{signals_overload, was_shed},
};

/// An admitted request's place in the limit; dropping it unfinished frees the place without
/// teaching the limit anything.
#[derive(Debug)]
pub(super) struct Admitted {
    pub(super) shared: Arc<Shared>,
    pub(super) in_flight: usize,
    pub(super) start: Instant,
}

impl Admitted {
    /// Teaches the limit how this request went; dropping `self` then frees its place.
    fn complete(self, overloaded: bool) {
        if let Some(limit) = self
            .shared
            .aimd
            .sample(self.in_flight, self.start, overloaded)
        {
            self.shared.observer.on_limit(limit);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.shared.aimd.release();
    }
}

pin_project! {
    /// Resolves to the inner response, or at once to the synthesized overload response.
    #[derive(Debug)]
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: Option<F>,
        admitted: Option<Admitted>,
        shed: Option<Response<B>>,
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(super) fn admitted(inner: F, admitted: Admitted) -> Self {
        Self {
            inner: Some(inner),
            admitted: Some(admitted),
            shed: None,
        }
    }

    pub(super) fn shed(response: Response<B>) -> Self {
        Self {
            inner: None,
            admitted: None,
            shed: Some(response),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Ok(this.shed.take().expect("polled after completion")));
        };
        let result = ready!(inner.poll(cx));
        if let (Some(admitted), Ok(response)) = (this.admitted.take(), &result) {
            // A narrower limit inside shed it: that limit has learned from it, and it says
            // nothing of how the rest of the server keeps up. Dropping `admitted` frees its
            // place without a sample.
            if !was_shed(response) {
                admitted.complete(signals_overload(response));
            }
        }
        Poll::Ready(result)
    }
}
