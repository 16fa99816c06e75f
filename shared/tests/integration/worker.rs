//! The worker against wiremock upstreams and moto DynamoDB.

use pr_digest::domain::{
    Analysis, AnalysisStatus, ConnectionId, FailureCode, RepositoryName, UserId,
};
use pr_digest::queue::AnalysisMessage;
use pr_digest::store::AnalysisStore;
use pr_digest::worker::NO_OPEN_PULL_REQUESTS;
use serde_json::{json, Value};
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    anthropic_message_body, failed_ids, github_fixture, nango_connection_body, recorded_response,
    sqs_event, worker_on,
};

const REPO: &str = "dev-02/github3.py";
const CONNECTION: &str = "conn-1";

fn new_analysis() -> Analysis {
    Analysis::new(
        UserId::parse("user-123").expect("valid"),
        RepositoryName::parse(REPO).expect("valid"),
        ConnectionId::parse(CONNECTION).expect("valid"),
        OffsetDateTime::now_utc(),
    )
}

async fn mount_nango(server: &MockServer, template: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/connections/{CONNECTION}")))
        .respond_with(template)
        .mount(server)
        .await;
}

async fn mount_github(server: &MockServer, template: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/pulls")))
        .respond_with(template)
        .mount(server)
        .await;
}

async fn mount_model(server: &MockServer, template: ResponseTemplate, calls: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(template)
        .expect(calls)
        .mount(server)
        .await;
}

fn connection_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(nango_connection_body(CONNECTION, "user-123"))
}

fn model_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(anthropic_message_body(
        &["## Features\n- #1033 …"],
        "end_turn",
    ))
}

/// The user message of the one Messages API request the server received.
async fn prompt_sent(server: &MockServer) -> String {
    let requests = server.received_requests().await.expect("recording on");
    let model_request = requests
        .iter()
        .find(|r| r.url.path() == "/v1/messages")
        .expect("model called");
    let body: Value = serde_json::from_slice(&model_request.body).expect("JSON body");
    body["messages"][0]["content"]
        .as_str()
        .expect("text content")
        .to_owned()
}

#[tokio::test]
async fn worker_summarises_recorded_pull_requests() {
    let server = MockServer::start().await;
    mount_nango(&server, connection_ok()).await;
    mount_github(
        &server,
        recorded_response(&github_fixture("open-prs-11.json"), &server.uri()),
    )
    .await;
    mount_model(&server, model_ok(), 1).await;
    let (worker, store) = worker_on(&server).await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");

    let body = AnalysisMessage::new(&analysis.id).to_body();
    let response = worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]))
        .await
        .expect("batch handled");

    assert!(failed_ids(&response).is_empty());
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.status, AnalysisStatus::Succeeded);
    assert_eq!(stored.attempts, 1);
    let result = stored.result.expect("result");
    assert_eq!(result.pr_count, 11);
    assert_eq!(result.summarized_pr_count, 11);
    assert_eq!(result.model.as_deref(), Some("claude-opus-4-6"));
    assert_eq!(result.usage.output_tokens, 503);
    assert!(!result.truncated);

    let prompt = prompt_sent(&server).await;
    for number in [1033, 1008, 985, 969, 932, 927, 916, 905, 897, 896, 772] {
        assert!(
            prompt.contains(&format!("\"number\":{number},")),
            "#{number} missing from the prompt"
        );
    }
    assert_eq!(prompt.matches("\"draft\":true").count(), 1);
}

#[tokio::test]
async fn worker_skips_model_without_pull_requests() {
    let server = MockServer::start().await;
    mount_nango(&server, connection_ok()).await;
    mount_github(&server, ResponseTemplate::new(200).set_body_json(json!([]))).await;
    mount_model(&server, model_ok(), 0).await;
    let (worker, store) = worker_on(&server).await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");

    let body = AnalysisMessage::new(&analysis.id).to_body();
    let response = worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]))
        .await
        .expect("batch handled");

    assert!(failed_ids(&response).is_empty());
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.status, AnalysisStatus::Succeeded);
    let result = stored.result.expect("result");
    assert_eq!(result.summary, NO_OPEN_PULL_REQUESTS);
    assert_eq!(result.pr_count, 0);
    assert_eq!(result.model, None);
}

#[tokio::test]
async fn worker_marks_cut_off_summary_truncated() {
    let server = MockServer::start().await;
    mount_nango(&server, connection_ok()).await;
    mount_github(
        &server,
        recorded_response(&github_fixture("open-prs-5.json"), &server.uri()),
    )
    .await;
    mount_model(
        &server,
        ResponseTemplate::new(200).set_body_json(anthropic_message_body(
            &["## Themes\n- partial"],
            "max_tokens",
        )),
        1,
    )
    .await;
    let (worker, store) = worker_on(&server).await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");

    let body = AnalysisMessage::new(&analysis.id).to_body();
    worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]))
        .await
        .expect("batch handled");

    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.status, AnalysisStatus::Succeeded);
    let result = stored.result.expect("result");
    assert!(result.truncated);
    assert_eq!(result.summary, "## Themes\n- partial");
}

