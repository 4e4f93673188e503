//! The deadline's response future.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::DeadlineExceeded;
use crate::{BoxError, is_caused_by};

pin_project! {
    /// Resolves to the inner response, or to [`DeadlineExceeded`] when the deadline passes
    /// first (dropping the inner call).
    ///
    /// A tonic channel enforces the `grpc-timeout` this layer wrote on the request and may
    /// give up a moment before this layer's own timer, reporting `CANCELLED` caused by
    /// [`tonic::TimeoutExpired`]; that error is the same deadline and becomes
    /// [`DeadlineExceeded`] too, so callers match one type.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        #[pin]
        sleep: Sleep,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: Option<F>, sleep: Sleep) -> Self {
        Self { inner, sleep }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(inner) = this.inner.as_pin_mut() {
            if let Poll::Ready(result) = inner.poll(cx) {
                return Poll::Ready(result.map_err(|error| {
                    let error: BoxError = error.into();
                    if is_caused_by::<tonic::TimeoutExpired>(&*error) {
                        DeadlineExceeded::new().into()
                    } else {
                        error
                    }
                }));
            }
        } else {
            // The deadline had passed before the call: nothing was started.
            return Poll::Ready(Err(DeadlineExceeded::new().into()));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(DeadlineExceeded::new().into())),
            Poll::Pending => Poll::Pending,
        }
    }
}
