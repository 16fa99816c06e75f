//! CORS: exact-match origins from `ALLOWED_ORIGINS`; other origins get no CORS headers.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};

/// Request headers a browser may send.
const ALLOWED_HEADERS: &str = "authorization, content-type, idempotency-key, x-user-id";
/// Seconds a browser may cache a preflight response.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Responds to an `OPTIONS` preflight with 204, adding CORS headers only for an allowed origin.
pub fn preflight(
    request: &Request,
    allowed_origins: &[String],
    allowed_methods: &'static str,
) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    if add_headers(request, &mut response, allowed_origins) {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(allowed_methods),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
    }
    response
}

/// Adds `Access-Control-Allow-Origin` for an allowed origin, and always `Vary: Origin`.
/// Returns whether the origin was allowed.
pub fn add_headers(
    request: &Request,
    response: &mut Response<Body>,
    allowed_origins: &[String],
) -> bool {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));

    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return false;
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|origin| allowed_origins.iter().any(|allowed| allowed == origin));
    if allowed {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        // Lets a browser read the status URL of a 202.
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("location"),
        );
    }
    allowed
}
