//! HTTP handlers fed the sample events from `events/`, on moto and wiremock.

use std::sync::Arc;

use lambda_http::http::StatusCode;
use pr_digest::api::{AnalysesApi, ConnectSessionApi};
use pr_digest::domain::{AnalysisId, AnalysisStatus, FailureCode};
use pr_digest::queue::{AnalysisMessage, SqsAnalysisQueue};
use pr_digest::store::{AnalysisStore, DynamoDbAnalysisStore};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    analyses_api, create_access_store, create_queue, create_store, dev_api_config, event,
    get_event, jwt_api_config, nango_client, queued_messages, request, response_json, seed_owner,
    NANGO_KEY,
};

struct TestApi {
    api: AnalysesApi,
    store: Arc<DynamoDbAnalysisStore>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// Nango, kept running for owner look-ups that miss the access store.
    _nango: MockServer,
}

/// Builds the analyze API with `conn-user-123`, the sample events' connection, owned by `user-123`.
async fn analyses_api_with_limit(max_analyses_per_hour: u32) -> TestApi {
    let (store, _, _) = create_store().await;
    let (sqs, queue_url) = create_queue().await;
    let store = Arc::new(store);
    let queue = Arc::new(SqsAnalysisQueue::new(sqs.clone(), &queue_url));
    let access = create_access_store().await;
    seed_owner(&access, "conn-user-123", "user-123").await;
    let nango = MockServer::start().await;
    let api = analyses_api(
        store.clone(),
        queue,
        access,
        &nango,
        jwt_api_config(),
        max_analyses_per_hour,
    );
    TestApi {
        api,
        store,
        sqs,
        queue_url,
        _nango: nango,
    }
}

async fn test_api() -> TestApi {
    analyses_api_with_limit(30).await
}

fn with_subject(mut event: Value, subject: &str) -> Value {
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(subject);
    event
}

#[tokio::test]
async fn analyze_accepts_and_queues() {
    let test = test_api().await;

    let response = test.api.handle(request(&event("analyze-prs.json"))).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body = response_json(&response);
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["statusUrl"], format!("/api/analyses/{id}"));
    assert_eq!(
        response.headers()["location"],
        format!("/api/analyses/{id}").as_str()
    );

    let analysis_id = AnalysisId::parse(&id).expect("valid id");
    let stored = test
        .store
        .get(&analysis_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.status, AnalysisStatus::Queued);
    assert_eq!(stored.owner.as_str(), "user-123");
    assert_eq!(stored.repository.to_string(), "octo-org/hello-world");
    assert_eq!(stored.connection_id.as_str(), "conn-user-123");

    let messages = queued_messages(&test.sqs, &test.queue_url).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        AnalysisMessage::parse(messages[0].body.as_deref().expect("body")).expect("parsable"),
        analysis_id
    );
}

#[tokio::test]
async fn analyze_decodes_base64_body() {
    let test = test_api().await;

    let response = test
        .api
        .handle(request(&event("analyze-prs-base64.json")))
        .await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(queued_messages(&test.sqs, &test.queue_url).await.len(), 1);
}

#[tokio::test]
async fn analyze_rejects_bad_input() {
    let cases = [
        ("analyze-prs-invalid-repo.json", 400, Some("repo")),
        (
            "analyze-prs-number-connection-id.json",
            400,
            Some("connectionId"),
        ),
        (
            "analyze-prs-empty-connection-id.json",
            400,
            Some("connectionId"),
        ),
        ("analyze-prs-malformed-json.json", 400, None),
        ("analyze-prs-wrong-content-type.json", 415, None),
        ("analyze-prs-unauthenticated.json", 401, None),
    ];
    let test = test_api().await;

    for (file, status, field) in cases {
        let response = test.api.handle(request(&event(file))).await;

        assert_eq!(response.status().as_u16(), status, "{file}");
        let body = response_json(&response);
        assert!(body["error"]["code"].is_string(), "{file}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{file}: {body}"
        );
        assert_eq!(body["error"]["field"].as_str(), field, "{file}: {body}");
    }
    assert!(queued_messages(&test.sqs, &test.queue_url).await.is_empty());
}

#[tokio::test]
async fn analyze_rejects_listed_repo_forms() {
    let test = test_api().await;
    let template = event("analyze-prs.json");

    for repo in [
        "octo-org",
        "octo-org/hello/../../user",
        "a/b?x=1",
        "../x",
        "",
    ] {
        let mut event = template.clone();
        event["body"] = json!(json!({"connectionId": "conn-1", "repo": repo}).to_string());

        let response = test.api.handle(request(&event)).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{repo}");
        assert_eq!(response_json(&response)["error"]["field"], "repo", "{repo}");
    }
    assert!(queued_messages(&test.sqs, &test.queue_url).await.is_empty());
}

#[tokio::test]
async fn analyze_rejects_user_id_in_body() {
    let test = test_api().await;
    let mut event = event("analyze-prs.json");
    event["body"] = json!(
        json!({"connectionId": "conn-1", "repo": "a/b", "userId": "someone-else"}).to_string()
    );

    let response = test.api.handle(request(&event)).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response_json(&response)["error"]["field"], "userId");
}

