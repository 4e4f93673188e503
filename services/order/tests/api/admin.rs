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
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..])
        );
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["status"], 401);
        assert!(
            !body.to_string().contains(ADMIN_TOKEN),
            "the answer never echoes the token"
        );
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
