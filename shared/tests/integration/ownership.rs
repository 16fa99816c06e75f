//! Connection ownership, quotas and secret-free logs, through the API and worker.

use std::io::Write;
use std::sync::{Arc, Mutex};

use lambda_http::http::StatusCode;
use pr_digest::access::{AccessStore, ConnectionStatus};
use pr_digest::api::ConnectSessionApi;
use pr_digest::domain::{
    Analysis, AnalysisStatus, ConnectionId, FailureCode, RepositoryName, UserId,
};
use pr_digest::queue::{AnalysisMessage, SqsAnalysisQueue};
use pr_digest::store::{AnalysisStore, DynamoDbAnalysisStore};
use pr_digest::worker::{Deadline, Worker};
use serde_json::json;
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    analyses_api, anthropic_client, anthropic_message_body, create_access_store, create_queue,
    create_store, event, failed_ids, get_event, github_client, github_fixture, jwt_api_config,
    nango_client, nango_connection_body, queued_messages, recorded_response, request,
    response_json, seed_owner, sqs_event, worker_config, ANTHROPIC_KEY, GITHUB_TOKEN,
    INTEGRATION_ID, NANGO_KEY,
};

/// The signing key of the sample webhook in `events/nango-webhook.json`.
const WEBHOOK_KEY: &str = "test-webhook-secret";

struct Setup {
    api: pr_digest::api::AnalysesApi,
    access: Arc<pr_digest::access::DynamoDbAccessStore>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    nango: MockServer,
}

async fn setup(max_analyses_per_hour: u32) -> Setup {
    let (store, _, _) = create_store().await;
    let (sqs, queue_url) = create_queue().await;
    let access = create_access_store().await;
    let nango = MockServer::start().await;
    let queue = Arc::new(SqsAnalysisQueue::new(sqs.clone(), &queue_url));
    let api = analyses_api(
        Arc::new(store),
        queue,
        access.clone(),
        &nango,
        jwt_api_config(),
        max_analyses_per_hour,
    );
    Setup {
        api,
        access,
        sqs,
        queue_url,
        nango,
    }
}

fn analyze_as(subject: &str, connection_id: &str) -> lambda_http::Request {
    let mut event = event("analyze-prs.json");
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(subject);
    event["body"] =
        json!(json!({"connectionId": connection_id, "repo": "octo-org/hello-world"}).to_string());
    request(&event)
}

async fn mount_connection(nango: &MockServer, connection_id: &str, owner: &str, calls: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/connections/{connection_id}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(nango_connection_body(connection_id, owner)),
        )
        .expect(calls)
        .mount(nango)
        .await;
}

#[tokio::test]
async fn owner_checked_with_nango_once() {
    let test = setup(30).await;
    mount_connection(&test.nango, "conn-a", "user-a", 1).await;

    let first = test.api.handle(analyze_as("user-a", "conn-a")).await;
    let second = test.api.handle(analyze_as("user-a", "conn-a")).await;

    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    let record = test
        .access
        .get_connection(
            INTEGRATION_ID,
            &ConnectionId::parse("conn-a").expect("valid"),
        )
        .await
        .expect("read");
    assert_eq!(
        record.map(|r| r.owner.to_string()),
        Some("user-a".to_owned())
    );
    assert_eq!(queued_messages(&test.sqs, &test.queue_url).await.len(), 2);
}

#[tokio::test]
async fn other_users_connection_is_not_found() {
    let test = setup(30).await;
    mount_connection(&test.nango, "conn-a", "user-a", 1).await;
    seed_owner(&test.access, "conn-cached", "user-a").await;

    let from_nango = test.api.handle(analyze_as("user-b", "conn-a")).await;
    let from_cache = test.api.handle(analyze_as("user-b", "conn-cached")).await;

    assert_eq!(from_nango.status(), StatusCode::NOT_FOUND);
    assert_eq!(from_cache.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response_json(&from_nango)["error"]["code"],
        "connection_not_found"
    );
    assert_eq!(response_json(&from_nango)["error"]["field"], "connectionId");
    assert_eq!(response_json(&from_nango), response_json(&from_cache));
    assert!(queued_messages(&test.sqs, &test.queue_url).await.is_empty());
}

