//! A small TCP fault proxy for the chaos suite: it stands where a network (or a load balancer)
//! would, between two processes on 127.0.0.1, and can be told live to misbehave.
//!
//! - [`Fault::Latency`] delays every chunk, each way, by the given time;
//! - [`Fault::Reset`] resets every open connection (RST, `SO_LINGER` 0) and every new one;
//! - [`Fault::Blackhole`] accepts connections but forwards nothing, each way, until the fault
//!   is lifted: what a partition looks like to TCP, whose retransmissions then deliver what
//!   was held;
//! - [`Proxy::set_upstream`] sends new connections elsewhere (a restarted process, a second
//!   replica) while open ones stay with their process, as kube-proxy does.
//!
//! A fault applies at once to open connections too, not only to new ones: a breaker must see
//! the calls already on the wire fail.
//!
//! Started with [`Proxy::http_front`], the proxy also reads the HTTP/1.1 exchanges it carries
//! (it is then the client's view of the service): for each response fully written back to the
//! client, an [`Exchange`] with the method, path, status, `Retry-After`, the `order_id` of an
//! order answer, and the time from the request's first byte to the response's last. That is
//! what "acknowledged" means in the suite: a 201, 202 or 402 whose last byte reached the
//! client's socket.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forward everything at once.
    #[default]
    None,
    /// Delay every chunk, each way, by this long.
    Latency(Duration),
    /// Reset every open connection, and every new one as soon as it is accepted.
    Reset,
    /// Accept, but forward nothing either way until the fault is lifted.
    Blackhole,
}

/// One HTTP exchange as the client saw it (only with [`Proxy::http_front`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// `POST`, `GET`, …
    pub method: String,
    /// The request target (`/v1/orders`).
    pub path: String,
    /// The response status.
    pub status: u16,
    /// The `Retry-After` header of the response, if any.
    pub retry_after: Option<String>,
    /// `order_id` of the JSON body, for answers to `POST /v1/orders`.
    pub order_id: Option<String>,
    /// From the request's first byte arriving to the response's last byte written back.
    pub latency: Duration,
}

impl Exchange {
    /// An answer to `POST /v1/orders` that acknowledges an order: 201, 202 or 402.
    pub fn acknowledges_order(&self) -> bool {
        self.is_place_order() && matches!(self.status, 201 | 202 | 402)
    }

    /// A `POST /v1/orders`.
    pub fn is_place_order(&self) -> bool {
        self.method == "POST" && self.path == "/v1/orders"
    }
}

#[derive(Debug)]
struct Shared {
    upstream: Mutex<SocketAddr>,
    fault: watch::Sender<Fault>,
    http: bool,
    exchanges: Mutex<Vec<Exchange>>,
    /// Connections the client opened that could not reach upstream.
    refused: std::sync::atomic::AtomicU64,
    /// Requests read whole and not answered yet (HTTP front only).
    in_flight: std::sync::atomic::AtomicI64,
}

/// The proxy; it stops accepting when dropped (open connections end with their peers).
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.shared.fault.send(Fault::Reset);
    }
}

