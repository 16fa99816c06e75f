//! The worker against wiremock upstreams and moto DynamoDB.

use pr_digest::domain::{
    Analysis, AnalysisStatus, ConnectionId, FailureCode, RepositoryName, UserId,
};
use pr_digest::queue::AnalysisMessage;
use pr_digest::store::AnalysisStore;
use pr_digest::worker::{Deadline, NO_OPEN_PULL_REQUESTS};
use serde_json::{json, Value};
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    anthropic_message_body, failed_ids, github_fixture, nango_connection_body, recorded_response,
    sqs_event, worker_on, worker_recording,
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

fn github_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(github_fixture("open-prs-5.json")["body"].clone())
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

/// Returns the user message of the one Messages API request the server received.
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
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
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
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
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
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
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
    let response = worker
        .handle_batch(event, Deadline::none())
        .await
        .expect("batch handled");

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
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
        .await
        .expect("first delivery");
    let again = worker
        .handle_batch(sqs_event(&[("m1", &body, 2)]), Deadline::none())
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
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "20")
                .set_body_json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}})),
        )
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
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
        .await
        .expect("first delivery");
    let retrying = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    let second = worker
        .handle_batch(sqs_event(&[("m1", &body, 2)]), Deadline::none())
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
    assert_eq!(done.next_attempt_at, None);
    assert!(retrying.next_attempt_at.is_some());
}

#[tokio::test]
async fn worker_retries_short_wait_in_invocation() {
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

    let response = worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
        .await
        .expect("handled");

    let done = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert!(failed_ids(&response).is_empty());
    assert_eq!(done.status, AnalysisStatus::Succeeded);
    assert_eq!(done.attempts, 1);
}

#[tokio::test]
async fn concurrent_duplicates_call_model_once() {
    let server = MockServer::start().await;
    mount_nango(&server, connection_ok()).await;
    mount_github(&server, github_ok()).await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(model_ok().set_delay(std::time::Duration::from_millis(300)))
        .expect(1)
        .mount(&server)
        .await;
    let (worker, store, redelivery) = worker_recording(&server).await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let body = AnalysisMessage::new(&analysis.id).to_body();

    let (first, second) = tokio::join!(
        worker.handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none()),
        worker.handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none()),
    );
    let mut handed_back = failed_ids(&first.expect("first handled"));
    handed_back.extend(failed_ids(&second.expect("second handled")));
    let third = worker
        .handle_batch(sqs_event(&[("m1", &body, 2)]), Deadline::none())
        .await
        .expect("redelivery handled");

    let done = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(handed_back, vec!["m1".to_owned()]);
    assert_eq!(redelivery.delays().len(), 1);
    assert!(failed_ids(&third).is_empty());
    assert_eq!(done.status, AnalysisStatus::Succeeded);
    assert_eq!(done.attempts, 1);
}

#[tokio::test]
async fn worker_stops_before_deadline() {
    let server = MockServer::start().await;
    mount_nango(&server, connection_ok()).await;
    mount_github(&server, github_ok()).await;
    mount_model(&server, model_ok(), 0).await;
    let (worker, store, redelivery) = worker_recording(&server).await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let body = AnalysisMessage::new(&analysis.id).to_body();
    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    let soon_ms = soon
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_millis() as u64;

    let response = worker
        .handle_batch(
            sqs_event(&[("m1", &body, 1)]),
            Deadline::from_epoch_millis(soon_ms),
        )
        .await
        .expect("handled");

    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(failed_ids(&response), vec!["m1".to_owned()]);
    assert_eq!(stored.status, AnalysisStatus::Retrying);
    assert_eq!(
        stored.error.map(|e| e.code),
        Some(FailureCode::WorkerTimeout)
    );
    assert_eq!(
        redelivery.delays(),
        vec![std::time::Duration::from_secs(30)]
    );
}
