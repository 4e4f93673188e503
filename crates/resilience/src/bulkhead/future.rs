//! The bulkhead's response future.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;

use super::{BulkheadFull, Slot};
use crate::BoxError;

pin_project! {
    /// Resolves to the inner response, holding the call's slot until then; or to
    /// [`BulkheadFull`] at once.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        slot: Option<Slot>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, slot: Slot) -> Self {
        Self {
            inner: Some(inner),
            slot: Some(slot),
        }
    }

    pub(super) fn rejected() -> Self {
        Self {
            inner: None,
            slot: None,
        }
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
        match this.inner.as_pin_mut() {
            None => Poll::Ready(Err(BulkheadFull::new().into())),
            Some(inner) => {
                let result = std::task::ready!(inner.poll(cx));
                // Free the slot as soon as the call is done, not when the future is dropped.
                this.slot.take();
                Poll::Ready(result.map_err(Into::into))
            }
        }
    }
}
