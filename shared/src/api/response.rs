//! JSON responses of the HTTP API, errors included.

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::json;

/// An error response of the HTTP API: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid caller identity")]
    Unauthorized,
    /// A webhook whose `X-Nango-Hmac-Sha256` header is missing or does not match its body.
    #[error("missing or invalid webhook signature")]
    InvalidSignature,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {max_bytes} bytes")]
    PayloadTooLarge { max_bytes: usize },
    #[error("invalid request: {message}")]
    InvalidRequest {
        field: Option<String>,
        message: String,
    },
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    #[error("connection not found")]
    ConnectionNotFound,
    #[error("connection must be reconnected")]
    ReconnectRequired,
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    #[error("idempotency key in use by a request still running")]
    IdempotencyKeyInUse,
    #[error("too many new analyses; retry after {retry_after_seconds} s")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: Method, allow: &'static str },
    #[error("upstream {upstream} failed")]
    BadGateway { upstream: &'static str },
    #[error("{code}: {message}")]
    ServiceUnavailable { code: &'static str, message: String },
}

impl ApiError {
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::InvalidSignature => StatusCode::UNAUTHORIZED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } | Self::ConnectionNotFound => StatusCode::NOT_FOUND,
            Self::ReconnectRequired | Self::IdempotencyKeyInUse => StatusCode::CONFLICT,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::InvalidSignature => "invalid_signature",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::NotFound { .. } => "not_found",
            Self::ConnectionNotFound => "connection_not_found",
            Self::ReconnectRequired => "reconnect_required",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::BadGateway { .. } => "upstream_failed",
            Self::ServiceUnavailable { code, .. } => code,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unauthorized => {
                String::from(
                    "Sign in first: send the caller's identity (an API Gateway JWT, or the x-user-id header when AUTH_MODE=dev).",
                )
            }
            Self::InvalidSignature => String::from(
                "The X-Nango-Hmac-Sha256 header is missing or does not match the body: sign the exact body with the Nango webhook signing key.",
            ),
            Self::UnsupportedMediaType => {
                String::from("Send the body as JSON with Content-Type: application/json.")
            }
            Self::PayloadTooLarge { max_bytes } => format!(
                "The request body is larger than {max_bytes} bytes: send only the documented fields, which fit well under that limit."
            ),
            Self::InvalidRequest { message, .. } => message.clone(),
            Self::NotFound { resource } => match *resource {
                "route" => String::from(
                    "Route not found: the API serves POST /api/nango-session, POST /api/analyze-prs, GET /api/analyses/{id} and POST /api/nango-webhook.",
                ),
                other => format!("{other} not found: check the id, and that you are signed in as its owner."),
            },
            Self::ConnectionNotFound => String::from(
                "No GitHub connection with this connectionId belongs to you: connect GitHub again and use the new connection id.",
            ),
            Self::ReconnectRequired => {
                String::from("GitHub access for this connection was revoked or expired: reconnect GitHub, then try again.")
            }
            Self::IdempotencyKeyReused => String::from(
                "This Idempotency-Key was already used with a different connectionId or repo: use a new key for a new request.",
            ),
            Self::IdempotencyKeyInUse => String::from(
                "A request with this Idempotency-Key is still being processed: retry in a moment.",
            ),
            Self::TooManyRequests { retry_after_seconds } => {
                format!("You have requested too many analyses this hour: try again in {retry_after_seconds} seconds.")
            }
            Self::MethodNotAllowed { method, allow } => {
                format!("{method} is not allowed on this path: use {allow}.")
            }
            Self::BadGateway { upstream } => {
                format!("{upstream} did not accept the request; try again later.")
            }
            Self::ServiceUnavailable { message, .. } => message.clone(),
        }
    }

    /// Returns the request field that the error is about, so clients can highlight it.
    fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidRequest { field, .. } => field.as_deref(),
            Self::ConnectionNotFound | Self::ReconnectRequired => Some("connectionId"),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut error = json!({ "code": self.code(), "message": self.message() });
        if let Some(field) = self.field() {
            error["field"] = json!(field);
        }
        let mut response = json_response(self.status(), &json!({ "error": error }));
        match self {
            Self::MethodNotAllowed { allow, .. } => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::TooManyRequests {
                retry_after_seconds,
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            }
            _ => {}
        }
        response
    }
}

/// Builds a response with a JSON body.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Serialising our own response types cannot fail, so the bare error object is never used.
    let text = serde_json::to_string(body)
        .unwrap_or_else(|_| String::from(r#"{"error":{"code":"internal"}}"#));
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
