//! Order's admin API (`/admin/breaker`): refused with 401 and a problem body unless the bearer
//! token is exactly right, and nothing changes on a refusal.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, spawn_order, spawn_payment};

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused_with_401_and_changes_nothing() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let url = order.ops_url("/admin/breaker");
    let force = json!({ "state": "forced_open" });
    let requests = [
        order.http.get(&url),
        order.http.get(&url).bearer_auth("wrong-token"),
        // A prefix of the token, the token with a byte more, another case: all wrong.
        order
            .http
            .put(&url)
            .bearer_auth(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])
            .json(&force),
        order
            .http
            .put(&url)
            .bearer_auth(format!("{ADMIN_TOKEN}x"))
            .json(&force),
        order
            .http
            .put(&url)
            .bearer_auth(ADMIN_TOKEN.to_uppercase())
            .json(&force),
        order.http.put(&url).json(&force),
        order
            .http
            .put(&url)
            .header("authorization", format!("Basic {ADMIN_TOKEN}"))
            .json(&force),
        order
            .http
            .put(&url)
            .header("authorization", format!("bearer{ADMIN_TOKEN}"))
            .json(&force),
    ];
    for request in requests {
        let response = request.send().await.expect("answered");
        testkit::admin::assert_unauthorized(response, ADMIN_TOKEN).await;
    }

    let shown: Value = order
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        shown["state"], "closed",
        "no refused call changed the breaker"
    );
    order.stop().await;
    payment.stop().await;
}

/// The breaker API takes the admin body rule (its cases: `server::admin`'s unit test):
/// another type is 415, a large body 413, both problem bodies that change nothing.
#[tokio::test]
async fn the_admin_body_rule_refuses_other_types_and_large_bodies_as_problems() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let url = order.ops_url("/admin/breaker");
    let force = json!({ "state": "forced_open" });
    testkit::admin_body_rule(
        &order.http,
        &url,
        ADMIN_TOKEN,
        &force,
        "application/jsonp",
        || {
            assert_eq!(order.breaker.state().as_str(), "closed");
        },
    )
    .await;
    assert_eq!(order.breaker.state().as_str(), "forced_open");
    order.stop().await;
    payment.stop().await;
}

/// A bad `x-request-timeout-ms` is refused naming the header and the expected format.
#[tokio::test]
async fn a_bad_timeout_header_says_what_a_valid_one_looks_like() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let response = order
        .http
        .post(order.url("/v1/orders"))
        .header("x-request-timeout-ms", "1.5s")
        .json(&json!({ "customer_id": "cust-t", "lines": [{ "sku": "CAP-RED", "quantity": 1 }] }))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.expect("a JSON body");
    assert_eq!(
        problem["errors"][0]["field"], "x-request-timeout-ms",
        "{problem}"
    );
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("whole number of milliseconds, such as 250")),
        "{problem}"
    );
    assert_eq!(order.store.count().await.expect("count"), 0);
    order.stop().await;
    payment.stop().await;
}
