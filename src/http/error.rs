//! The one error answer of the HTTP API: `{"error": "<code>", "message": "<one sentence>"}`
//! with the status that goes with it (docs/HTTP.md "Answers and errors").
//!
//! Codes are stable words clients can branch on; messages are for people and never carry a
//! token. Every handler, extractor and middleware of the daemon answers errors through this
//! type, and [`json_errors`] turns the bare answers of tower-http layers (413, 408) into it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable word.
    pub code: &'static str,
    /// One sentence for people.
    pub message: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// More members of the JSON object (`"published"` of a 503 mid-batch).
    pub extra: Map<String, Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            extra: Map::new(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no token, or one we do not know.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 413: the body is bigger than `max_body`.
    pub fn too_large(max: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body is larger than the server's limit of {} (http.max_body)",
                crate::config::ByteSize(max)
            ),
        )
    }

    /// 408: the client did not send its request in time.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request was not received in time (http.request_timeout)",
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(token: &str, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("token {token:?} is over its rate; retry in {secs} s"),
        );
        e.retry_after = Some(secs.max(1));
        e
    }

    /// 503: the broker is not reachable. `published` readings were acknowledged before.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            message,
        );
        e.retry_after = Some(1);
        e
    }

    /// Add a member to the JSON object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("error".into(), json!(self.code));
        m.insert("message".into(), json!(self.message));
        m.extend(self.extra.clone());
        Value::Object(m)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        // The rest of an unread body would be taken as the next request: close instead.
        if matches!(
            self.status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"iotitan\""),
            );
        }
        res
    }
}

/// Middleware: turn the bare error answers of layers that know nothing of our JSON (the body
/// limit's early 413, a timeout's 408, axum's 405 and rejections) into [`ApiError`]s, so every
/// error a client sees has the one shape.
pub async fn json_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    max_body: u64,
) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return res;
    }
    let e = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(max_body),
        StatusCode::REQUEST_TIMEOUT => ApiError::request_timeout(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this path does not take that method",
        ),
        StatusCode::NOT_FOUND => ApiError::not_found("not_found", "no such path"),
        s if s.is_client_error() => ApiError::new(s, "bad_request", "the request was refused"),
        s => ApiError::new(s, "internal", "the server could not answer"),
    };
    let mut out = e.into_response();
    // Keep what the original answer said about methods and retries.
    for h in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = res.headers().get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let e = ApiError::unavailable("broker down after 3 of 5").with("published", 3);
        assert_eq!(
            e.body(),
            json!({"error": "broker_unavailable", "message": "broker down after 3 of 5", "published": 3})
        );
        let r = ApiError::rate_limited("phone", std::time::Duration::from_millis(1500));
        assert_eq!(r.retry_after, Some(2));
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(ApiError::too_large(1 << 20).message.contains("1MiB"));
    }
}
