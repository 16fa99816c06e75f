//! The Nango webhook handler fed signed API Gateway events, on a moto access table.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use pr_digest::access::{AccessStore, ConnectionRecord, ConnectionStatus, DynamoDbAccessStore};
use pr_digest::api::{webhook_signature, NangoWebhookApi, MAX_BODY_BYTES};
use pr_digest::domain::{ConnectionId, UserId};
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::Digest as _;
use time::OffsetDateTime;

use crate::helpers::{event, request, response_json, INTEGRATION_ID};

/// The signing key that `events/nango-webhook.json` is signed with.
const WEBHOOK_KEY: &str = "test-webhook-secret";
/// The connection and owner in `events/nango-webhook.json`.
const SAMPLE_CONNECTION: &str = "conn-user-123";
const SAMPLE_OWNER: &str = "user-123";

type RawItem = HashMap<String, AttributeValue>;

struct TestWebhook {
    api: NangoWebhookApi,
    store: Arc<DynamoDbAccessStore>,
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl TestWebhook {
    async fn record(&self, connection_id: &str) -> Option<ConnectionRecord> {
        self.store
            .get_connection(INTEGRATION_ID, &connection(connection_id))
            .await
            .expect("the access table can be read")
    }

    /// Reads every attribute of a connection's item, `updatedAt` included, to prove that nothing was written.
    async fn raw_item(&self, connection_id: &str) -> Option<RawItem> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(
                "pk",
                AttributeValue::S(format!("connection#{INTEGRATION_ID}#{connection_id}")),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("the access table can be read")
            .item
    }

    async fn seed(&self, connection_id: &str, owner: &str, status: ConnectionStatus) {
        let record = ConnectionRecord {
            connection_id: connection(connection_id),
            integration_id: INTEGRATION_ID.into(),
            owner: UserId::parse(owner).expect("a valid user id"),
            status,
        };
        self.store
            .put_connection(&record, OffsetDateTime::now_utc())
            .await
            .expect("the record is stored");
    }

    async fn deliver(&self, event: &Value) -> Response<Body> {
        self.api.handle(request(event)).await
    }
}

/// Creates a fresh access table (key `pk`, a string) on moto.
async fn create_access_table() -> (aws_sdk_dynamodb::Client, String) {
    crate::helpers::create_table("access", "pk").await
}

async fn webhook_api_with_key(key: &str) -> TestWebhook {
    let (client, table) = create_access_table().await;
    let store = Arc::new(DynamoDbAccessStore::new(client.clone(), &table, 30));
    TestWebhook {
        api: NangoWebhookApi::new(store.clone(), SecretString::from(key), INTEGRATION_ID),
        store,
        client,
        table,
    }
}

async fn webhook_api() -> TestWebhook {
    webhook_api_with_key(WEBHOOK_KEY).await
}

fn connection(id: &str) -> ConnectionId {
    ConnectionId::parse(id).expect("a valid connection id")
}

/// HMAC-SHA256 computed here, apart from the code under test, as lowercase hex.
fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Builds the sample webhook event with `body` and the given `X-Nango-Hmac-Sha256` header, or none.
fn event_with(body: &str, signature_header: Option<&str>) -> Value {
    let mut event = event("nango-webhook.json");
    event["body"] = json!(body);
    event["headers"]["content-length"] = json!(body.len().to_string());
    let headers = event["headers"].as_object_mut().expect("headers");
    headers.remove("x-nango-hmac-sha256");
    if let Some(value) = signature_header {
        headers.insert("x-nango-hmac-sha256".into(), json!(value));
    }
    event
}

/// Builds the sample webhook event with `body`, signed with the test key.
fn signed_event(body: &str) -> Value {
    event_with(body, Some(&signature(WEBHOOK_KEY, body.as_bytes())))
}

fn auth_body(operation: &str, success: bool, connection_id: &str, owner: Option<&str>) -> String {
    let mut body = json!({
        "from": "nango",
        "type": "auth",
        "operation": operation,
        "success": success,
        "connectionId": connection_id,
        "providerConfigKey": INTEGRATION_ID,
        "provider": "github",
        "authMode": "OAUTH2",
        "environment": "prod",
    });
    if let Some(owner) = owner {
        body["tags"] = json!({ "end_user_id": owner });
    }
    if !success {
        body["error"] = json!({
            "type": "refresh_token_external_error",
            "description": "The external API returned an error when trying to refresh the access token."
        });
    }
    body.to_string()
}

fn owner_of(record: &ConnectionRecord) -> &str {
    record.owner.as_str()
}

// ------------------------------------------------------------- accepted

#[tokio::test]
async fn sample_event_stores_owner() {
    let test = webhook_api().await;

    let response = test.deliver(&event("nango-webhook.json")).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response_json(&response), json!({"status": "ok"}));
    let record = test.record(SAMPLE_CONNECTION).await.expect("stored");
    assert_eq!(owner_of(&record), SAMPLE_OWNER);
    assert_eq!(record.status, ConnectionStatus::Active);
}

