//! [`RequestDeadline`]: where a request carries its deadline, for the deadline layer to set
//! and for retry to read.

use tokio::time::Instant;

use super::timeout_header::{
    GRPC_TIMEOUT_HEADER, HTTP_TIMEOUT_HEADER, format_grpc_timeout, parse_grpc_timeout,
    parse_http_timeout,
};

/// The instant by which a request must be answered, as a request extension.
///
/// The deadline layer inserts it into `http` and `tonic` requests, so a handler behind it can
/// pass the same deadline on to its own downstream calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(pub Instant);

/// A request that can carry a deadline.
///
/// Implemented for `http::Request` (extension, else `grpc-timeout`, else
/// `x-request-timeout-ms`), for `tonic::Request` (extension, else `grpc-timeout`) and for
/// [`WithDeadline`], the wrapper to use around a plain message.
pub trait RequestDeadline {
    /// The deadline the request carries, if any. A relative header is read against now.
    fn deadline(&self) -> Option<Instant>;

    /// Sets the deadline, and the wire header where the request has one.
    fn set_deadline(&mut self, deadline: Instant);
}

fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

impl<B> RequestDeadline for http::Request<B> {
    fn deadline(&self) -> Option<Instant> {
        if let Some(Deadline(deadline)) = self.extensions().get::<Deadline>() {
            return Some(*deadline);
        }
        let header = |name, parse: fn(&str) -> Result<_, _>| {
            self.headers()
                .get(name)
                .and_then(|value| parse(value.to_str().ok()?).ok())
        };
        let timeout = header(GRPC_TIMEOUT_HEADER, parse_grpc_timeout)
            .or_else(|| header(HTTP_TIMEOUT_HEADER, parse_http_timeout))?;
        Some(Instant::now() + timeout)
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.extensions_mut().insert(Deadline(deadline));
        if is_grpc(self.headers()) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let value = http::HeaderValue::try_from(format_grpc_timeout(remaining))
                .expect("a formatted timeout is ASCII");
            self.headers_mut().insert(GRPC_TIMEOUT_HEADER, value);
        }
    }
}

impl<T> RequestDeadline for tonic::Request<T> {
    fn deadline(&self) -> Option<Instant> {
        if let Some(Deadline(deadline)) = self.extensions().get::<Deadline>() {
            return Some(*deadline);
        }
        let value = self.metadata().get(GRPC_TIMEOUT_HEADER)?.to_str().ok()?;
        Some(Instant::now() + parse_grpc_timeout(value).ok()?)
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.extensions_mut().insert(Deadline(deadline));
        self.set_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// A request message with the deadline it must meet: what a client stack passes around
/// when its requests are plain (cloneable) messages rather than `tonic::Request`s, which retry
/// cannot clone.
///
/// ```
/// use resilience::deadline::WithDeadline;
///
/// let request = WithDeadline::new("charge");
/// let for_tonic: tonic::Request<&str> = request.into_tonic_request();
/// # drop(for_tonic);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithDeadline<T> {
    message: T,
    deadline: Option<Instant>,
}

impl<T> WithDeadline<T> {
    /// `message` with no deadline yet (the deadline layer will set one).
    pub fn new(message: T) -> Self {
        Self {
            message,
            deadline: None,
        }
    }

    /// `message`, due by `deadline`.
    pub fn due_by(message: T, deadline: Instant) -> Self {
        Self {
            message,
            deadline: Some(deadline),
        }
    }

    /// The message.
    pub fn message(&self) -> &T {
        &self.message
    }

    /// Unwraps the message.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// A tonic request whose `grpc-timeout` is the time remaining until the deadline, so the
    /// server stops working on it when the caller stops waiting.
    pub fn into_tonic_request(self) -> tonic::Request<T> {
        let mut request = tonic::Request::new(self.message);
        if let Some(deadline) = self.deadline {
            request.set_deadline(deadline);
        }
        request
    }
}

impl<T> RequestDeadline for WithDeadline<T> {
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn http_requests_read_grpc_timeout_then_the_rest_header() {
        let now = Instant::now();
        let grpc = http::Request::builder()
            .header(GRPC_TIMEOUT_HEADER, "250m")
            .header(HTTP_TIMEOUT_HEADER, "900")
            .body(())
            .expect("valid request");
        assert_eq!(grpc.deadline(), Some(now + Duration::from_millis(250)));
        let rest = http::Request::builder()
            .header(HTTP_TIMEOUT_HEADER, "900")
            .body(())
            .expect("valid request");
        assert_eq!(rest.deadline(), Some(now + Duration::from_millis(900)));
        assert_eq!(http::Request::new(()).deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn setting_a_deadline_on_a_grpc_request_rewrites_its_header() {
        let mut request = http::Request::builder()
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(GRPC_TIMEOUT_HEADER, "10S")
            .body(())
            .expect("valid request");
        let deadline = Instant::now() + Duration::from_millis(1500);
        request.set_deadline(deadline);
        assert_eq!(request.headers()[GRPC_TIMEOUT_HEADER], "1500000u");
        assert_eq!(request.deadline(), Some(deadline));
    }

    #[tokio::test(start_paused = true)]
    async fn tonic_requests_get_the_remaining_time_as_grpc_timeout() {
        let deadline = Instant::now() + Duration::from_millis(40);
        let request = WithDeadline::due_by((), deadline).into_tonic_request();
        let header = request
            .metadata()
            .get(GRPC_TIMEOUT_HEADER)
            .and_then(|v| v.to_str().ok());
        assert_eq!(header, Some("40000000n"));
        assert_eq!(request.deadline(), Some(deadline));
    }
}