struct FailureCase {
    name: &'static str,
    nango: ResponseTemplate,
    github: ResponseTemplate,
    model: ResponseTemplate,
    model_calls: u64,
    receive_count: u32,
    status: AnalysisStatus,
    code: FailureCode,
}

fn github_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(github_fixture("open-prs-5.json")["body"].clone())
}

fn failure_cases() -> Vec<FailureCase> {
    let nango_error = |status: u16, code: &str, message: &str| {
        ResponseTemplate::new(status)
            .set_body_json(json!({"error": {"code": code, "message": message}}))
    };
    let model_error = |status: u16, kind: &str| {
        ResponseTemplate::new(status)
            .set_body_json(json!({"type": "error", "error": {"type": kind, "message": "details"}}))
    };
    let custom_credentials = {
        let mut body = nango_connection_body(CONNECTION, "user-123");
        body["credentials"] = json!({"type": "CUSTOM", "app": {}, "user": {}});
        ResponseTemplate::new(200).set_body_json(body)
    };
    use AnalysisStatus::{Failed, Retrying};
    vec![
        FailureCase {
            name: "nango 404",
            nango: nango_error(404, "not_found", "No connection"),
            github: github_ok(),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Failed,
            code: FailureCode::ConnectionNotFound,
        },
        FailureCase {
            name: "nango unknown integration",
            nango: nango_error(400, "unknown_provider_config", "Unknown"),
            github: github_ok(),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Failed,
            code: FailureCode::IntegrationUnknown,
        },
        FailureCase {
            name: "nango revoked",
            nango: nango_error(
                400,
                "invalid_credentials",
                "There was an error when trying to refresh the access token",
            ),
            github: github_ok(),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Failed,
            code: FailureCode::ReconnectRequired,
        },
        FailureCase {
            name: "nango refresh limit",
            nango: nango_error(
                424,
                "invalid_credentials",
                "The refresh limit has been reached",
            ),
            github: github_ok(),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Failed,
            code: FailureCode::ReconnectRequired,
        },
        FailureCase {
            name: "nango backing off",
            nango: nango_error(
                424,
                "invalid_credentials",
                "A recent refresh attempt failed. Backing off...",
            ),
            github: github_ok(),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Retrying,
            code: FailureCode::NangoUnavailable,
        },
        FailureCase {
            name: "nango 503",
            nango: nango_error(503, "server_error", "down"),
            github: github_ok(),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Retrying,
            code: FailureCode::NangoUnavailable,
        },
        FailureCase {
            name: "unsupported credentials",
            nango: custom_credentials,
            github: github_ok(),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Failed,
            code: FailureCode::UnsupportedCredentials,
        },
        FailureCase {
            name: "github 404",
            nango: connection_ok(),
            github: ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Failed,
            code: FailureCode::RepoNotFound,
        },
        FailureCase {
            name: "github 401",
            nango: connection_ok(),
            github: ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Failed,
            code: FailureCode::ReconnectRequired,
        },
        FailureCase {
            name: "github not accessible",
            nango: connection_ok(),
            github: ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Failed,
            code: FailureCode::RepoAccessDenied,
        },
        FailureCase {
            name: "github rate limit",
            nango: connection_ok(),
            github: ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1796418000")
                .set_body_json(json!({"message": "API rate limit exceeded"})),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Retrying,
            code: FailureCode::GithubRateLimited,
        },
        FailureCase {
            name: "github 500",
            nango: connection_ok(),
            github: ResponseTemplate::new(500),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Retrying,
            code: FailureCode::GithubUnavailable,
        },
        FailureCase {
            name: "github slow",
            nango: connection_ok(),
            github: github_ok().set_delay(std::time::Duration::from_secs(5)),
            model: model_ok(),
            model_calls: 0,
            receive_count: 1,
            status: Retrying,
            code: FailureCode::UpstreamTimeout,
        },
        FailureCase {
            name: "model overloaded",
            nango: connection_ok(),
            github: github_ok(),
            model: model_error(529, "overloaded_error"),
            model_calls: 1,
            receive_count: 1,
            status: Retrying,
            code: FailureCode::ModelUnavailable,
        },
        FailureCase {
            name: "model overloaded last attempt",
            nango: connection_ok(),
            github: github_ok(),
            model: model_error(529, "overloaded_error"),
            model_calls: 1,
            receive_count: 5,
            status: Failed,
            code: FailureCode::ModelUnavailable,
        },
        FailureCase {
            name: "model 429",
            nango: connection_ok(),
            github: github_ok(),
            model: model_error(429, "rate_limit_error").insert_header("retry-after", "3"),
            model_calls: 1,
            receive_count: 2,
            status: Retrying,
            code: FailureCode::ModelUnavailable,
        },
        FailureCase {
            name: "model bad request",
            nango: connection_ok(),
            github: github_ok(),
            model: model_error(400, "invalid_request_error"),
            model_calls: 1,
            receive_count: 1,
            status: Failed,
            code: FailureCode::ModelRequestRejected,
        },
        FailureCase {
            name: "model unknown",
            nango: connection_ok(),
            github: github_ok(),
            model: model_error(404, "not_found_error"),
            model_calls: 1,
            receive_count: 1,
            status: Failed,
            code: FailureCode::ModelRequestRejected,
        },
        FailureCase {
            name: "model empty",
            nango: connection_ok(),
            github: github_ok(),
            model: ResponseTemplate::new(200)
                .set_body_json(anthropic_message_body(&[], "end_turn")),
            model_calls: 1,
            receive_count: 1,
            status: Failed,
            code: FailureCode::ModelEmptyResponse,
        },
    ]
}