#[tokio::test]
async fn creation_stores_owner() {
    let test = webhook_api().await;
    let body = auth_body("creation", true, "conn-new", Some("u_123"));

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let record = test.record("conn-new").await.expect("stored");
    assert_eq!(owner_of(&record), "u_123");
    assert_eq!(record.status, ConnectionStatus::Active);
    assert_eq!(record.integration_id, INTEGRATION_ID);
}

#[tokio::test]
async fn creation_reads_end_user_fallback() {
    let test = webhook_api().await;
    let body = json!({
        "type": "auth",
        "operation": "creation",
        "success": true,
        "connectionId": "conn-old-style",
        "providerConfigKey": INTEGRATION_ID,
        "end_user": {"id": "u_old"},
    })
    .to_string();

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let record = test.record("conn-old-style").await.expect("stored");
    assert_eq!(owner_of(&record), "u_old");
}

#[tokio::test]
async fn base64_body_is_verified() {
    let test = webhook_api().await;
    let body = auth_body("creation", true, "conn-b64", Some("u_b64"));
    let mut event = signed_event(&body);
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
    event["isBase64Encoded"] = json!(true);

    let response = test.deliver(&event).await;

    assert_eq!(response.status(), StatusCode::OK);
    let record = test.record("conn-b64").await.expect("stored");
    assert_eq!(owner_of(&record), "u_b64");
}

#[tokio::test]
async fn override_changes_owner() {
    let test = webhook_api().await;
    test.seed("conn-1", "u_first", ConnectionStatus::ReconnectRequired)
        .await;
    let body = auth_body("override", true, "conn-1", Some("u_second"));

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let record = test.record("conn-1").await.expect("stored");
    assert_eq!(owner_of(&record), "u_second");
    assert_eq!(record.status, ConnectionStatus::Active);
}

#[tokio::test]
async fn failed_refresh_marks_reconnect_required() {
    let test = webhook_api().await;
    test.seed("conn-1", "u_owner", ConnectionStatus::Active)
        .await;
    // The tags of a refresh webhook do not replace the stored owner.
    let body = auth_body("refresh", false, "conn-1", Some("u_other"));

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let record = test.record("conn-1").await.expect("stored");
    assert_eq!(record.status, ConnectionStatus::ReconnectRequired);
    assert_eq!(owner_of(&record), "u_owner");
}

#[tokio::test]
async fn failed_refresh_without_record_stores_tagged_owner() {
    let test = webhook_api().await;
    let body = auth_body("refresh", false, "conn-unknown", Some("u_owner"));

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let record = test.record("conn-unknown").await.expect("stored");
    assert_eq!(record.status, ConnectionStatus::ReconnectRequired);
    assert_eq!(owner_of(&record), "u_owner");
}

#[tokio::test]
async fn failed_refresh_without_owner_is_ignored() {
    let test = webhook_api().await;
    let body = auth_body("refresh", false, "conn-unknown", None);

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response_json(&response), json!({"status": "ignored"}));
    assert!(test.raw_item("conn-unknown").await.is_none());
}

