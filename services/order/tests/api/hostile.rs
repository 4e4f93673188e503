//! Hostile input at order's edges: generated order bodies and admin bodies (proptest, a
//! bounded number of cases against a real server: cargo-fuzz needs a nightly toolchain, which
//! this project does not use), slow clients, and oversized heads.
//!
//! Properties: no answer is a 5xx, no request panics the server (a panic would surface as a
//! 500 or a reset connection), every 4xx is `application/problem+json`, and every 400 names
//! the field at fault.

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    time::{Duration, Instant},
};

use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Value, json};
use stormproof_order::http::{BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_HEADER_BYTES};

use crate::helpers::{ADMIN_TOKEN, spawn_order, spawn_payment};

/// Cases per property: enough to walk every branch of the readers, quick enough for CI.
const CASES: u32 = 256;

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|number| json!(number)),
        ".{0,24}".prop_map(Value::from),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// An order body near the real shape: the right keys with any values, some lines with any
/// SKU and quantity, sometimes an extra key.
fn order_like() -> impl Strategy<Value = Value> {
    let sku = prop_oneof![
        Just(json!("CAP-RED")),
        Just(json!("SNEAKER-42")),
        any_json()
    ];
    let quantity = prop_oneof![(-5_i64..110).prop_map(Value::from), any_json()];
    let line = (sku, quantity, prop::option::of((".{1,8}", any_json()))).prop_map(
        |(sku, quantity, extra)| {
            let mut line = json!({ "sku": sku, "quantity": quantity });
            if let Some((key, value)) = extra {
                line[key] = value;
            }
            line
        },
    );
    let customer = prop_oneof![Just(json!("cust-1")), any_json()];
    (
        customer,
        prop_oneof![
            prop::collection::vec(line, 0..4).prop_map(Value::from),
            any_json()
        ],
        prop::option::of((".{1,8}", any_json())),
    )
        .prop_map(|(customer, lines, extra)| {
            let mut body = json!({ "customer_id": customer, "lines": lines });
            if let Some((key, value)) = extra {
                body[key] = value;
            }
            body
        })
}

/// A body as bytes: any bytes, any JSON, or an order-like JSON, whole or cut short.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        any_json().prop_map(|value| value.to_string().into_bytes()),
        order_like().prop_map(|value| value.to_string().into_bytes()),
        (order_like(), any::<prop::sample::Index>()).prop_map(|(value, cut)| {
            let text = value.to_string().into_bytes();
            let at = cut.index(text.len().max(1));
            text[..at.min(text.len())].to_vec()
        }),
    ]
}

/// Checks one answer: never 5xx; a 4xx is problem+json; a 400 names each field at fault.
fn check_answer(status: u16, content_type: &str, body: &[u8], sent: &[u8]) -> Result<(), String> {
    if status >= 500 {
        return Err(format!(
            "{status} for {:?}: {}",
            String::from_utf8_lossy(sent),
            String::from_utf8_lossy(body)
        ));
    }
    if !(400..500).contains(&status) {
        return Ok(());
    }
    if content_type != "application/problem+json" {
        return Err(format!("{status} as {content_type:?}"));
    }
    let problem: Value =
        serde_json::from_slice(body).map_err(|error| format!("{status} body: {error}"))?;
    if problem["status"] != status {
        return Err(format!("problem status {} for {status}", problem["status"]));
    }
    if status == 400 {
        let errors = problem["errors"]
            .as_array()
            .filter(|errors| !errors.is_empty())
            .ok_or_else(|| format!("400 without errors: {problem}"))?;
        for error in errors {
            if !error["field"].is_string() || error["message"].as_str().is_none_or(str::is_empty) {
                return Err(format!("an error without field and message: {error}"));
            }
        }
        // A JSON object's refusal names a field inside it (the root, "", is for a body that
        // is not an object at all, or for a key that is itself empty).
        let sent: Option<Value> = serde_json::from_slice(sent).ok();
        let sent_object = sent.as_ref().is_some_and(Value::is_object);
        let empty_key = sent.as_ref().is_some_and(has_empty_key);
        if sent_object && !empty_key && errors.iter().all(|error| error["field"] == "") {
            return Err(format!(
                "a refusal of an object names no field: {problem} for {sent:?}"
            ));
        }
    }
    Ok(())
}

/// Whether `value` holds an object with an empty key, at any depth.
fn has_empty_key(value: &Value) -> bool {
    match value {
        Value::Object(object) => object
            .iter()
            .any(|(key, value)| key.is_empty() || has_empty_key(value)),
        Value::Array(items) => items.iter().any(has_empty_key),
        _ => false,
    }
}