#[tokio::test]
async fn analyze_rejects_oversized_body() {
    let test = test_api().await;
    let mut event = event("analyze-prs.json");
    event["body"] = json!(json!({"connectionId": "c".repeat(20_000), "repo": "a/b"}).to_string());

    let response = test.api.handle(request(&event)).await;

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn analyze_marks_failed_when_queue_fails() {
    let (store, _, _) = create_store().await;
    let (sqs, queue_url) = create_queue().await;
    let store = Arc::new(store);
    let broken_queue = Arc::new(SqsAnalysisQueue::new(sqs, format!("{queue_url}-missing")));
    let access = create_access_store().await;
    seed_owner(&access, "conn-user-123", "user-123").await;
    let nango = MockServer::start().await;
    let api = analyses_api(
        store.clone(),
        broken_queue,
        access,
        &nango,
        jwt_api_config(),
        30,
    );

    let response = api.handle(request(&event("analyze-prs.json"))).await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response_json(&response);
    assert_eq!(body["error"]["code"], "enqueue_failed");
    let message = body["error"]["message"].as_str().expect("message");
    let id = message
        .split_whitespace()
        .nth(1)
        .and_then(AnalysisId::parse)
        .expect("message names the analysis");
    let stored = store.get(&id).await.expect("read").expect("stored");
    assert_eq!(stored.status, AnalysisStatus::Failed);
    assert_eq!(
        stored.error.map(|e| e.code),
        Some(FailureCode::EnqueueFailed)
    );
}

#[tokio::test]
async fn get_returns_owner_analysis() {
    let test = test_api().await;
    let accepted = test.api.handle(request(&event("analyze-prs.json"))).await;
    let id = response_json(&accepted)["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let response = test.api.handle(request(&get_event(&id))).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body = response_json(&response);
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["repo"], "octo-org/hello-world");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["attempts"], 0);
    assert!(body["createdAt"].is_string());
    assert!(body["updatedAt"].is_string());
    for field in [
        "summary",
        "model",
        "usage",
        "error",
        "prCount",
        "summarizedPrCount",
    ] {
        assert!(body[field].is_null(), "{field} should be null: {body}");
    }
    assert_eq!(body["truncated"], false);
}

#[tokio::test]
async fn get_hides_other_users_analysis() {
    let test = test_api().await;
    let accepted = test.api.handle(request(&event("analyze-prs.json"))).await;
    let id = response_json(&accepted)["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let other_user = test
        .api
        .handle(request(&with_subject(get_event(&id), "user-456")))
        .await;
    let unknown = test
        .api
        .handle(request(&get_event(&AnalysisId::generate().to_string())))
        .await;
    let malformed = test.api.handle(request(&get_event("not-a-uuid"))).await;

    assert_eq!(other_user.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(malformed.status(), StatusCode::NOT_FOUND);
    assert_eq!(response_json(&other_user), response_json(&unknown));
}

#[tokio::test]
async fn routing_answers_unknown_and_wrong_method() {
    let test = test_api().await;

    let unknown = test.api.handle(request(&event("unknown-path.json"))).await;
    let wrong_method = test.api.handle(request(&event("wrong-method.json"))).await;

    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(response_json(&unknown)["error"]["code"], "not_found");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_eq!(
        response_json(&wrong_method)["error"]["code"],
        "method_not_allowed"
    );
    let message = response_json(&wrong_method)["error"]["message"].to_string();
    assert!(message.contains("DELETE is not allowed"), "{message}");
    assert!(message.contains("use POST"), "{message}");
}

#[tokio::test]
async fn preflight_allows_listed_origin_only() {
    let test = test_api().await;
    let allowed = event("preflight.json");
    let mut denied = allowed.clone();
    denied["headers"]["origin"] = json!("https://evil.example");

    let allowed_response = test.api.handle(request(&allowed)).await;
    let denied_response = test.api.handle(request(&denied)).await;

    assert_eq!(allowed_response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        allowed_response.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert!(allowed_response
        .headers()
        .contains_key("access-control-allow-methods"));
    assert_eq!(allowed_response.headers()["vary"], "Origin");
    assert_eq!(
        allowed_response.headers()["access-control-expose-headers"],
        "location"
    );
    assert_eq!(denied_response.status(), StatusCode::NO_CONTENT);
    assert!(!denied_response
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn connect_session_returns_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"data": {
            "token": "nango_connect_session_abc",
            "connect_link": "https://connect.nango.dev?session_token=nango_connect_session_abc",
            "expires_at": "2026-12-04T21:30:00.000Z"
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let api = ConnectSessionApi::new(nango_client(&server), jwt_api_config());

    let response = api.handle(request(&event("nango-session.json"))).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let body = response_json(&response);
    assert_eq!(
        body,
        json!({"token": "nango_connect_session_abc", "expiresAt": "2026-12-04T21:30:00Z"})
    );
}

#[tokio::test]
async fn connect_session_hides_nango_failure() {
    let server = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"code": "server_error", "message": "internal detail 1234"}}),
        ))
        .mount(&server)
        .await;
    let api = ConnectSessionApi::new(nango_client(&server), jwt_api_config());

    let response = api.handle(request(&event("nango-session.json"))).await;

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let text = response_json(&response).to_string();
    assert!(text.contains("upstream_failed"), "{text}");
    assert!(!text.contains("internal detail 1234"), "{text}");
    assert!(!text.contains(NANGO_KEY), "{text}");
}

