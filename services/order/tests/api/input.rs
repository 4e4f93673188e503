//! Bad input: every refusal says which field and why, and nothing is stored.
use crate::helpers::{one_cap, spawn_order, spawn_payment};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_naming_the_field_and_store_nothing() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let line = |sku: &str, quantity: &str| format!(r#"{{"sku":"{sku}","quantity":{quantity}}}"#);
    let body = |lines: &str| format!(r#"{{"customer_id":"cust-1","lines":[{lines}]}}"#);
    let fifty_one = vec![line("CAP-RED", "1"); 51].join(",");
    let huge = format!(r#"{{"customer_id":"{}"}}"#, "x".repeat(1024 * 1024));

    let cases: Vec<(String, u16, &str)> = vec![
        ("{\"customer_id\": ".to_owned(), 400, ""),
        ("[1, 2]".to_owned(), 400, ""),
        (body(&line("CAP-RED", "\"two\"")), 400, "lines[0].quantity"),
        (body(&line("CAP-RED", "0")), 400, "lines[0].quantity"),
        (body(&line("CAP-RED", "-3")), 400, "lines[0].quantity"),
        (body(&line("CAP-RED", "101")), 400, "lines[0].quantity"),
        (
            body(&line("CAP-RED", "99999999999999999999")),
            400,
            "lines[0].quantity",
        ),
        (body(&line("CAP-RED", "1.5")), 400, "lines[0].quantity"),
        (body(&line("NOT-A-SKU", "1")), 400, "lines[0].sku"),
        (body(""), 400, "lines"),
        (body(&fifty_one), 400, "lines"),
        (
            r#"{"customer_id":"a b","lines":[{"sku":"CAP-RED","quantity":1}]}"#.to_owned(),
            400,
            "customer_id",
        ),
        (
            r#"{"lines":[{"sku":"CAP-RED","quantity":1}]}"#.to_owned(),
            400,
            "customer_id",
        ),
        (
            r#"{"customer_id":"c","lines":[{"sku":"CAP-RED","quantity":1}],"coupon":"X"}"#
                .to_owned(),
            400,
            "coupon",
        ),
        (
            r#"{"customer_id":"c","lines":[{"sku":"CAP-RED","quantity":1,"gift":true}]}"#
                .to_owned(),
            400,
            "lines[0].gift",
        ),
        (huge, 413, ""),
    ];
    for (payload, expected, field) in cases {
        let response = order
            .http
            .post(order.url("/v1/orders"))
            .header("content-type", "application/json")
            .body(payload.clone())
            .send()
            .await
            .expect("answered");
        let shown = &payload[..payload.len().min(80)];
        let problem = testkit::admin::problem(response, expected, shown).await;
        if !field.is_empty() {
            let named = problem["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|error| error["field"] == field));
            assert!(named, "{shown}: {field} named in {problem}");
        }
    }

    let not_json = order
        .http
        .post(order.url("/v1/orders"))
        .header("content-type", "text/plain")
        .body("customer_id=c")
        .send()
        .await
        .expect("answered");
    assert_eq!(not_json.status(), 415);

    assert_eq!(
        order.store.count().await.expect("count"),
        0,
        "no row written"
    );
    assert_eq!(
        payment.ledger.count().await.expect("count"),
        0,
        "nothing charged"
    );
    order.stop().await;
    payment.stop().await;
}

#[tokio::test]
async fn grpc_refusals_carry_bad_request_details() {
    use contracts::order::v1::{self as pb, order_service_client::OrderServiceClient};
    use tonic_types::StatusExt as _;

    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let mut client = OrderServiceClient::connect(format!("http://{}", order.grpc_addr))
        .await
        .expect("connect");
    let status = client
        .place_order(pb::PlaceOrderRequest {
            customer_id: String::new(),
            lines: vec![pb::OrderLine {
                sku: "CAP-RED".to_owned(),
                quantity: 0,
                unit_price: None,
            }],
            idempotency_key: String::new(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect();
    assert_eq!(fields, ["customer_id", "lines[0].quantity"]);

    let placed = client
        .place_order(one_cap("cust-grpc"))
        .await
        .expect("placed")
        .into_inner()
        .order
        .expect("an order");
    assert_eq!(placed.status(), pb::OrderStatus::Confirmed);
    order.stop().await;
    payment.stop().await;
}
