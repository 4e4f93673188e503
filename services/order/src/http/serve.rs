//! Serving the API: `axum::serve` with the limits it does not set.
//!
//! `axum::serve` is deliberately unconfigurable, and hyper only enforces its header read
//! timeout when given a timer, which axum does not give it: a client that sends its headers
//! one byte at a time (slowloris) would hold a connection, a task and its buffers forever, and
//! a thousand such clients would hold the process's file descriptors. Here, over the same
//! hyper-util connection builder axum uses:
//!
//! - the request head must arrive within [`HEADER_READ_TIMEOUT`], counted from the connection's
//!   start for its first request (a client that connects and sends nothing is closed then)
//!   and, by hyper, from the end of the previous answer for the next one, so idle keep-alive
//!   connections are closed after it too;
//! - the head may hold at most [`MAX_HEADER_BYTES`] and [`MAX_HEADERS`] fields; beyond either,
//!   hyper answers `431 Request Header Fields Too Large` and closes the connection (HTTP/2:
//!   the same byte limit, advertised as `SETTINGS_MAX_HEADER_LIST_SIZE`);
//! - at most [`MAX_CONNECTIONS`] connections are open at once; more wait in the kernel's
//!   backlog until one closes (mini-redis's semaphore), so memory stays bounded;
//! - the body is read under its own clock, in the handler
//!   ([`BODY_READ_TIMEOUT`](super::BODY_READ_TIMEOUT)).
//!
//! Shutdown drains keep-alive connections before it closes them: stop accepting, then for up
//! to [`KEEP_ALIVE_DRAIN`] keep answering on the open connections, each HTTP/1 answer with
//! `Connection: close` so that its client opens its next connection elsewhere; then tell every
//! connection still open to finish its in-flight request and close (HTTP/2: GOAWAY), and
//! resolve once all have. Closing an idle keep-alive connection at once races a client that
//! is sending on it that moment: the request is written, the connection reset, and the
//! client cannot tell whether it was served (seen in the rolling-restart chaos scenario).
//! Envoy's and nginx's drains do the same.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, Version, header},
    middleware::Next,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

/// The request head (request line and headers) must arrive within this long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head accepted, in bytes; more is answered 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most header fields accepted; more is answered 431.
pub const MAX_HEADERS: usize = 64;
/// Connections open at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 4096;
/// On shutdown, how long open connections keep being answered (with `Connection: close`)
/// before those still open are closed: longer than a client's usual pause between requests.
pub const KEEP_ALIVE_DRAIN: Duration = Duration::from_secs(3);

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let draining = Arc::new(AtomicBool::new(false));
    let router = router.layer(axum::middleware::from_fn({
        let draining = draining.clone();
        move |request: Request, next: Next| {
            let draining = draining.clone();
            async move {
                let http1 = request.version() < Version::HTTP_2;
                let mut response = next.run(request).await;
                if http1 && draining.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            }
        }
    }));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let stopping = CancellationToken::new();
    // Each connection holds a clone of `open`; when the last one is gone, draining is done.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);

    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, or a connection reset before it was accepted: neither
                // is the listener's end, so back off briefly rather than spin or stop.
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "http.accept_failed"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (builder, stopping, open) = (builder.clone(), stopping.clone(), open.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            // hyper's clock starts at the head's first byte (the auto builder first reads to
            // tell HTTP/1 from HTTP/2, unclocked): a client that connects and says nothing
            // gets the same time to start as to finish.
            let mut first = [0_u8; 1];
            let started = tokio::select! {
                peeked = tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut first)) => {
                    matches!(peeked, Ok(Ok(n)) if n > 0)
                }
                () = stopping.cancelled() => false,
            };
            if !started {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                // A failed connection (a timeout, a reset, a refused head) concerns only its
                // client; hyper has answered it already where HTTP allows.
                _ = connection.as_mut() => {}
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }

    drop(listener);
    draining.store(true, Ordering::Relaxed);
    drop(open);
    tokio::select! {
        _ = all_closed.recv() => return Ok(()),
        () = tokio::time::sleep(KEEP_ALIVE_DRAIN) => {}
    }
    stopping.cancel();
    let _ = all_closed.recv().await;
    Ok(())
}
