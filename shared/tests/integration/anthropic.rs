//! Anthropic Messages API client against wiremock.

use pr_digest::upstream::anthropic::{AnthropicError, MessageRequest};
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{anthropic_client, anthropic_message_body, ANTHROPIC_KEY};

fn request() -> MessageRequest {
    MessageRequest {
        system: "You write digests.".into(),
        user_message: "<pull_requests>\n</pull_requests>".into(),
    }
}

#[tokio::test]
async fn create_message_sends_headers_and_joins_text() {
    let server = MockServer::start().await;
    let mut body = anthropic_message_body(&["First part. ", "Second part."], "end_turn");
    body["content"].as_array_mut().expect("array").insert(
        0,
        json!({"type": "thinking", "thinking": "hmm", "signature": "x"}),
    );
    body["content"]
        .as_array_mut()
        .expect("array")
        .push(json!({"type": "some_future_block", "data": 1}));
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", ANTHROPIC_KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "model": "claude-opus-4-6",
            "max_tokens": 2048,
            "system": "You write digests.",
            "messages": [{"role": "user", "content": "<pull_requests>\n</pull_requests>"}]
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy")
                .set_body_json(body),
        )
        .expect(1)
        .mount(&server)
        .await;

    let message = anthropic_client(&server)
        .create_message(&request())
        .await
        .expect("answered");

    assert_eq!(message.text, "First part. Second part.");
    assert_eq!(message.model, "claude-opus-4-6");
    assert_eq!(message.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(message.usage.input_tokens, 2095);
    assert_eq!(message.usage.output_tokens, 503);
    assert_eq!(
        message.request_id.as_deref(),
        Some("req_011CSHoEeqs5C35K2UUqR7Fy")
    );
}

#[tokio::test]
async fn create_message_accepts_empty_content() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(anthropic_message_body(&[], "end_turn")),
        )
        .mount(&server)
        .await;

    let message = anthropic_client(&server)
        .create_message(&request())
        .await
        .expect("answered");

    assert_eq!(message.text, "");
}

#[tokio::test]
async fn create_message_classifies_errors() {
    let error_body = |kind: &str| json!({"type": "error", "error": {"type": kind, "message": "details"}, "request_id": "req_1"});
    let cases = [
        (
            ResponseTemplate::new(400).set_body_json(error_body("invalid_request_error")),
            false,
        ),
        (
            ResponseTemplate::new(401).set_body_json(error_body("authentication_error")),
            false,
        ),
        (
            ResponseTemplate::new(403).set_body_json(error_body("permission_error")),
            false,
        ),
        (
            ResponseTemplate::new(404).set_body_json(error_body("not_found_error")),
            false,
        ),
        (
            ResponseTemplate::new(413).set_body_json(error_body("request_too_large")),
            false,
        ),
        (
            ResponseTemplate::new(429)
                .insert_header("retry-after", "20")
                .set_body_json(error_body("rate_limit_error")),
            true,
        ),
        (
            ResponseTemplate::new(500).set_body_json(error_body("api_error")),
            true,
        ),
        (
            ResponseTemplate::new(529).set_body_json(error_body("overloaded_error")),
            true,
        ),
        (ResponseTemplate::new(408).set_body_string("timeout"), true),
        (
            ResponseTemplate::new(500)
                .insert_header("x-should-retry", "false")
                .set_body_json(error_body("api_error")),
            false,
        ),
        (
            ResponseTemplate::new(400)
                .insert_header("x-should-retry", "true")
                .set_body_json(error_body("invalid_request_error")),
            true,
        ),
    ];

    for (template, transient) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/v1/messages"))
            .respond_with(template)
            .mount(&server)
            .await;

        let error = anthropic_client(&server)
            .create_message(&request())
            .await
            .expect_err("error status");

        assert!(matches!(error, AnthropicError::Api { .. }), "{error:?}");
        assert_eq!(error.is_transient(), transient, "{error:?}");
    }
}

#[tokio::test]
async fn create_message_reads_retry_after() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "20")
                .set_body_json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})),
        )
        .mount(&server)
        .await;

    let error = anthropic_client(&server)
        .create_message(&request())
        .await
        .expect_err("rate limited");

    assert!(
        matches!(error, AnthropicError::Api { retry_after_ms: Some(20_000), ref error_type, .. } if error_type == "rate_limit_error")
    );
}