#[tokio::test]
async fn missing_connection_is_not_found() {
    let test = setup(30).await;
    Mock::given(path("/connections/conn-gone"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"code": "not_found", "message": "No connection"}})),
        )
        .expect(1)
        .mount(&test.nango)
        .await;
    let mut untagged = nango_connection_body("conn-untagged", "x");
    untagged["tags"] = json!({});
    Mock::given(path("/connections/conn-untagged"))
        .respond_with(ResponseTemplate::new(200).set_body_json(untagged))
        .expect(1)
        .mount(&test.nango)
        .await;

    let missing = test.api.handle(analyze_as("user-a", "conn-gone")).await;
    let unowned = test.api.handle(analyze_as("user-a", "conn-untagged")).await;

    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response_json(&missing)["error"]["code"],
        "connection_not_found"
    );
    assert_eq!(unowned.status(), StatusCode::NOT_FOUND);
    assert!(queued_messages(&test.sqs, &test.queue_url).await.is_empty());
}

#[tokio::test]
async fn legacy_end_user_owns_connection() {
    let test = setup(30).await;
    let mut legacy = nango_connection_body("conn-old", "x");
    legacy["tags"] = json!({});
    legacy["end_user"] = json!({"id": "user-a", "email": null, "display_name": null});
    Mock::given(path("/connections/conn-old"))
        .respond_with(ResponseTemplate::new(200).set_body_json(legacy))
        .mount(&test.nango)
        .await;

    let response = test.api.handle(analyze_as("user-a", "conn-old")).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn reconnect_required_answers_409() {
    let test = setup(30).await;
    seed_owner(&test.access, "conn-a", "user-a").await;
    let connection_id = ConnectionId::parse("conn-a").expect("valid");
    let marked = test
        .access
        .mark_reconnect_required(INTEGRATION_ID, &connection_id, OffsetDateTime::now_utc())
        .await
        .expect("marked");

    let response = test.api.handle(analyze_as("user-a", "conn-a")).await;

    assert!(marked);
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        response_json(&response)["error"]["code"],
        "reconnect_required"
    );
    assert_eq!(response_json(&response)["error"]["field"], "connectionId");
    let record = test
        .access
        .get_connection(INTEGRATION_ID, &connection_id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(record.status, ConnectionStatus::ReconnectRequired);
    assert!(queued_messages(&test.sqs, &test.queue_url).await.is_empty());
}

#[tokio::test]
async fn nango_outage_answers_503() {
    let test = setup(30).await;
    Mock::given(path("/connections/conn-a"))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_json(json!({"error": {"code": "server_error", "message": "down"}})),
        )
        .mount(&test.nango)
        .await;

    let response = test.api.handle(analyze_as("user-a", "conn-a")).await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response_json(&response)["error"]["code"],
        "nango_unavailable"
    );
}

#[tokio::test]
async fn hourly_quota_answers_429() {
    let test = setup(2).await;
    seed_owner(&test.access, "conn-a", "user-a").await;
    seed_owner(&test.access, "conn-b", "user-b").await;

    let first = test.api.handle(analyze_as("user-a", "conn-a")).await;
    let second = test.api.handle(analyze_as("user-a", "conn-a")).await;
    let third = test.api.handle(analyze_as("user-a", "conn-a")).await;
    let other_user = test.api.handle(analyze_as("user-b", "conn-b")).await;

    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response_json(&third)["error"]["code"], "too_many_requests");
    let retry_after: u64 = third.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(other_user.status(), StatusCode::ACCEPTED);
    assert_eq!(queued_messages(&test.sqs, &test.queue_url).await.len(), 3);
}