impl Proxy {
    /// A plain TCP proxy to `upstream` on 127.0.0.1 and a free port.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        Self::bind(upstream, false).await
    }

    /// A proxy to an HTTP/1.1 server that also records every [`Exchange`].
    pub async fn http_front(upstream: SocketAddr) -> std::io::Result<Self> {
        Self::bind(upstream, true).await
    }

    async fn bind(upstream: SocketAddr, http: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (fault, _) = watch::channel(Fault::None);
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            fault,
            http,
            exchanges: Mutex::new(Vec::new()),
            refused: std::sync::atomic::AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicI64::new(0),
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of descriptors or similar: back off rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                tokio::spawn(connection(client, accepting.clone()));
            }
        });
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` + [`addr`](Self::addr).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends new connections to `upstream`; open ones stay where they are.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        if let Ok(mut current) = self.shared.upstream.lock() {
            *current = upstream;
        }
    }

    /// Applies `fault` now, to open connections and new ones.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.fault.send_replace(fault);
    }

    /// Every exchange completed so far (empty unless started with [`Proxy::http_front`]).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared
            .exchanges
            .lock()
            .map(|exchanges| exchanges.clone())
            .unwrap_or_default()
    }

    /// Requests read whole by the front and not answered yet.
    pub fn in_flight(&self) -> i64 {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Client connections that could not be connected upstream (refused, unreachable).
    pub fn refused(&self) -> u64 {
        self.shared
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Waits while the fault is a blackhole; returns the fault in force once it is not.
async fn not_blackholed(faults: &mut watch::Receiver<Fault>) -> Fault {
    loop {
        let fault = *faults.borrow_and_update();
        if fault != Fault::Blackhole {
            return fault;
        }
        if faults.changed().await.is_err() {
            return Fault::Reset;
        }
    }
}

async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let mut faults = shared.fault.subscribe();
    if not_blackholed(&mut faults).await == Fault::Reset {
        let _ = client.set_zero_linger();
        return;
    }
    let upstream_addr = match shared.upstream.lock() {
        Ok(addr) => *addr,
        Err(_) => return,
    };
    let upstream = match TcpStream::connect(upstream_addr).await {
        Ok(upstream) => upstream,
        Err(_) => {
            shared
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // What a client sees when it reaches no process: the connection ends.
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let tap = shared.http.then(|| Arc::new(Mutex::new(Tap::default())));
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let requests = pump(
        client_read,
        upstream_write,
        shared.fault.subscribe(),
        tap.clone()
            .map(|tap| (tap, Direction::Request, shared.clone())),
    );
    let responses = pump(
        upstream_read,
        client_write,
        shared.fault.subscribe(),
        tap.map(|tap| (tap, Direction::Response, shared.clone())),
    );
    // Either side ending (or a reset) ends the pair: a half-open proxy would hide a failure.
    tokio::select! {
        () = requests => {}
        () = responses => {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

type Tapped = (Arc<Mutex<Tap>>, Direction, Arc<Shared>);

/// Copies `from` to `to` chunk by chunk, applying the fault in force to each chunk.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut faults: watch::Receiver<Fault>,
    tap: Option<Tapped>,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = faults.changed() => {
                if changed.is_err() || *faults.borrow() == Fault::Reset {
                    reset(from, to);
                    return;
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let arrived = Instant::now();
        if let Some((tap, Direction::Request, shared)) = &tap
            && let Ok(mut tap) = tap.lock()
        {
            let before = tap.pending.len();
            tap.requests(&buffer[..n], arrived);
            let read = i64::try_from(tap.pending.len() - before).unwrap_or(0);
            shared
                .in_flight
                .fetch_add(read, std::sync::atomic::Ordering::Relaxed);
        }
        match not_blackholed(&mut faults).await {
            Fault::Reset => {
                reset(from, to);
                return;
            }
            Fault::Latency(delay) => tokio::time::sleep_until(arrived + delay).await,
            Fault::None | Fault::Blackhole => {}
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        if let Some((tap, Direction::Response, shared)) = &tap {
            let done = tap
                .lock()
                .map(|mut tap| tap.responses(&buffer[..n], Instant::now()))
                .unwrap_or_default();
            if !done.is_empty() {
                shared.in_flight.fetch_sub(
                    i64::try_from(done.len()).unwrap_or(0),
                    std::sync::atomic::Ordering::Relaxed,
                );
                if let Ok(mut exchanges) = shared.exchanges.lock() {
                    exchanges.extend(done);
                }
            }
        }
    }
}

fn reset(from: tokio::net::tcp::OwnedReadHalf, to: tokio::net::tcp::OwnedWriteHalf) {
    if let Ok(stream) = from.reunite(to) {
        let _ = stream.set_zero_linger();
    }
}

// === impl Tap ===

/// Reads HTTP/1.1 messages out of the two byte streams of one connection.
#[derive(Debug, Default)]
struct Tap {
    request: Reader,
    response: Reader,
    /// Requests seen and not yet answered: method, path, first byte's arrival.
    pending: VecDeque<(String, String, Instant)>,
    started: Option<Instant>,
}

impl Tap {
    fn requests(&mut self, bytes: &[u8], now: Instant) {
        if self.request.idle() {
            self.started.get_or_insert(now);
        }
        for message in self.request.feed(bytes) {
            let mut words = message.start_line.split(' ');
            let method = words.next().unwrap_or_default().to_owned();
            let path = words.next().unwrap_or_default().to_owned();
            let started = self.started.take().unwrap_or(now);
            self.pending.push_back((method, path, started));
            if !self.request.idle() {
                self.started = Some(now);
            }
        }
    }

    fn responses(&mut self, bytes: &[u8], now: Instant) -> Vec<Exchange> {
        let mut done = Vec::new();
        for message in self.response.feed(bytes) {
            let status = message
                .start_line
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok())
                .unwrap_or(0);
            if (100..200).contains(&status) {
                continue; // an interim answer; the final one follows
            }
            let Some((method, path, started)) = self.pending.pop_front() else {
                continue;
            };
            let order_id = (method == "POST" && path == "/v1/orders")
                .then(|| serde_json::from_slice::<serde_json::Value>(&message.body).ok())
                .flatten()
                .and_then(|body| {
                    body["order_id"]
                        .as_str()
                        .or_else(|| body["order"]["order_id"].as_str())
                        .map(str::to_owned)
                });
            done.push(Exchange {
                method,
                path,
                status,
                retry_after: message.header("retry-after"),
                order_id,
                latency: now.saturating_duration_since(started),
            });
        }
        done
    }
}

/// A message read off the wire: start line, headers, body.
#[derive(Debug)]
struct Message {
    start_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    }
}

/// An incremental HTTP/1.1 message reader (Content-Length or chunked bodies; enough for the
/// services under test, which never pipeline or upgrade).
#[derive(Debug, Default)]
struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    fn idle(&self) -> bool {
        self.buffer.is_empty()
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<Message> {
        self.buffer.extend_from_slice(bytes);
        let mut messages = Vec::new();
        while let Some((message, used)) = parse(&self.buffer) {
            self.buffer.drain(..used);
            messages.push(message);
        }
        messages
    }
}

/// One complete message at the start of `bytes`, and how many bytes it took.
fn parse(bytes: &[u8]) -> Option<(Message, usize)> {
    let head_end = bytes.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut lines = head.split("\r\n");
    let start_line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let status = start_line.split(' ').nth(1).unwrap_or_default();
    let no_body = start_line.starts_with("HTTP/")
        && (status.starts_with('1') || status == "204" || status == "304");
    if no_body {
        return Some((
            Message {
                start_line,
                headers,
                body: Vec::new(),
            },
            head_end,
        ));
    }
    if find("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        let (body, used) = chunked(&bytes[head_end..])?;
        return Some((
            Message {
                start_line,
                headers,
                body,
            },
            head_end + used,
        ));
    }
    let length: usize = find("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let body = bytes.get(head_end..head_end + length)?.to_vec();
    Some((
        Message {
            start_line,
            headers,
            body,
        },
        head_end + length,
    ))
}

/// A complete chunked body at the start of `bytes`, and how many bytes it took.
fn chunked(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&bytes[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers (none here) end with an empty line.
            let end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
            return Some((body, end + 2));
        }
        body.extend_from_slice(bytes.get(at..at + size)?);
        at += size + 2;
        if at > bytes.len() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_across_chunk_boundaries() {
        let mut tap = Tap::default();
        let start = Instant::now();
        let request = b"POST /v1/orders HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}";
        tap.requests(&request[..10], start);
        tap.requests(&request[10..], start);
        let response = b"HTTP/1.1 202 Accepted\r\ncontent-length: 23\r\nretry-after: 1\r\n\r\n{\"order_id\":\"ord-1\"}   ";
        assert!(tap.responses(&response[..30], start).is_empty());
        let done = tap.responses(&response[30..], start);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].status, 202);
        assert_eq!(done[0].order_id.as_deref(), Some("ord-1"));
        assert_eq!(done[0].retry_after.as_deref(), Some("1"));
        assert!(done[0].acknowledges_order());
    }

    #[test]
    fn chunked_bodies_are_read() {
        let bytes =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP";
        let (message, used) = parse(bytes).expect("complete");
        assert_eq!(message.body, b"abc");
        assert_eq!(&bytes[used..], b"HTTP");
    }
}
