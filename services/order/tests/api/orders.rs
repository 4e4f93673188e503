//! Placing, reading and listing orders with a healthy payment; idempotency.

use futures::future::join_all;
use serde_json::Value;
use stormproof_payment::domain::OrderId;

use crate::helpers::{sample, spawn_order, spawn_payment};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_confirmed_charged_once_and_can_be_read() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;

    let response = order
        .http
        .post(order.url("/v1/orders"))
        .json(&serde_json::json!({
            "customer_id": "cust-1",
            "lines": [{ "sku": "CAP-RED", "quantity": 2 }, { "sku": "MUG-LOGO", "quantity": 1 }],
        }))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 201);
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .expect("a Location");
    let placed: Value = response.json().await.expect("JSON");
    assert_eq!(placed["status"], "CONFIRMED");
    assert_eq!(placed["total"]["amount_minor"], 2 * 1500 + 890);
    assert_eq!(placed["total"]["currency_code"], "EUR");
    let order_id = placed["order_id"].as_str().expect("an id").to_owned();
    assert_eq!(location, format!("/v1/orders/{order_id}"));

    let read: Value = order
        .http
        .get(order.url(&location))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(read, placed, "GET returns what POST answered");

    let charged = payment
        .ledger
        .get(&OrderId::parse(&order_id).expect("valid id"))
        .await
        .expect("ledger")
        .expect("one payment");
    assert_eq!(
        charged.amount_minor,
        2 * 1500 + 890,
        "charged the order's total"
    );

    let missing = order
        .http
        .get(order.url("/v1/orders/ord_nope"))
        .send()
        .await
        .expect("answered");
    assert_eq!(missing.status(), 404);
    order.stop().await;
    payment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_orders_are_listed_newest_first_in_pages() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        let (status, body) = order.place("cust-list", &[("SOCKS-3PK", 1)], None).await;
        assert_eq!(status, 201);
        placed.push(body["order_id"].as_str().expect("id").to_owned());
    }
    order.place("someone-else", &[("SOCKS-3PK", 1)], None).await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page: Value = order
            .http
            .get(order.url("/v1/orders"))
            .query(&[
                ("customer_id", "cust-list"),
                ("page_size", "2"),
                ("page_token", &token),
            ])
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        let orders = page["orders"].as_array().expect("orders");
        assert!(orders.len() <= 2);
        seen.extend(
            orders
                .iter()
                .map(|order| order["order_id"].as_str().unwrap_or_default().to_owned()),
        );
        token = page["next_page_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token.is_empty() {
            break;
        }
    }
    placed.reverse();
    assert_eq!(
        seen, placed,
        "every order once, newest first, no stranger's"
    );

    let bad = order
        .http
        .get(order.url("/v1/orders"))
        .query(&[("customer_id", "cust-list"), ("page_token", "garbage")])
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), 400);
    order.stop().await;
    payment.stop().await;
}

#[tokio::test]
async fn the_catalogue_can_be_browsed() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let catalogue: Value = order
        .http
        .get(order.url("/v1/products"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let products = catalogue["products"].as_array().expect("products");
    assert!(products.len() >= 10);
    assert!(products.iter().any(|product| product["sku"] == "CAP-RED"
        && product["unit_price"]["amount_minor"] == 1500
        && product["unit_price"]["currency_code"] == "EUR"));
    order.stop().await;
    payment.stop().await;
}

/// 20 requests at once with one Idempotency-Key: one order, one charge, 20 identical answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_with_one_key_make_one_order_and_one_charge() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let answers = join_all(
        (0..20).map(|_| order.place("cust-idem", &[("HOODIE-GRY-M", 1)], Some("key-0001"))),
    )
    .await;
    let first_id = answers[0].1["order_id"].clone();
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body["order_id"], first_id, "the same order every time");
    }
    assert_eq!(order.store.count().await.expect("count"), 1, "one order");
    assert_eq!(
        payment.ledger.count().await.expect("count"),
        1,
        "one charge"
    );

    // The same key for another request is refused, and nothing is stored.
    let (status, problem) = order
        .place("cust-idem", &[("CAP-RED", 3)], Some("key-0001"))
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(order.store.count().await.expect("count"), 1);
    // The client's mistake is not a failed order: orders_total counts the one order, and the
    // 422 is counted where answers are, by status code.
    let metrics = order.metrics().await;
    let orders = |status| sample(&metrics, "orders_total", &[("status", status)]);
    assert_eq!(orders("confirmed"), Some(1.0), "one order, counted once");
    assert_eq!(orders("failed").unwrap_or(0.0), 0.0, "nothing failed");
    assert_eq!(
        sample(
            &metrics,
            "http_server_request_duration_seconds_count",
            &[
                ("http_route", "/v1/orders"),
                ("http_request_method", "POST"),
                ("http_response_status_code", "422"),
            ],
        ),
        Some(1.0),
        "the refusal is counted by its status code"
    );
    order.stop().await;
    payment.stop().await;
}