#[tokio::test]
async fn worker_rejects_reassigned_connection() {
    let server = MockServer::start().await;
    mount_connection(&server, "conn-a", "user-b", 1).await;
    Mock::given(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let (store, _, _) = create_store().await;
    let store = Arc::new(store);
    let worker = Worker::new(
        store.clone(),
        std::sync::Arc::new(crate::helpers::RecordedRedelivery::default()),
        nango_client(&server),
        github_client(&server, 200),
        anthropic_client(&server),
        worker_config(),
    );
    let analysis = Analysis::new(
        UserId::parse("user-a").expect("valid"),
        RepositoryName::parse("octo-org/hello").expect("valid"),
        ConnectionId::parse("conn-a").expect("valid"),
        OffsetDateTime::now_utc(),
    );
    store.create(&analysis).await.expect("created");

    let body = AnalysisMessage::new(&analysis.id).to_body();
    let response = worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
        .await
        .expect("batch handled");

    assert!(failed_ids(&response).is_empty());
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.status, AnalysisStatus::Failed);
    assert_eq!(
        stored.error.map(|e| e.code),
        Some(FailureCode::ConnectionNotFound)
    );
    let github_calls = server
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .filter(|r| r.url.path().contains("/pulls"))
        .count();
    assert_eq!(github_calls, 0);
}

/// A `tracing` writer that keeps every line in memory.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("log buffer poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn logs_contain_no_secrets() {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // The test runs on a current-thread runtime, so every task logs through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let session_token =
        "nango_connect_session_feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"data": {
            "token": session_token, "connect_link": "https://connect.nango.dev", "expires_at": "2026-12-04T21:30:00.000Z"
        }})))
        .mount(&server)
        .await;
    // The webhook records the owner, so only the worker requests the connection from Nango.
    mount_connection(&server, "conn-user-123", "user-123", 1).await;
    Mock::given(path("/repos/octo-org/hello-world/pulls"))
        .respond_with(recorded_response(
            &github_fixture("open-prs-11.json"),
            &server.uri(),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(anthropic_message_body(&["digest"], "end_turn")),
        )
        .mount(&server)
        .await;

    let (store, _, _) = create_store().await;
    let (sqs, queue_url) = create_queue().await;
    let access = create_access_store().await;
    let access_for_webhook = access.clone();
    let store: Arc<DynamoDbAnalysisStore> = Arc::new(store);
    let queue = Arc::new(SqsAnalysisQueue::new(sqs.clone(), &queue_url));
    let api = analyses_api(store.clone(), queue, access, &server, jwt_api_config(), 30);
    let sessions = ConnectSessionApi::new(nango_client(&server), jwt_api_config());
    let worker = Worker::new(
        store.clone(),
        std::sync::Arc::new(crate::helpers::RecordedRedelivery::default()),
        nango_client(&server),
        github_client(&server, 200),
        anthropic_client(&server),
        worker_config(),
    );

    let webhooks = pr_digest::api::NangoWebhookApi::new(
        access_for_webhook,
        secrecy::SecretString::from(WEBHOOK_KEY),
        INTEGRATION_ID,
    );
    let delivery = webhooks.handle(request(&event("nango-webhook.json"))).await;
    let session = sessions.handle(request(&event("nango-session.json"))).await;
    let accepted = api.handle(request(&event("analyze-prs.json"))).await;
    let id = response_json(&accepted)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let body =
        AnalysisMessage::new(&pr_digest::domain::AnalysisId::parse(&id).expect("valid")).to_body();
    worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
        .await
        .expect("batch handled");
    let status = api.handle(request(&get_event(&id))).await;

    assert_eq!(delivery.status(), StatusCode::OK);
    assert_eq!(session.status(), StatusCode::CREATED);
    assert_eq!(response_json(&status)["status"], "succeeded");
    let captured = String::from_utf8(logs.0.lock().expect("buffer").clone()).expect("UTF-8 logs");
    assert!(
        captured.contains(&id),
        "the capture must include the run's log lines"
    );
    let signature = event("nango-webhook.json")["headers"]["x-nango-hmac-sha256"]
        .as_str()
        .expect("signed")
        .to_owned();
    for secret in [
        NANGO_KEY,
        ANTHROPIC_KEY,
        GITHUB_TOKEN,
        session_token,
        WEBHOOK_KEY,
        signature.as_str(),
    ] {
        assert!(!captured.contains(secret), "a secret appears in the logs");
    }
}
