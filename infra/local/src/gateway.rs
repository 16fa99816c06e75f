//! A stand-in for API Gateway: forwards each request to the function URL
//! endpoint of `cargo lambda watch` for the function that owns its path.

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;

/// Largest request body forwarded, in bytes: API Gateway's payload limit of 10 MB.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// The function serving `POST /api/nango-session`.
const CONNECT_SESSION_FUNCTION: &str = "connect-session";
/// The function serving `POST /api/nango-webhook`.
const NANGO_WEBHOOK_FUNCTION: &str = "nango-webhook";
/// The function serving every other path, so unknown paths get its 404.
const ANALYZE_API_FUNCTION: &str = "analyze-api";

/// Headers that describe one connection and are not forwarded (RFC 9110,
/// section 7.6.1), plus `host` and `content-length`, which the HTTP client
/// sets for the new request.
const NOT_FORWARDED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// The gateway's state: where `cargo lambda watch` listens and the client that calls it.
#[derive(Debug, Clone)]
pub struct Gateway {
    http: reqwest::Client,
    /// The base URL of `cargo lambda watch`, without a trailing slash.
    lambda_watch_url: String,
    timeout: Duration,
}

impl Gateway {
    /// Creates a gateway. `timeout` bounds each forwarded request and must
    /// allow for `cargo lambda watch` compiling a function on its first request.
    pub fn new(lambda_watch_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            lambda_watch_url: lambda_watch_url.trim_end_matches('/').to_owned(),
            timeout,
        })
    }

    pub fn router(self) -> Router {
        Router::new().fallback(forward).with_state(self)
    }

    /// Returns the function URL for a request's path and query.
    pub fn function_url(&self, path_and_query: &str) -> String {
        let path = path_and_query.split('?').next().unwrap_or("");
        format!(
            "{}/lambda-url/{}{}",
            self.lambda_watch_url,
            function_for_path(path),
            path_and_query
        )
    }
}

/// Returns the name of the function that serves `path`.
pub fn function_for_path(path: &str) -> &'static str {
    match path.trim_end_matches('/') {
        "/api/nango-session" => CONNECT_SESSION_FUNCTION,
        "/api/nango-webhook" => NANGO_WEBHOOK_FUNCTION,
        _ => ANALYZE_API_FUNCTION,
    }
}

/// A request that could not be forwarded. The gateway responds with 502 or 504
/// as API Gateway does for integration failures, in the functions' error body shape.
#[derive(Debug, thiserror::Error)]
enum GatewayError {
    #[error("the request body could not be read or is larger than {MAX_REQUEST_BYTES} bytes")]
    Body,
    #[error("the function {function} could not be reached at {url}: {reason}. Check that `cargo lambda watch` is running.")]
    Unreachable {
        function: &'static str,
        url: String,
        reason: String,
    },
    #[error("the function {function} did not respond within {seconds} s")]
    Timeout {
        function: &'static str,
        seconds: u64,
    },
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            Self::Body => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "gateway_error"),
            Self::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout"),
        };
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        (status, axum::Json(body)).into_response()
    }
}

async fn forward(State(gateway): State<Gateway>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let function = function_for_path(&path);

    let response = match send(&gateway, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%method, %path, function, %error, "forwarding a request failed");
            error.into_response()
        }
    };
    tracing::info!(
        %method,
        %path,
        function,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis(),
        "request forwarded"
    );
    response
}

async fn send(gateway: &Gateway, request: Request) -> Result<Response, GatewayError> {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |value| value.as_str());
    let function = function_for_path(parts.uri.path());
    let url = gateway.function_url(path_and_query);
    let body = to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| GatewayError::Body)?;

    let upstream = gateway
        .http
        .request(parts.method, &url)
        .headers(forwarded_headers(&parts.headers))
        .body(body)
        .send()
        .await
        .map_err(|error| upstream_error(gateway, function, &url, error))?;

    let status = upstream.status();
    let headers = forwarded_headers(upstream.headers());
    let body = upstream
        .bytes()
        .await
        .map_err(|error| upstream_error(gateway, function, &url, error))?;

    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn upstream_error(
    gateway: &Gateway,
    function: &'static str,
    url: &str,
    error: reqwest::Error,
) -> GatewayError {
    let error = error.without_url();
    if error.is_timeout() {
        GatewayError::Timeout {
            function,
            seconds: gateway.timeout.as_secs(),
        }
    } else {
        GatewayError::Unreachable {
            function,
            url: url.to_owned(),
            reason: error.to_string(),
        }
    }
}

/// Copies every header except those in [`NOT_FORWARDED`] and those that a
/// `Connection` header names as connection options.
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let connection_options: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();

    let mut forwarded = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let skipped = NOT_FORWARDED.contains(&name.as_str()) || connection_options.contains(name);
        if !skipped {
            forwarded.append(name.clone(), value.clone());
        }
    }
    forwarded
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn paths_go_to_their_functions() {
        assert_eq!(function_for_path("/api/nango-session"), "connect-session");
        assert_eq!(function_for_path("/api/nango-session/"), "connect-session");
        assert_eq!(function_for_path("/api/nango-webhook"), "nango-webhook");
        assert_eq!(function_for_path("/api/nango-webhook/"), "nango-webhook");
        assert_eq!(function_for_path("/api/nango-webhooks"), "analyze-api");
        assert_eq!(function_for_path("/api/analyze-prs"), "analyze-api");
        assert_eq!(function_for_path("/api/analyses/x"), "analyze-api");
        assert_eq!(function_for_path("/nope"), "analyze-api");
    }

    #[test]
    fn function_url_keeps_path_and_query() {
        let gateway =
            Gateway::new("http://127.0.0.1:9000/", Duration::from_secs(1)).expect("client builds");
        assert_eq!(
            gateway.function_url("/api/analyses/abc?x=1&y=%2F"),
            "http://127.0.0.1:9000/lambda-url/analyze-api/api/analyses/abc?x=1&y=%2F"
        );
        assert_eq!(
            gateway.function_url("/api/nango-session"),
            "http://127.0.0.1:9000/lambda-url/connect-session/api/nango-session"
        );
        assert_eq!(
            gateway.function_url("/api/nango-webhook"),
            "http://127.0.0.1:9000/lambda-url/nango-webhook/api/nango-webhook"
        );
    }

    #[test]
    fn hop_by_hop_headers_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        headers.insert("x-user-id", HeaderValue::from_static("demo-user"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));

        let forwarded = forwarded_headers(&headers);

        assert_eq!(
            forwarded.get("x-user-id"),
            Some(&HeaderValue::from_static("demo-user"))
        );
        assert_eq!(forwarded.get_all(header::SET_COOKIE).iter().count(), 2);
        assert!(forwarded.get(header::HOST).is_none());
        assert!(forwarded.get(header::CONNECTION).is_none());
        assert!(forwarded.get("x-private").is_none());
        assert!(forwarded.get(header::CONTENT_LENGTH).is_none());
    }
}