#[tokio::test]
async fn duplicate_delivery_is_idempotent() {
    let test = webhook_api().await;
    let creation = signed_event(&auth_body("creation", true, "conn-1", Some("u_1")));
    let refresh = signed_event(&auth_body("refresh", false, "conn-1", Some("u_1")));

    let first = test.deliver(&creation).await;
    let after_first = test.record("conn-1").await;
    let second = test.deliver(&creation).await;
    let after_second = test.record("conn-1").await;
    test.deliver(&refresh).await;
    let after_refresh = test.record("conn-1").await;
    let refresh_again = test.deliver(&refresh).await;
    let after_refresh_again = test.record("conn-1").await;

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(refresh_again.status(), StatusCode::OK);
    assert!(after_first.is_some());
    assert_eq!(after_first, after_second);
    assert_eq!(
        after_refresh.as_ref().map(|r| r.status),
        Some(ConnectionStatus::ReconnectRequired)
    );
    assert_eq!(after_refresh, after_refresh_again);
}

// -------------------------------------------------------------- ignored

#[tokio::test]
async fn unknown_type_is_ignored() {
    let test = webhook_api().await;
    test.seed("conn-1", "u_owner", ConnectionStatus::Active)
        .await;
    let before = test.raw_item("conn-1").await;
    let body = json!({
        "from": "nango",
        "type": "sync",
        "operation": "incremental",
        "connectionId": "conn-1",
        "providerConfigKey": INTEGRATION_ID,
        "success": true,
    })
    .to_string();

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response_json(&response), json!({"status": "ignored"}));
    assert_eq!(test.raw_item("conn-1").await, before);
}

#[tokio::test]
async fn unknown_auth_operation_is_ignored() {
    let test = webhook_api().await;
    let body = auth_body("deletion", true, "conn-1", Some("u_owner"));

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response_json(&response), json!({"status": "ignored"}));
    assert!(test.raw_item("conn-1").await.is_none());
}

#[tokio::test]
async fn other_integration_is_ignored() {
    let test = webhook_api().await;
    let mut body: Value =
        serde_json::from_str(&auth_body("creation", true, "conn-1", Some("u_1"))).expect("JSON");
    body["providerConfigKey"] = json!("gitlab");
    let body = body.to_string();

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response_json(&response), json!({"status": "ignored"}));
    assert!(test.raw_item("conn-1").await.is_none());
}

#[tokio::test]
async fn creation_without_owner_is_ignored() {
    let test = webhook_api().await;
    let body = auth_body("creation", true, "conn-1", None);

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response_json(&response), json!({"status": "ignored"}));
    assert!(test.raw_item("conn-1").await.is_none());
}

#[tokio::test]
async fn failed_creation_is_ignored() {
    let test = webhook_api().await;
    let body = auth_body("creation", false, "conn-1", Some("u_1"));

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(test.raw_item("conn-1").await.is_none());
}

// ------------------------------------------------------------- rejected

/// Asserts a 401 `invalid_signature` response.
fn assert_invalid_signature(response: &Response<Body>) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response_json(response)["error"]["code"],
        "invalid_signature"
    );
}

#[tokio::test]
async fn forged_signature_rejected() {
    let test = webhook_api().await;
    let body = auth_body("creation", true, "conn-1", Some("u_attacker"));
    let forged = signature("not-the-webhook-secret", body.as_bytes());

    let response = test.deliver(&event_with(&body, Some(&forged))).await;

    assert_invalid_signature(&response);
    assert!(test.raw_item("conn-1").await.is_none());
}

#[tokio::test]
async fn missing_signature_rejected() {
    let test = webhook_api().await;
    let body = auth_body("creation", true, "conn-1", Some("u_attacker"));

    let response = test.deliver(&event_with(&body, None)).await;

    assert_invalid_signature(&response);
    assert!(test.raw_item("conn-1").await.is_none());
}

#[tokio::test]
async fn legacy_signature_header_rejected() {
    let test = webhook_api().await;
    let body = auth_body("creation", true, "conn-1", Some("u_attacker"));
    let mut event = event_with(&body, None);
    // The legacy header carries a plain SHA-256 hash, not an HMAC, so the
    // handler never reads it, whatever its value.
    let legacy = hex::encode(sha2::Sha256::digest(
        format!("{WEBHOOK_KEY}{body}").as_bytes(),
    ));
    event["headers"]["x-nango-signature"] = json!(legacy);

    let response = test.deliver(&event).await;

    assert_invalid_signature(&response);
    assert!(test.raw_item("conn-1").await.is_none());
}

