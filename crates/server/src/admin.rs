//! An admin API's guard and its body rule: a bearer token compared in constant time, and
//! JSON bodies of bounded size.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::problem::problem;

/// Guards every route of `router` with `Authorization: Bearer <token>`: anything else is 401
/// with a problem body and `WWW-Authenticate: Bearer`. The comparison takes the same time
/// wherever the tokens differ, and whatever their lengths. An empty `token` (an `ADMIN_TOKEN=`
/// left blank) authorizes nothing: the routes exist and answer 401 to everyone.
pub fn bearer_auth(router: Router, token: SecretString) -> Router {
    router.route_layer(middleware::from_fn_with_state(Arc::new(token), authorize))
}

async fn authorize(
    State(token): State<Arc<SecretString>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(presented)
            if !token.expose_secret().is_empty()
                && constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes()) =>
        {
            next.run(request).await
        }
        _ => {
            let mut response = problem(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer <ADMIN_TOKEN>` header is required",
                &[] as &[()],
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Compares `presented` with the `expected` token without an early exit, so the time taken
/// says nothing about the token: not where the first difference is, nor how long the token is.
/// The loop always walks the expected token's length (fixed for the process) and reads the
/// presented bytes it has, zero past its end; a length difference is folded in at the end
/// rather than checked first (a first check would tell a caller the token's length). The
/// accumulator goes through `black_box` so the optimiser cannot turn the fold into an early
/// return. No crate needed: `subtle`'s slice comparison returns early on a length mismatch.
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(presented.len() != expected.len());
    for (index, byte) in expected.iter().enumerate() {
        let other = presented.get(index).copied().unwrap_or(0);
        difference = std::hint::black_box(difference | (byte ^ other));
    }
    difference == 0
}

/// The largest body an admin change may have: settings are a few dozen bytes.
pub const ADMIN_BODY_LIMIT: usize = 16 * 1024;

/// The body of an admin change, as an extractor: one rule for every admin API. The request
/// must say `Content-Type: application/json` (parameters such as `; charset=utf-8` allowed;
/// `application/jsonp` or no type at all is refused, 415) and carry at most
/// [`ADMIN_BODY_LIMIT`] bytes (413). Both refusals are problem details, like every other
/// refusal of the API, so a client reads one error shape.
#[derive(Debug, Clone)]
pub struct AdminJson(pub bytes::Bytes);

/// Whether `headers` declare a JSON body: the media type `application/json`, whatever its
/// parameters, compared case-insensitively as RFC 9110 says.
pub fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for AdminJson {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Response> {
        let none: &[serde_json::Value] = &[];
        if !is_json(request.headers()) {
            return Err(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be `application/json` (Content-Type: application/json)",
                none,
            ));
        }
        let too_large = || {
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body must be at most {ADMIN_BODY_LIMIT} bytes"),
                none,
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > ADMIN_BODY_LIMIT as u64) {
            return Err(too_large());
        }
        match axum::body::to_bytes(request.into_body(), ADMIN_BODY_LIMIT).await {
            Ok(body) => Ok(Self(body)),
            // Past the limit (a chunked body that declared no length), or cut short: either
            // way nothing was changed, and a length error is by far the likelier.
            Err(_) => Err(too_large()),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::Request, routing::get};
    use secrecy::SecretString;
    use tower::ServiceExt as _;

    use super::{ADMIN_BODY_LIMIT, AdminJson, bearer_auth, constant_time_eq};

    async fn status(token: &str, authorization: &str) -> u16 {
        let router = bearer_auth(
            Router::new().route("/admin", get(|| async { "ok" })),
            SecretString::from(token.to_owned()),
        );
        let request = Request::get("/admin")
            .header("authorization", authorization)
            .body(Body::empty())
            .expect("request");
        router
            .oneshot(request)
            .await
            .expect("answered")
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn only_the_exact_bearer_token_passes_and_an_empty_one_never_does() {
        assert_eq!(status("s3cret", "Bearer s3cret").await, 200);
        assert_eq!(status("s3cret", "Bearer s3cre").await, 401);
        assert_eq!(status("s3cret", "bearer s3cret").await, 401);
        assert_eq!(status("s3cret", "Basic s3cret").await, 401);
        assert_eq!(status("", "Bearer ").await, 401);
    }

    /// One admin body rule: `application/json` with any parameters and any case, else 415;
    /// at most ADMIN_BODY_LIMIT bytes, declared or not, else 413; both as problem details.
    #[tokio::test]
    async fn the_admin_body_rule_takes_json_only_and_bounds_its_size() {
        async fn answer(content_type: Option<&str>, body: Vec<u8>, chunked: bool) -> (u16, String) {
            let router = Router::new().route(
                "/admin",
                axum::routing::put(
                    |AdminJson(body): AdminJson| async move { body.len().to_string() },
                ),
            );
            let mut request = Request::put("/admin");
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let body = if chunked {
                Body::from_stream(futures_stream(body))
            } else {
                Body::from(body)
            };
            let response = router
                .oneshot(request.body(body).expect("request"))
                .await
                .expect("answered");
            let kind = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (response.status().as_u16(), kind)
        }
        fn futures_stream(
            body: Vec<u8>,
        ) -> impl tokio_stream::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
            tokio_stream::iter(
                body.chunks(1024)
                    .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            )
        }
        let json = br#"{"state": "closed"}"#.to_vec();
        let problem = "application/problem+json".to_owned();
        for refused in [
            None,
            Some("application/jsonp"),
            Some("text/plain"),
            Some("json"),
        ] {
            assert_eq!(
                answer(refused, json.clone(), false).await,
                (415, problem.clone()),
                "{refused:?}"
            );
        }
        let large = vec![b' '; ADMIN_BODY_LIMIT + 1];
        for chunked in [false, true] {
            assert_eq!(
                answer(Some("application/json"), large.clone(), chunked).await,
                (413, problem.clone()),
                "chunked: {chunked}"
            );
        }
        for taken in ["application/json", "Application/JSON; charset=utf-8"] {
            assert_eq!(
                answer(Some(taken), json.clone(), false).await.0,
                200,
                "{taken}"
            );
        }
        let fits = vec![b' '; ADMIN_BODY_LIMIT];
        assert_eq!(answer(Some("application/json"), fits, true).await.0, 200);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"S3cret"));
        // Longer, shorter, a prefix, an extension, padded with zero bytes, empty.
        assert!(!constant_time_eq(b"s3cret!", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret\0", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre\0", b"s3cret\0"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
