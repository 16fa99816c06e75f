//! Anthropic Messages API client.

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{build_http_client, header_str, TransportError};
use crate::config::AnthropicConfig;
use crate::domain::TokenUsage;

const API_VERSION: &str = "2023-06-01";

/// One user turn with a system prompt: all a digest needs.
#[derive(Debug, Clone)]
pub struct MessageRequest {
    pub system: String,
    pub user_message: String,
}

/// The model's response.
#[derive(Debug, Clone)]
pub struct MessageResponse {
    pub model: String,
    /// The `text` blocks joined in order; other block types are skipped.
    pub text: String,
    pub stop_reason: Option<String>,
    pub usage: TokenUsage,
    /// The `request-id` header, for support requests.
    pub request_id: Option<String>,
}

/// A failed Messages API call.
#[derive(Debug, thiserror::Error)]
pub enum AnthropicError {
    #[error("Messages API request failed: {0}")]
    Transport(#[from] TransportError),
    #[error("Messages API returned {status} ({error_type}): {message}")]
    Api {
        status: StatusCode,
        error_type: String,
        message: String,
        request_id: Option<String>,
        /// The `x-should-retry` header, when sent.
        should_retry: Option<bool>,
        /// `retry-after-ms`, else `retry-after` in seconds, as milliseconds.
        retry_after_ms: Option<u64>,
    },
    #[error("Messages API returned a body that could not be read: {0}")]
    InvalidResponse(String),
}

impl AnthropicError {
    /// Tells whether the call may succeed if repeated later. Like the official
    /// SDKs, it obeys `x-should-retry` when sent, and otherwise retries 408, 409,
    /// 429, 5xx (529 included) and connection failures.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) | Self::InvalidResponse(_) => true,
            Self::Api {
                status,
                should_retry,
                ..
            } => should_retry.unwrap_or_else(|| {
                matches!(status.as_u16(), 408 | 409 | 429)
                    || status.is_server_error()
                    || status.as_u16() == 529
            }),
        }
    }
}

#[derive(Serialize)]
struct RequestBody<'a> {
    model: &'a str,
    max_tokens: u32,
    system: &'a str,
    messages: [RequestMessage<'a>; 1],
}

#[derive(Serialize)]
struct RequestMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ResponseBody {
    model: String,
    #[serde(default)]
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock {
    Text {
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    error_type: String,
    #[serde(default)]
    message: String,
}

/// A client of the Messages API with one API key and model.
#[derive(Debug, Clone)]
pub struct AnthropicClient {
    http: reqwest::Client,
    config: AnthropicConfig,
}

impl AnthropicClient {
    pub fn new(config: AnthropicConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: build_http_client(config.timeouts)?,
            config,
        })
    }

    /// Returns the total timeout of one call.
    pub fn timeout(&self) -> std::time::Duration {
        self.config.timeouts.total
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// Sends one message and returns the model's text.
    pub async fn create_message(
        &self,
        request: &MessageRequest,
    ) -> Result<MessageResponse, AnthropicError> {
        let mut url = self.config.base_url.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}/v1/messages"));

        let body = RequestBody {
            model: &self.config.model,
            max_tokens: self.config.max_tokens,
            system: &request.system,
            messages: [RequestMessage {
                role: "user",
                content: &request.user_message,
            }],
        };

        let response = self
            .http
            .post(url)
            .header("x-api-key", self.config.api_key.expose_secret())
            .header("anthropic-version", API_VERSION)
            .json(&body)
            .send()
            .await
            .map_err(TransportError::from)?;

        let status = response.status();
        let request_id = header_str(response.headers(), "request-id").map(str::to_owned);
        tracing::info!(%status, anthropic_request_id = request_id.as_deref().unwrap_or("-"), "Messages API responded");

        if !status.is_success() {
            return Err(rejection(response, request_id).await);
        }

        let bytes = response.bytes().await.map_err(TransportError::from)?;
        let body: ResponseBody = serde_json::from_slice(&bytes)
            .map_err(|error| AnthropicError::InvalidResponse(error.to_string()))?;

        let text = body
            .content
            .into_iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text } => Some(text),
                ContentBlock::Other => None,
            })
            .collect::<Vec<_>>()
            .join("");

        Ok(MessageResponse {
            model: body.model,
            text,
            stop_reason: body.stop_reason,
            usage: TokenUsage {
                input_tokens: body.usage.input_tokens,
                output_tokens: body.usage.output_tokens,
            },
            request_id,
        })
    }
}

async fn rejection(response: reqwest::Response, request_id: Option<String>) -> AnthropicError {
    let status = response.status();
    let headers = response.headers().clone();
    let should_retry = match header_str(&headers, "x-should-retry").map(str::trim) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    let retry_after_ms = header_str(&headers, "retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .or_else(|| {
            header_str(&headers, "retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|s| s * 1000.0)
        })
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| ms as u64);

    let body = response.bytes().await.unwrap_or_default();
    let (error_type, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => (error.error_type, error.message),
        Err(_) => (String::from("unknown"), String::new()),
    };
    AnthropicError::Api {
        status,
        error_type,
        message,
        request_id,
        should_retry,
        retry_after_ms,
    }
}
