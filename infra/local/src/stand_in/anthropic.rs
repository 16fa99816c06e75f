//! The Anthropic Messages API: `POST /v1/messages`, served without calling a model.
//!
//! The response lists every pull request found in the prompt's
//! `<pull_requests>` data block (one JSON object per line, as pr-digest's
//! prompt builder writes it), so a demo shows that the data went through.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pr_digest::domain::DATA_BLOCK_TAG;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{header_text, random_hex, StandIn};

/// The first line of every simulated response.
pub const SIMULATED_NOTICE: &str =
    "SIMULATED response from the local upstream stand-in: no model was called.";

/// Characters per token in the usage estimate, a common rule of thumb for English text.
const CHARS_PER_TOKEN: usize = 4;

/// One pull request line of the data block, without the fields the summary does not show.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestLine {
    pub number: u64,
    pub title: String,
    pub author: String,
    #[serde(default)]
    pub draft: bool,
}

/// An error response in the Messages API's shape.
struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl ApiError {
    fn invalid_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: "invalid_request_error",
            message: message.into(),
        }
    }
}

fn with_request_id(status: StatusCode, body: Value, request_id: &str) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

/// `POST /v1/messages`.
pub(super) async fn create_message(
    State(stand_in): State<Arc<StandIn>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = format!("req_{}", random_hex(24));
    match message(&stand_in, &headers, &body) {
        Ok(message) => with_request_id(StatusCode::OK, message, &request_id),
        Err(error) => {
            let body = json!({
                "type": "error",
                "error": { "type": error.error_type, "message": error.message },
                "request_id": request_id,
            });
            with_request_id(error.status, body, &request_id)
        }
    }
}

fn message(stand_in: &StandIn, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    match header_text(headers, "x-api-key") {
        Some(key) if key == stand_in.settings.anthropic_api_key => {}
        Some(_) => {
            return Err(ApiError {
                status: StatusCode::UNAUTHORIZED,
                error_type: "authentication_error",
                message: String::from("invalid x-api-key"),
            })
        }
        None => {
            return Err(ApiError {
                status: StatusCode::UNAUTHORIZED,
                error_type: "authentication_error",
                message: String::from("x-api-key header is required"),
            })
        }
    }
    if header_text(headers, "anthropic-version").is_none_or(str::is_empty) {
        return Err(ApiError::invalid_request(
            "anthropic-version: header is required",
        ));
    }

    let request: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::invalid_request(format!("The body is not valid JSON: {error}"))
    })?;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .filter(|model| !model.is_empty())
        .ok_or_else(|| ApiError::invalid_request("model: Field required"))?;
    let max_tokens = request
        .get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|max| *max > 0)
        .ok_or_else(|| ApiError::invalid_request("max_tokens: a positive integer is required"))?;
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::invalid_request(
            "stream: the local stand-in does not stream; send \"stream\": false",
        ));
    }
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|messages| !messages.is_empty())
        .ok_or_else(|| ApiError::invalid_request("messages: at least one message is required"))?;

    let user_text = messages
        .iter()
        .filter(|message| message.get("role").and_then(Value::as_str) == Some("user"))
        .map(|message| content_text(message.get("content")))
        .collect::<Vec<_>>()
        .join("\n");
    let system_text = content_text(request.get("system"));

    let (mut text, mut stop_reason) = (simulated_summary(&user_text), "end_turn");
    let output_limit_chars = usize::try_from(max_tokens)
        .unwrap_or(usize::MAX)
        .saturating_mul(CHARS_PER_TOKEN);
    if text.chars().count() > output_limit_chars {
        text = text.chars().take(output_limit_chars).collect();
        stop_reason = "max_tokens";
    }

    Ok(json!({
        "id": format!("msg_{}", random_hex(24)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{ "type": "text", "text": text }],
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": estimate_tokens(&system_text) + estimate_tokens(&user_text),
            "output_tokens": estimate_tokens(&text),
        }
    }))
}

