//! Nango client against wiremock, with bodies from Nango's documented contract.

use pr_digest::domain::{ConnectionId, UserId};
use pr_digest::upstream::nango::{Credentials, NangoError};
use secrecy::ExposeSecret;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    nango_client, nango_connection_body, GITHUB_TOKEN, INTEGRATION_ID, NANGO_KEY,
};

const SESSION_TOKEN: &str =
    "nango_connect_session_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn connect_session_sends_tags_and_integration() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/sessions"))
        .and(header(
            "authorization",
            format!("Bearer {NANGO_KEY}").as_str(),
        ))
        .and(body_json(
            json!({"tags": {"end_user_id": "user-123"}, "allowed_integrations": [INTEGRATION_ID]}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"data": {
            "token": SESSION_TOKEN,
            "connect_link": format!("https://connect.nango.dev?session_token={SESSION_TOKEN}"),
            "expires_at": "2026-08-21T12:30:00.000Z"
        }})))
        .expect(1)
        .mount(&server)
        .await;

    let user = UserId::parse("user-123").expect("valid");
    let session = nango_client(&server)
        .create_connect_session(&user)
        .await
        .expect("created");

    assert_eq!(session.token.expose_secret(), SESSION_TOKEN);
    assert_eq!(session.expires_at.unix_timestamp(), 1_787_315_400);
}

#[tokio::test]
async fn connect_session_reports_nango_error_code() {
    let server = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": "invalid_body",
            "message": "Invalid request body",
            "errors": [{"code": "custom", "message": "Integration does not exist", "path": ["allowed_integrations", "0"]}]
        }})))
        .mount(&server)
        .await;

    let user = UserId::parse("user-123").expect("valid");
    let error = nango_client(&server)
        .create_connect_session(&user)
        .await
        .expect_err("rejected");

    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(error.code(), Some("invalid_body"));
}

#[tokio::test]
async fn get_connection_encodes_id_and_reads_token() {
    let server = MockServer::start().await;
    let connection_id = "org/team:user@example.com";
    Mock::given(method("GET"))
        .and(path("/connections/org%2Fteam%3Auser%40example.com"))
        .and(query_param("provider_config_key", INTEGRATION_ID))
        .and(header(
            "authorization",
            format!("Bearer {NANGO_KEY}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(nango_connection_body(connection_id, "user-123")),
        )
        .expect(1)
        .mount(&server)
        .await;

    let id = ConnectionId::parse(connection_id).expect("valid");
    let connection = nango_client(&server)
        .get_connection(&id)
        .await
        .expect("read");

    assert_eq!(connection.connection_id, connection_id);
    assert_eq!(
        connection.tags.get("end_user_id").map(String::as_str),
        Some("user-123")
    );
    assert_eq!(connection.end_user_id, None);
    assert!(
        matches!(connection.credentials, Credentials::Token(token) if token.expose_secret() == GITHUB_TOKEN)
    );
}

#[tokio::test]
async fn get_connection_maps_errors() {
    let cases = [
        (
            404,
            json!({"error": {"code": "not_found", "message": "No connection found"}}),
            "not_found",
        ),
        (
            404,
            json!({"error": {"code": "unknown_connection", "message": "Unknown connection"}}),
            "unknown_connection",
        ),
        (
            400,
            json!({"error": {"code": "unknown_provider_config", "message": "Unknown integration"}}),
            "unknown_provider_config",
        ),
        (
            424,
            json!({"error": {"code": "invalid_credentials", "message": "A recent refresh attempt failed. Backing off..."}}),
            "invalid_credentials",
        ),
    ];

    for (status, body, expected_code) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/connections/c1"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;

        let id = ConnectionId::parse("c1").expect("valid");
        let error = nango_client(&server)
            .get_connection(&id)
            .await
            .expect_err("rejected");

        assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(error.code(), Some(expected_code));
    }
}

#[tokio::test]
async fn get_connection_rejects_malformed_body() {
    let server = MockServer::start().await;
    Mock::given(path("/connections/c1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{not json"))
        .mount(&server)
        .await;

    let id = ConnectionId::parse("c1").expect("valid");
    let error = nango_client(&server)
        .get_connection(&id)
        .await
        .expect_err("malformed");

    assert!(matches!(error, NangoError::InvalidResponse { .. }));
}

#[tokio::test]
async fn get_connection_reads_retry_after() {
    let server = MockServer::start().await;
    Mock::given(path("/connections/c1"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "12")
                .set_body_json(
                    json!({"error": {"code": "too_many_request", "message": "Too many requests"}}),
                ),
        )
        .mount(&server)
        .await;

    let id = ConnectionId::parse("c1").expect("valid");
    let error = nango_client(&server)
        .get_connection(&id)
        .await
        .expect_err("rate limited");

    assert!(matches!(
        error,
        NangoError::Rejected {
            retry_after_seconds: Some(12),
            ..
        }
    ));
}
