//! The deadline's response future.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::DeadlineExceeded;
use crate::BoxError;

pin_project! {
    /// Resolves to the inner response, or to [`DeadlineExceeded`] when the deadline passes
    /// first (dropping the inner call).
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
                return Poll::Ready(result.map_err(Into::into));
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