#[tokio::test]
async fn worker_sorts_failures() {
    for case in failure_cases() {
        let server = MockServer::start().await;
        mount_nango(&server, case.nango).await;
        mount_github(&server, case.github).await;
        mount_model(&server, case.model, case.model_calls).await;
        let (worker, store) = worker_on(&server).await;
        let analysis = new_analysis();
        store.create(&analysis).await.expect("created");

        let body = AnalysisMessage::new(&analysis.id).to_body();
        let response = worker
            .handle_batch(sqs_event(&[("m1", &body, case.receive_count)]))
            .await
            .expect("batch handled");

        let stored = store
            .get(&analysis.id)
            .await
            .expect("read")
            .expect("present");
        assert_eq!(stored.status, case.status, "{}", case.name);
        assert_eq!(
            stored.error.as_ref().map(|e| e.code),
            Some(case.code),
            "{}",
            case.name
        );
        assert!(
            stored.error.as_ref().is_some_and(|e| !e.message.is_empty()),
            "{}",
            case.name
        );
        let expected_failures: Vec<String> = if case.status == AnalysisStatus::Retrying {
            vec!["m1".into()]
        } else {
            vec![]
        };
        assert_eq!(failed_ids(&response), expected_failures, "{}", case.name);
        server.verify().await;
    }
}

#[tokio::test]
async fn worker_isolates_bad_records() {
    let server = MockServer::start().await;
    mount_nango(&server, connection_ok()).await;
    mount_github(&server, github_ok()).await;
    mount_model(&server, model_ok(), 1).await;
    let (worker, store) = worker_on(&server).await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let good = AnalysisMessage::new(&analysis.id).to_body();
    let missing = AnalysisMessage::new(&pr_digest::domain::AnalysisId::generate()).to_body();

    let event = sqs_event(&[
        ("bad", "not json", 1),
        ("good", &good, 1),
        ("missing", &missing, 1),
    ]);
    let response = worker.handle_batch(event).await.expect("batch handled");

    assert!(failed_ids(&response).is_empty());
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.status, AnalysisStatus::Succeeded);
}

#[tokio::test]
async fn worker_acknowledges_finished_duplicate() {
    let server = MockServer::start().await;
    mount_nango(&server, connection_ok()).await;
    mount_github(&server, github_ok()).await;
    mount_model(&server, model_ok(), 1).await;
    let (worker, store) = worker_on(&server).await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let body = AnalysisMessage::new(&analysis.id).to_body();

    worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]))
        .await
        .expect("first delivery");
    let again = worker
        .handle_batch(sqs_event(&[("m1", &body, 2)]))
        .await
        .expect("second delivery");

    assert!(failed_ids(&again).is_empty());
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.attempts, 1);
}

#[tokio::test]
async fn worker_retry_then_success() {
    let server = MockServer::start().await;
    mount_nango(&server, connection_ok()).await;
    mount_github(&server, github_ok()).await;
    Mock::given(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(529).set_body_json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_model(&server, model_ok(), 1).await;
    let (worker, store) = worker_on(&server).await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let body = AnalysisMessage::new(&analysis.id).to_body();

    let first = worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]))
        .await
        .expect("first delivery");
    let retrying = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    let second = worker
        .handle_batch(sqs_event(&[("m1", &body, 2)]))
        .await
        .expect("second delivery");
    let done = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert_eq!(failed_ids(&first), vec!["m1".to_owned()]);
    assert_eq!(retrying.status, AnalysisStatus::Retrying);
    assert!(failed_ids(&second).is_empty());
    assert_eq!(done.status, AnalysisStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.error, None);
}
