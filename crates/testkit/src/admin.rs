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
    assert_eq!(response.status().as_u16(), expected, "{content_type:?}");
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..]),
        "{content_type:?}"
    );
    let problem: Value = response.json().await.expect("a JSON body");
    assert_eq!(problem["status"], expected, "{content_type:?}");
    problem
}