#[tokio::test]
async fn malformed_signature_rejected() {
    let test = webhook_api().await;
    let body = auth_body("creation", true, "conn-1", Some("u_attacker"));
    let valid = signature(WEBHOOK_KEY, body.as_bytes());

    for header in [
        format!("sha256={valid}"),
        valid[..63].to_owned(),
        format!("{valid}00"),
        String::new(),
    ] {
        let response = test.deliver(&event_with(&body, Some(&header))).await;
        assert_invalid_signature(&response);
    }
    assert!(test.raw_item("conn-1").await.is_none());
}

#[tokio::test]
async fn modified_body_with_replayed_signature_rejected() {
    let test = webhook_api().await;
    let original = auth_body("override", true, "conn-1", Some("user-123"));
    let original_signature = signature(WEBHOOK_KEY, original.as_bytes());
    test.deliver(&event_with(&original, Some(&original_signature)))
        .await;
    let before = test.raw_item("conn-1").await;
    // One byte changed: the owner becomes user-124.
    let modified = original.replace("user-123", "user-124");
    assert_eq!(modified.len(), original.len());

    let response = test
        .deliver(&event_with(&modified, Some(&original_signature)))
        .await;

    assert_invalid_signature(&response);
    assert!(before.is_some());
    assert_eq!(test.raw_item("conn-1").await, before);
}

#[tokio::test]
async fn malformed_json_with_valid_signature_is_400() {
    let test = webhook_api().await;
    let body = r#"{"type":"auth","operation":"creation","connectionId":"conn-1""#;

    let response = test.deliver(&signed_event(body)).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response_json(&response)["error"]["code"], "invalid_request");
    assert!(test.raw_item("conn-1").await.is_none());
}

#[tokio::test]
async fn missing_field_with_valid_signature_is_400() {
    let test = webhook_api().await;
    let mut body: Value =
        serde_json::from_str(&auth_body("creation", true, "conn-1", Some("u_1"))).expect("JSON");
    body.as_object_mut().expect("object").remove("connectionId");

    let response = test.deliver(&signed_event(&body.to_string())).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response_json(&response)["error"]["field"], "connectionId");
}

#[tokio::test]
async fn contract_test_vector_passes_handler() {
    // Known result: HMAC-SHA256 of `payload` keyed with `secret`.
    let vector = "b82fcb791acec57859b989b430a826488ce2e479fdf92326bd0a2e8375a42ba4";
    let secret = SecretString::from("secret");
    assert_eq!(webhook_signature::sign(&secret, b"payload"), vector);
    assert_eq!(signature("secret", b"payload"), vector);
    let test = webhook_api_with_key("secret").await;

    let accepted = test.deliver(&event_with("payload", Some(vector))).await;
    let rejected = test.deliver(&event_with("payloaD", Some(vector))).await;

    // The signature is accepted, so the handler goes on to reject `payload` as JSON.
    assert_eq!(accepted.status(), StatusCode::BAD_REQUEST);
    assert_invalid_signature(&rejected);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let test = webhook_api().await;
    let body = format!(
        r#"{{"type":"auth","padding":"{}"}}"#,
        "a".repeat(MAX_BODY_BYTES)
    );

    let response = test.deliver(&signed_event(&body)).await;

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn get_is_405() {
    let test = webhook_api().await;
    let mut event = event("nango-webhook.json");
    event["requestContext"]["http"]["method"] = json!("GET");
    event["routeKey"] = json!("GET /api/nango-webhook");

    let response = test.deliver(&event).await;

    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    assert!(test.raw_item(SAMPLE_CONNECTION).await.is_none());
}

#[tokio::test]
async fn unknown_path_is_404() {
    let test = webhook_api().await;
    let mut event = event("nango-webhook.json");
    event["rawPath"] = json!("/api/nango-webhooks");
    event["requestContext"]["http"]["path"] = json!("/api/nango-webhooks");

    let response = test.deliver(&event).await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn store_failure_is_503() {
    let (client, _) = create_access_table().await;
    let missing_table = DynamoDbAccessStore::new(client, "no-such-table", 30);
    let api = NangoWebhookApi::new(
        Arc::new(missing_table),
        SecretString::from(WEBHOOK_KEY),
        INTEGRATION_ID,
    );

    let response = api.handle(request(&event("nango-webhook.json"))).await;

    // 503 makes Nango retry the delivery.
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response_json(&response)["error"]["code"],
        "storage_unavailable"
    );
}