#[tokio::test]
async fn connect_session_times_out_as_502() {
    let server = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(201).set_delay(std::time::Duration::from_secs(5)))
        .mount(&server)
        .await;
    let api = ConnectSessionApi::new(nango_client(&server), jwt_api_config());

    let response = api.handle(request(&event("nango-session.json"))).await;

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn connect_session_requires_identity() {
    let server = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&server)
        .await;
    let api = ConnectSessionApi::new(nango_client(&server), jwt_api_config());

    let response = api
        .handle(request(&event("nango-session-unauthenticated.json")))
        .await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response_json(&response)["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn dev_mode_reads_user_header() {
    let (store, _, _) = create_store().await;
    let (sqs, queue_url) = create_queue().await;
    let store = Arc::new(store);
    let queue = Arc::new(SqsAnalysisQueue::new(sqs, &queue_url));
    let access = create_access_store().await;
    seed_owner(&access, "conn-user-123", "dev-user").await;
    let nango = MockServer::start().await;
    let dev_api = analyses_api(
        store.clone(),
        queue.clone(),
        access.clone(),
        &nango,
        dev_api_config(),
        30,
    );
    let jwt_api = analyses_api(store, queue, access, &nango, jwt_api_config(), 30);
    let mut with_header = event("analyze-prs-unauthenticated.json");
    with_header["headers"]["x-user-id"] = json!("dev-user");
    let mut without_header = with_header.clone();
    without_header["headers"]
        .as_object_mut()
        .expect("headers")
        .remove("x-user-id");

    let dev_accepted = dev_api.handle(request(&with_header)).await;
    let dev_rejected = dev_api.handle(request(&without_header)).await;
    let jwt_rejected = jwt_api.handle(request(&with_header)).await;

    assert_eq!(dev_accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(dev_rejected.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(jwt_rejected.status(), StatusCode::UNAUTHORIZED);
}

fn with_idempotency_key(mut event: Value, key: &str, repo: &str) -> lambda_http::Request {
    event["headers"]["idempotency-key"] = json!(key);
    event["body"] = json!(json!({"connectionId": "conn-user-123", "repo": repo}).to_string());
    request(&event)
}

#[tokio::test]
async fn idempotency_key_replays_analysis() {
    let test = test_api().await;
    let template = event("analyze-prs.json");

    let first = test
        .api
        .handle(with_idempotency_key(
            template.clone(),
            "key-1",
            "octo-org/hello-world",
        ))
        .await;
    let repeated = test
        .api
        .handle(with_idempotency_key(
            template.clone(),
            "key-1",
            "octo-org/hello-world",
        ))
        .await;
    let different = test
        .api
        .handle(with_idempotency_key(
            template.clone(),
            "key-1",
            "octo-org/other",
        ))
        .await;
    let other_user = test
        .api
        .handle(with_idempotency_key(
            with_subject(template.clone(), "user-456"),
            "key-1",
            "octo-org/hello-world",
        ))
        .await;
    let new_key = test
        .api
        .handle(with_idempotency_key(
            template,
            "key-2",
            "octo-org/hello-world",
        ))
        .await;

    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(repeated.status(), StatusCode::OK);
    assert_eq!(response_json(&repeated)["id"], response_json(&first)["id"]);
    assert_eq!(repeated.headers()["location"], first.headers()["location"]);
    assert_eq!(different.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response_json(&different)["error"]["code"],
        "idempotency_key_reused"
    );
    // user-456 does not own conn-user-123, so its request is refused but does not see user-123's key.
    assert_eq!(other_user.status(), StatusCode::NOT_FOUND);
    assert_eq!(new_key.status(), StatusCode::ACCEPTED);
    assert_ne!(response_json(&new_key)["id"], response_json(&first)["id"]);
    assert_eq!(queued_messages(&test.sqs, &test.queue_url).await.len(), 2);
}

#[tokio::test]
async fn idempotency_key_released_after_rejection() {
    let test = analyses_api_with_limit(1).await;
    let template = event("analyze-prs.json");
    test.api.handle(request(&template)).await;

    let limited = test
        .api
        .handle(with_idempotency_key(
            template.clone(),
            "key-1",
            "octo-org/hello-world",
        ))
        .await;
    let invalid_key = test
        .api
        .handle(with_idempotency_key(
            template,
            "key with spaces",
            "octo-org/hello-world",
        ))
        .await;

    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(invalid_key.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response_json(&invalid_key)["error"]["field"],
        "Idempotency-Key"
    );
    let access_key_reused = test
        .api
        .handle(with_idempotency_key(
            event("analyze-prs.json"),
            "key-1",
            "octo-org/other",
        ))
        .await;
    assert_eq!(
        access_key_reused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a released key is free for another request"
    );
}