/// A business decline is definitive: 402 with the REJECTED order, not a fallback.
#[tokio::test]
async fn a_declined_charge_is_a_402_with_the_rejected_order() {
    use stormproof_payment::faults::FaultSettings;

    let payment = spawn_payment().await;
    payment.set_faults(FaultSettings {
        decline_rate: 1.0,
        ..FaultSettings::default()
    });
    let order = spawn_order(&payment.url(), &[]).await;
    let response = order
        .http
        .post(order.url("/v1/orders"))
        .json(&serde_json::json!({ "customer_id": "cust-poor", "lines": [{ "sku": "JACKET-RAIN-L", "quantity": 1 }] }))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 402);
    assert!(response.headers().contains_key("location"));
    let problem: Value = response.json().await.expect("JSON");
    assert_eq!(problem["order"]["status"], "REJECTED");
    let id = problem["order"]["order_id"].as_str().expect("id");
    let stored = order.app.get_order(id).await.expect("stored");
    assert_eq!(
        stored.status.as_str(),
        "REJECTED",
        "stored as answered, and settled"
    );
    let metrics = order.metrics().await;
    assert_eq!(
        crate::helpers::sample(&metrics, "orders_total", &[("status", "rejected")]),
        Some(1.0)
    );
    order.stop().await;
    payment.stop().await;
}

/// Readiness and health say whether order can serve, never whether payment can.
#[tokio::test]
async fn readiness_never_depends_on_payment() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    payment.stop().await;
    order.place("cust-r", &[("CAP-RED", 1)], None).await;

    for path in ["/readyz", "/healthz"] {
        let response = order
            .http
            .get(order.ops_url(path))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200, "{path} with payment gone");
    }
    assert_eq!(
        testkit::grpc::health(order.grpc_addr, "stormproof.order.v1.OrderService").await,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    order.stop().await;
}

/// Every series DESIGN names for order exists after some traffic, with its labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_design_series_are_exported() {
    use contracts::order::v1::{GetOrderRequest, order_service_client::OrderServiceClient};

    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let (_, placed) = order.place("cust-m", &[("CAP-RED", 1)], None).await;
    let mut client = OrderServiceClient::connect(format!("http://{}", order.grpc_addr))
        .await
        .expect("connect");
    client
        .get_order(GetOrderRequest {
            order_id: placed["order_id"].as_str().unwrap_or_default().to_owned(),
        })
        .await
        .expect("found");
    let metrics = order.metrics().await;
    let has = |name: &str, labels: &[(&str, &str)]| {
        assert!(
            crate::helpers::sample(&metrics, name, labels).is_some(),
            "{name} {labels:?}"
        );
    };
    has("orders_total", &[("status", "confirmed")]);
    has(
        "fallback_total",
        &[("dependency", "payment"), ("reason", "breaker_open")],
    );
    has("order_payment_backlog", &[]);
    has("order_payment_oldest_pending_seconds", &[]);
    has("order_reconcile_total", &[("outcome", "confirmed")]);
    has(
        "circuit_breaker_state",
        &[("dependency", "payment"), ("state", "closed")],
    );
    has(
        "circuit_breaker_calls_total",
        &[("dependency", "payment"), ("outcome", "success")],
    );
    has("circuit_breaker_failure_rate", &[("dependency", "payment")]);
    assert_eq!(
        crate::helpers::sample(
            &metrics,
            "circuit_breaker_failure_rate_threshold",
            &[("dependency", "payment")]
        ),
        Some(0.5),
        "the configured trip threshold (--breaker-failure-rate's default)"
    );
    has(
        "retry_attempts_total",
        &[("dependency", "payment"), ("outcome", "success")],
    );
    has("retry_budget_exhausted_total", &[("dependency", "payment")]);
    has("bulkhead_in_flight", &[("dependency", "payment")]);
    has("bulkhead_rejected_total", &[("dependency", "payment")]);
    has("concurrency_limit", &[("service", "order")]);
    has("load_shed_total", &[("service", "order")]);
    has(
        "http_server_request_duration_seconds_count",
        &[
            ("http_route", "/v1/orders"),
            ("http_request_method", "POST"),
            ("http_response_status_code", "201"),
        ],
    );
    has(
        "rpc_client_call_duration_seconds_count",
        &[
            ("rpc_service", "stormproof.payment.v1.PaymentService"),
            ("rpc_method", "ProcessPayment"),
            ("rpc_grpc_status_code", "0"),
        ],
    );
    has(
        "rpc_server_call_duration_seconds_count",
        &[
            ("rpc_service", "stormproof.order.v1.OrderService"),
            ("rpc_method", "GetOrder"),
            ("rpc_grpc_status_code", "0"),
        ],
    );
    has("build_info", &[("version", env!("CARGO_PKG_VERSION"))]);
    order.stop().await;
    payment.stop().await;
}