/// Runs the strategy `make` builds through `check`, each case's HTTP call made on the test's
/// runtime (strategies are not `Send`, so it is built on the blocking thread).
async fn run_property<S>(
    make: impl FnOnce() -> S + Send + 'static,
    check: impl Fn(&tokio::runtime::Handle, S::Value) -> Result<(), String> + Send + 'static,
) where
    S: Strategy + 'static,
    S::Value: std::fmt::Debug,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let strategy = make();
        let mut runner = TestRunner::new(ProptestConfig {
            cases: CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&strategy, |value| {
                check(&handle, value).map_err(TestCaseError::fail)
            })
            .map_err(|error| error.to_string())
    })
    .await
    .expect("the property runs")
    .unwrap_or_else(|error| panic!("{error}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_order_body_is_answered_without_5xx_and_4xx_name_the_field() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let (http, url) = (order.http.clone(), order.url("/v1/orders"));
    run_property(
        || (any_body(), any::<bool>()),
        move |handle, (body, json_type)| {
            handle.block_on(async {
                let response = http
                    .post(&url)
                    .header(
                        "content-type",
                        if json_type {
                            "application/json"
                        } else {
                            "text/plain"
                        },
                    )
                    .body(body.clone())
                    .send()
                    .await;
                let (status, content_type, answer) = testkit::http::answer(response).await?;
                check_answer(status, &content_type, &answer, &body)
            })
        },
    )
    .await;
    // Still serving, and every stored order is a well-formed one.
    let (status, _) = order.place("cust-after", &[("CAP-RED", 1)], None).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_breaker_admin_body_is_refused_naming_state_or_applied() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let (http, url) = (order.http.clone(), order.ops_url("/admin/breaker"));
    let bodies = || {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            any_json().prop_map(|value| value.to_string().into_bytes()),
            prop_oneof![
                Just(json!("forced_open")),
                Just(json!("disabled")),
                Just(json!("closed")),
                Just(json!("reset")),
                any_json()
            ]
            .prop_map(|state| json!({ "state": state }).to_string().into_bytes()),
        ]
    };
    run_property(bodies, move |handle, body| {
        handle.block_on(async {
            let response = http
                .put(&url)
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let (status, content_type, answer) = testkit::http::answer(response).await?;
            check_answer(status, &content_type, &answer, &body)?;
            match status {
                200 => {
                    let view: Value =
                        serde_json::from_slice(&answer).map_err(|error| error.to_string())?;
                    let state = view["state"].as_str().unwrap_or_default();
                    ["closed", "forced_open", "disabled"]
                        .contains(&state)
                        .then_some(())
                        .ok_or_else(|| format!("state {state:?} after {body:?}"))
                }
                400 => {
                    let problem: Value =
                        serde_json::from_slice(&answer).map_err(|error| error.to_string())?;
                    (problem["errors"][0]["field"] == "state")
                        .then_some(())
                        .ok_or_else(|| format!("a refusal not naming state: {problem}"))
                }
                other => Err(format!("{other} for {body:?}")),
            }
        })
    })
    .await;
}

/// Opens a raw connection to `addr`.
fn connect(addr: SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    stream
}

/// Sends `request` and reads the status code of the answer (0 if the connection ended
/// without one).
fn status_of(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut stream = connect(addr);
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        if answer.windows(4).any(|window| window == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Reads one HTTP/1.1 answer's head from `stream` (lower-cased).
fn read_head(stream: &mut std::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut byte = [0_u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&answer).to_ascii_lowercase()
}

/// Reads the body that `head`'s content-length announces.
fn read_body(stream: &mut std::net::TcpStream, head: &str) {
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("a content-length");
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).expect("the body");
}

/// On shutdown, a keep-alive connection that is open is still answered for a while, each
/// answer saying `Connection: close`, so its client moves on instead of having a request
/// written into a connection that is being closed; new connections are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_open_keep_alive_connections_are_answered_and_told_to_close() {
    let payment = spawn_payment().await;
    let mut order = spawn_order(&format!("http://{}", payment.addr), &[]).await;
    let addr = order.http_addr;
    let request = b"GET /v1/products HTTP/1.1\r\nhost: order\r\n\r\n";
    let mut stream = connect(addr);
    stream.write_all(request).expect("first request");
    let head = read_head(&mut stream);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "kept alive: {head}");
    read_body(&mut stream, &head);

    order.begin_stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = tokio::task::spawn_blocking(move || std::net::TcpStream::connect(addr))
        .await
        .expect("connect task");
    assert!(refused.is_err(), "no new connection once stopping");
    let answered = tokio::task::spawn_blocking(move || {
        stream.write_all(request).expect("second request");
        let head = read_head(&mut stream);
        read_body(&mut stream, &head);
        // The server closes its side after this answer.
        let mut rest = [0_u8; 1];
        (head, stream.read(&mut rest).ok())
    })
    .await
    .expect("second request task");
    let (head, after) = answered;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(after, Some(0), "closed after the answer");
    order.stop().await;
}

