//! HTTP clients of the upstream services: Nango, GitHub and the Anthropic Messages API.
//!
//! Each client owns one `reqwest::Client` with connect and total timeouts,
//! built once at cold start and reused across invocations.

pub mod anthropic;
pub mod github;
pub mod nango;

use crate::config::HttpTimeouts;

/// The `User-Agent` sent upstream; GitHub rejects requests without one.
pub const USER_AGENT: &str = concat!("pr-digest/", env!("CARGO_PKG_VERSION"));

/// A failed request to an upstream that got no HTTP status back.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after the configured timeout")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Other(String),
}

impl From<reqwest::Error> for TransportError {
    fn from(error: reqwest::Error) -> Self {
        // The error's URL may carry query values, so only its kind and cause are kept.
        let error = error.without_url();
        if error.is_timeout() {
            Self::Timeout
        } else if error.is_connect() {
            Self::Connect(error.to_string())
        } else {
            Self::Other(error.to_string())
        }
    }
}

pub(crate) fn build_http_client(timeouts: HttpTimeouts) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .build()
}

/// Reads a header as text, if present and visible ASCII.
pub(crate) fn header_str<'a>(
    headers: &'a reqwest::header::HeaderMap,
    name: &str,
) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