/// Returns the text of a `content` or `system` value: a string, or the
/// joined `text` of an array of content blocks.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Estimates tokens as characters divided by [`CHARS_PER_TOKEN`], rounded up.
fn estimate_tokens(text: &str) -> u64 {
    let chars = text.chars().count();
    u64::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(u64::MAX)
}

/// Parses the lines of the `<pull_requests>` block, or returns `None` when the
/// prompt has no block. Each line is a pull request, or the reason it could not be read.
pub fn parse_pull_request_block(prompt: &str) -> Option<Vec<Result<PullRequestLine, String>>> {
    let block_start = format!("<{DATA_BLOCK_TAG}>");
    let block_end = format!("</{DATA_BLOCK_TAG}>");
    let start = prompt.find(&block_start)? + block_start.len();
    let length = prompt[start..].find(&block_end)?;
    let lines = prompt[start..start + length]
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).map_err(|error| error.to_string()))
        .collect();
    Some(lines)
}

/// Writes the simulated digest: the notice line, the repository when the
/// prompt names one, then one line per pull request.
pub fn simulated_summary(prompt: &str) -> String {
    let mut text = format!("{SIMULATED_NOTICE}\n");
    if let Some(repository) = prompt
        .lines()
        .find_map(|line| line.strip_prefix("Repository: "))
    {
        text.push_str(&format!("Repository: {}\n", repository.trim()));
    }

    let Some(lines) = parse_pull_request_block(prompt) else {
        text.push_str("The prompt had no <pull_requests> block, so there is nothing to list.\n");
        return text;
    };
    text.push_str(&format!("Pull requests received: {}\n", lines.len()));
    for (index, line) in lines.iter().enumerate() {
        match line {
            Ok(pull_request) => {
                let draft = if pull_request.draft { " (draft)" } else { "" };
                text.push_str(&format!(
                    "- #{} {} by {}{draft}\n",
                    pull_request.number, pull_request.title, pull_request.author
                ));
            }
            Err(reason) => text.push_str(&format!(
                "- line {} of the block could not be read: {reason}\n",
                index + 1
            )),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "Repository: demo-org/demo-repo\nOpen pull requests listed: 3\n<pull_requests>\n\
        {\"number\":1,\"title\":\"Add \\u003cb> tag\",\"author\":\"dev-a\",\"draft\":false,\"labels\":[],\"body\":\"x\"}\n\
        {\"number\":2,\"title\":\"WIP 🦀\",\"author\":\"ghost\",\"draft\":true,\"labels\":[\"x\"],\"body\":\"\"}\n\
        not json\n\
        </pull_requests>\nWrite the digest of the pull requests above.";

    #[test]
    fn block_lines_are_parsed() {
        let lines = parse_pull_request_block(PROMPT).expect("block present");
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            Ok(PullRequestLine {
                number: 1,
                title: String::from("Add <b> tag"),
                author: String::from("dev-a"),
                draft: false,
            })
        );
        assert!(lines[1].as_ref().is_ok_and(|pr| pr.draft));
        assert!(lines[2].is_err());
    }

    #[test]
    fn summary_lists_each_pull_request() {
        let summary = simulated_summary(PROMPT);
        assert!(summary.starts_with(SIMULATED_NOTICE));
        assert!(summary.contains("Repository: demo-org/demo-repo\n"));
        assert!(summary.contains("- #1 Add <b> tag by dev-a\n"));
        assert!(summary.contains("- #2 WIP 🦀 by ghost (draft)\n"));
        assert!(summary.contains("- line 3 of the block could not be read"));
    }

    #[test]
    fn summary_without_block_says_so() {
        assert_eq!(parse_pull_request_block("no block here"), None);
        assert_eq!(parse_pull_request_block("<pull_requests>\nunclosed"), None);
        let summary = simulated_summary("hello");
        assert!(summary.contains("no <pull_requests> block"));
    }

    #[test]
    fn tokens_round_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("🦀🦀🦀🦀"), 1);
    }
}