/// Open descriptors of this process (the server runs in it).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_answered_431_and_a_large_legal_one_is_served() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let addr = order.http_addr;
    let get = |headers: String| {
        format!("GET /v1/products HTTP/1.1\r\nhost: order\r\n{headers}connection: close\r\n\r\n")
            .into_bytes()
    };
    let statuses = tokio::task::spawn_blocking(move || {
        [
            // One header larger than the whole head may be.
            status_of(
                addr,
                &get(format!(
                    "x-big: {}\r\n",
                    "a".repeat(MAX_HEADER_BYTES + 1024)
                )),
            ),
            // A megabyte of header: refused after the limit, not read to the end.
            status_of(
                addr,
                &get(format!("x-big: {}\r\n", "a".repeat(1024 * 1024))),
            ),
            // More fields than allowed.
            status_of(
                addr,
                &get((0..200).map(|n| format!("x-h{n}: {n}\r\n")).collect()),
            ),
            // Within the limits: served.
            status_of(
                addr,
                &get(format!("x-big: {}\r\n", "a".repeat(MAX_HEADER_BYTES / 2))),
            ),
            status_of(
                addr,
                &get((0..40).map(|n| format!("x-h{n}: {n}\r\n")).collect()),
            ),
        ]
    })
    .await
    .expect("requests");
    assert_eq!(statuses, [431, 431, 431, 200, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_at_their_deadline_and_do_not_starve_others() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let addr = order.http_addr;
    let baseline = open_descriptors();

    // 100 slowloris clients: a request head one byte every 500 ms, never finished; and 20
    // that connect and send nothing.
    let started = Instant::now();
    let mut slow = Vec::new();
    for n in 0..120 {
        slow.push(tokio::spawn(tokio::time::timeout(
            HEADER_READ_TIMEOUT + Duration::from_secs(5),
            async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                if n < 100 {
                    let _ = stream
                        .write_all(b"GET /v1/products HTTP/1.1\r\nx-slow: ")
                        .await;
                }
                let mut buffer = [0_u8; 256];
                loop {
                    tokio::select! {
                        read = stream.read(&mut buffer) => match read {
                            Ok(0) | Err(_) => return started.elapsed(),
                            Ok(_) => {}
                        },
                        () = tokio::time::sleep(Duration::from_millis(500)), if n < 100 => {
                            if stream.write_all(b"a").await.is_err() {
                                return started.elapsed();
                            }
                        }
                    }
                }
            },
        )));
    }
    // A keep-alive client that asks once, then idles.
    let idle_after_a_request = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = stream
            .write_all(b"GET /v1/products HTTP/1.1\r\nhost: order\r\n\r\n")
            .await;
        let mut buffer = vec![0_u8; 64 * 1024];
        let answered = stream.read(&mut buffer).await.is_ok_and(|n| n > 0);
        let idle = Instant::now();
        let closed = tokio::time::timeout(HEADER_READ_TIMEOUT + Duration::from_secs(5), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok();
        (answered, closed.then(|| idle.elapsed()))
    });
    // A slow body: the head whole, then 10 bytes of a promised 1000, then nothing.
    let slow_body = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = stream
            .write_all(b"POST /v1/orders HTTP/1.1\r\nhost: order\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"custome")
            .await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            BODY_READ_TIMEOUT + Duration::from_secs(5),
            stream.read_to_end(&mut answer),
        )
        .await;
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });

    // Meanwhile everyone else is served at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        open_descriptors() >= baseline + 100,
        "the slow clients are connected"
    );
    let asked = Instant::now();
    let response = order
        .http
        .get(order.url("/v1/products"))
        .send()
        .await
        .expect("served beside the slow clients");
    assert_eq!(response.status(), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );

    for (n, client) in slow.into_iter().enumerate() {
        let cut = client.await.expect("slow client").unwrap_or_else(|_| {
            panic!("slow client {n} still connected after the header timeout + 5 s")
        });
        assert!(
            cut >= HEADER_READ_TIMEOUT - Duration::from_secs(1)
                && cut <= HEADER_READ_TIMEOUT + Duration::from_secs(3),
            "a slow head is cut at the header timeout: after {cut:?}"
        );
    }
    let (answered, idle_cut) = idle_after_a_request.await.expect("idle client");
    assert!(answered, "the keep-alive client was answered");
    let idle_cut = idle_cut.expect("an idle keep-alive connection is closed");
    assert!(
        idle_cut <= HEADER_READ_TIMEOUT + Duration::from_secs(3),
        "{idle_cut:?}"
    );
    let (cut, answer) = slow_body.await.expect("slow body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(cut <= BODY_READ_TIMEOUT + Duration::from_secs(3), "{cut:?}");

    // Their descriptors are given back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        open_descriptors() <= baseline + 5,
        "descriptors back to {baseline}: {}",
        open_descriptors()
    );
}
