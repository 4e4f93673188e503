//! Reading an HTTP answer whatever it is, for tests that throw hostile input at a service.

/// The status, content type and body of `response`, or what went wrong: no answer at all (a
/// panic, a reset) or a body cut short.
pub async fn answer(
    response: reqwest::Result<reqwest::Response>,
) -> Result<(u16, String, Vec<u8>), String> {
    let response = response.map_err(|error| format!("no answer (a panic or a reset?): {error}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.bytes().await.map_err(|error| error.to_string())?;
    Ok((status, content_type, body.to_vec()))
}
