//! An admin API's refusals, as both services answer them.

use serde_json::Value;

/// PUTs `body` as `content_type` to the admin API at `url` with `token`, and returns the
/// problem (RFC 9457) it must be refused with: asserts the answer is `expected` with an
/// `application/problem+json` body whose `status` says the same.
pub async fn admin_refusal(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    content_type: &str,
    body: String,
    expected: u16,
) -> Value {
    let response = http
        .put(url)
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("answered");
    problem(response, expected, content_type).await
}

/// `response` is a problem (`application/problem+json`) with `status` in its line and body;
/// its body. `context` names the case in a failed assertion.
pub async fn problem(response: reqwest::Response, status: u16, context: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{context:?}");
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..]),
        "{context:?}"
    );
    let problem: Value = response.json().await.expect("a JSON body");
    assert_eq!(problem["status"], status, "{context:?}");
    problem
}

/// The admin body rule, end to end on the admin route `url`: `body` sent as `other_type` is
/// refused 415, and `body` padded past 16 KiB is refused 413, both as problems after which
/// `unchanged` must hold; then `body` as `application/json` with a parameter and another case
/// is taken (200). `body` is a JSON object.
pub async fn admin_body_rule(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
    other_type: &str,
    unchanged: impl Fn(),
) {
    let mut large = body.clone();
    large["pad"] = Value::from("x".repeat(17 * 1024));
    for (content_type, sent, expected) in [
        (other_type, body.to_string(), 415),
        ("application/json", large.to_string(), 413),
    ] {
        admin_refusal(http, url, token, content_type, sent, expected).await;
        unchanged();
    }
    let taken = http
        .put(url)
        .bearer_auth(token)
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(taken.status().as_u16(), 200, "parameters are allowed");
}

/// Asserts that `response` refuses a caller without the right bearer token: 401 with
/// `WWW-Authenticate: Bearer` and a problem body that never echoes `token`.
pub async fn assert_unauthorized(response: reqwest::Response, token: &str) {
    let challenge = response.headers().get("www-authenticate").cloned();
    let body = problem(response, 401, "unauthorized").await;
    assert_eq!(
        challenge.as_ref().map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert!(
        !body.to_string().contains(token),
        "the answer never echoes the token"
    );
}
