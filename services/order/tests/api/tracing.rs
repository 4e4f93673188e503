//! One trace from the HTTP request through each payment attempt to payment's server span.

use std::time::Duration;

use serde_json::json;
use stormproof_payment::faults::FaultSettings;
use telemetry::testing::OtlpReceiver;

use crate::helpers::{init_telemetry, spawn_order, spawn_payment};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_http_each_payment_attempt_and_payment() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    init_telemetry(Some(receiver.endpoint()));
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &["--retry-max-attempts", "5"]).await;
    // Payment fails every call for its first 30 ms, so the first attempt fails and a retry
    // (after a jittered backoff) succeeds: at least two attempts, so two client spans.
    payment.set_faults(FaultSettings {
        failure_rate: 1.0,
        ..FaultSettings::default()
    });
    let heal = {
        let faults = payment.faults.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            faults.set(FaultSettings::default());
        })
    };

    let response = order
        .http
        .post(order.url("/v1/orders"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(
            &json!({ "customer_id": "cust-trace", "lines": [{ "sku": "CAP-RED", "quantity": 1 }] }),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 201);
    heal.await.expect("heal task");

    let server = receiver
        .wait_for(Duration::from_secs(10), |span| {
            span.name == "POST /v1/orders"
        })
        .await
        .expect("the HTTP server span");
    assert_eq!(server.trace_id, TRACE_ID, "continues the caller's trace");
    assert_eq!(server.parent_span_id, PARENT_ID);

    let payment_server = receiver
        .wait_for(Duration::from_secs(10), |span| {
            span.kind == 2
                && span.name == "stormproof.payment.v1.PaymentService/ProcessPayment"
                && span.attributes["rpc.grpc.status_code"] == 0
        })
        .await
        .expect("payment's server span of the successful attempt");
    assert_eq!(
        payment_server.trace_id, TRACE_ID,
        "the same trace reaches payment"
    );

    let attempts: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|span| span.kind == 3 && span.name.ends_with("/ProcessPayment"))
        .collect();
    assert!(
        attempts.len() >= 2,
        "a client span per attempt: {attempts:?}"
    );
    for attempt in &attempts {
        assert_eq!(attempt.trace_id, TRACE_ID);
    }
    assert!(
        attempts
            .iter()
            .any(|attempt| attempt.span_id == payment_server.parent_span_id),
        "payment's span is a child of an attempt"
    );
    let retried = receiver.spans().into_iter().any(|span| {
        span.trace_id == TRACE_ID && span.events.iter().any(|event| event == "retry.scheduled")
    });
    assert!(retried, "the retry is an event on the calling span");

    let logged = telemetry::testing::logged()
        .into_iter()
        .find(|line| line["message"] == "order.placed")
        .expect("a log line for the order");
    assert_eq!(logged["trace_id"], TRACE_ID, "logs carry the trace id");
    let order_id = logged["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find_map(|span| span["order_id"].as_str()))
        .expect("and the order id");
    assert!(order_id.starts_with("ord_"));
    order.stop().await;
    payment.stop().await;
}
