//! An axum router with the HTTP layer: route templates as labels, the caller's trace continued,
//! and log lines that carry the trace id.

use std::time::Duration;

use axum::{Router, extract::Path, routing::get};
use stormproof_telemetry::{http::HttpServerLayer, testing::OtlpReceiver};
use testkit::sample;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

async fn order(Path(id): Path<u32>) -> String {
    tracing::info!(order = id, "order.read");
    format!("order {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_traced_by_route_and_logs_carry_the_trace() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let guard = super::init(receiver.endpoint());

    let app = Router::new()
        .route("/v1/orders/{id}", get(order))
        .layer(HttpServerLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let found = http
        .get(format!("http://{addr}/v1/orders/42"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .expect("answered");
    assert_eq!(found.status(), 200);
    let missing = http
        .get(format!("http://{addr}/secret/../admin"))
        .send()
        .await
        .expect("answered");
    assert_eq!(missing.status(), 404);

    let span = receiver
        .wait_for(Duration::from_secs(10), |span| {
            span.name == "GET /v1/orders/{id}"
        })
        .await
        .expect("the request's span");
    assert_eq!(span.kind, 2);
    assert_eq!(span.trace_id, TRACE_ID);
    assert_eq!(
        span.parent_span_id, PARENT_ID,
        "the caller's span is the parent"
    );
    assert_eq!(span.attributes["http.route"], "/v1/orders/{id}");
    assert_eq!(span.attributes["http.request.method"], "GET");
    assert_eq!(
        span.attributes["http.response.status_code"], 200,
        "{span:?}"
    );

    let metrics = stormproof_telemetry::metrics::render(&guard.prometheus());
    let count = |route, status| {
        sample(
            &metrics,
            "http_server_request_duration_seconds_count",
            &[
                ("http_route", route),
                ("http_request_method", "GET"),
                ("http_response_status_code", status),
            ],
        )
    };
    assert_eq!(
        count("/v1/orders/{id}", "200"),
        Some(1.0),
        "labelled by template"
    );
    assert_eq!(
        count("_OTHER", "404"),
        Some(1.0),
        "unrouted paths share one label"
    );

    let line = super::logged()
        .into_iter()
        .find(|line| line["message"] == "order.read")
        .expect("the handler's log line");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["order"], 42);
    assert_eq!(line["trace_id"], TRACE_ID, "logs carry the trace id");
    assert_eq!(line["span_id"], span.span_id.as_str(), "and the span id");
    assert_eq!(line["spans"][0]["name"], "http.server");
}
