//! The whole pipeline in one process: analyze handler, SQS and DynamoDB on
//! moto, the worker, then the status endpoint; upstreams on wiremock.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::http::StatusCode;
use pr_digest::queue::SqsAnalysisQueue;
use pr_digest::worker::{Deadline, Worker};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    analyses_api, anthropic_client, anthropic_message_body, create_access_store, create_queue,
    create_store, event, failed_ids, get_event, github_client, github_fixture, jwt_api_config,
    nango_client, nango_connection_body, queued_messages, recorded_response, request,
    response_json, seed_owner, worker_config,
};

const SUMMARY: &str = "## Features\n- #1033 Add support for draft pull requests (dev-01)";

/// Posts one analysis for `repo`, runs the worker on what the queue holds, and returns the GET response.
async fn run_pipeline(server: &MockServer, repo: &str) -> Value {
    let (store, _, _) = create_store().await;
    let (sqs, queue_url) = create_queue().await;
    let store = Arc::new(store);
    let access = create_access_store().await;
    seed_owner(&access, "conn-user-123", "user-123").await;
    let api = analyses_api(
        store.clone(),
        Arc::new(SqsAnalysisQueue::new(sqs.clone(), &queue_url)),
        access,
        server,
        jwt_api_config(),
        30,
    );
    let worker = Worker::new(
        store,
        std::sync::Arc::new(crate::helpers::RecordedRedelivery::default()),
        nango_client(server),
        github_client(server, 200),
        anthropic_client(server),
        worker_config(),
    );

    let mut post = event("analyze-prs.json");
    post["body"] = json!(json!({"connectionId": "conn-user-123", "repo": repo}).to_string());
    let accepted = api.handle(request(&post)).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let id = response_json(&accepted)["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let messages = queued_messages(&sqs, &queue_url).await;
    assert_eq!(messages.len(), 1);
    let sqs_event = sqs_event_from(&messages, &queue_url);
    let batch = worker
        .handle_batch(sqs_event, Deadline::none())
        .await
        .expect("batch handled");
    assert!(failed_ids(&batch).is_empty());

    let get = get_event(&id);
    let answer = api.handle(request(&get)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    response_json(&answer)
}

/// Builds the event Lambda's SQS integration would deliver for received messages.
fn sqs_event_from(messages: &[aws_sdk_sqs::types::Message], queue_url: &str) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            let attributes: serde_json::Map<String, Value> = message
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect())
                .unwrap_or_default();
            json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{}", queue_url.rsplit('/').next().unwrap_or("")),
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("valid SQS event")
}

async fn mount_nango_and_model(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/connections/conn-user-123"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(nango_connection_body("conn-user-123", "user-123")),
        )
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(anthropic_message_body(&[SUMMARY], "end_turn")),
        )
        .expect(1)
        .mount(server)
        .await;
}

async fn prompt_sent(server: &MockServer) -> String {
    let requests = server.received_requests().await.expect("recording on");
    let model_request = requests
        .iter()
        .find(|r| r.url.path() == "/v1/messages")
        .expect("model called");
    let body: Value = serde_json::from_slice(&model_request.body).expect("JSON body");
    body["messages"][0]["content"]
        .as_str()
        .expect("text")
        .to_owned()
}

#[tokio::test]
async fn pipeline_summarises_eleven_recorded_pull_requests() {
    let server = MockServer::start().await;
    mount_nango_and_model(&server).await;
    let fixture = github_fixture("open-prs-11.json");
    Mock::given(path("/repos/dev-02/github3.py/pulls"))
        .respond_with(recorded_response(&fixture, &server.uri()))
        .expect(1)
        .mount(&server)
        .await;

    let analysis = run_pipeline(&server, "dev-02/github3.py").await;

    assert_eq!(analysis["status"], "succeeded");
    assert_eq!(analysis["summary"], SUMMARY);
    assert_eq!(analysis["prCount"], 11);
    assert_eq!(analysis["summarizedPrCount"], 11);
    assert_eq!(analysis["attempts"], 1);
    assert_eq!(analysis["model"], "claude-opus-4-6");
    assert_eq!(
        analysis["usage"],
        json!({"inputTokens": 2095, "outputTokens": 503})
    );
    assert!(analysis["error"].is_null());

    let prompt = prompt_sent(&server).await;
    for pull_request in fixture["body"].as_array().expect("list") {
        let number = pull_request["number"].as_u64().expect("number");
        let title = pull_request["title"].as_str().expect("title");
        assert!(
            prompt.contains(&format!("\"number\":{number},")),
            "#{number} missing"
        );
        let escaped_title = serde_json::to_string(title)
            .expect("JSON string")
            .replace('<', "\\u003c");
        assert!(
            prompt.contains(&escaped_title),
            "title of #{number} missing"
        );
    }
    let draft_number = fixture["body"]
        .as_array()
        .expect("list")
        .iter()
        .find(|pr| pr["draft"] == true)
        .expect("one draft")["number"]
        .clone();
    let draft_line = prompt
        .lines()
        .find(|line| line.contains(&format!("\"number\":{draft_number},")))
        .expect("draft line");
    assert!(draft_line.contains("\"draft\":true"));
    assert_eq!(prompt.matches("\"draft\":true").count(), 1);
}

#[tokio::test]
async fn pipeline_reads_three_linked_pages() {
    let server = MockServer::start().await;
    mount_nango_and_model(&server).await;
    let base = server.uri();
    let pages = [
        github_fixture("open-prs-11.json"),
        github_fixture("open-prs-5.json"),
        github_fixture("open-prs-3-after-redirect.json"),
    ];
    let next = |page: usize| {
        format!("<{base}/repositories/99/pulls?state=open&per_page=100&page={page}>; rel=\"next\", <{base}/repositories/99/pulls?state=open&per_page=100&page=3>; rel=\"last\"")
    };
    Mock::given(path("/repos/octo-org/many/pulls"))
        .respond_with(recorded_response(&pages[0], &base).insert_header("link", next(2).as_str()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/repositories/99/pulls"))
        .and(query_param("page", "2"))
        .respond_with(recorded_response(&pages[1], &base).insert_header("link", next(3).as_str()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/repositories/99/pulls"))
        .and(query_param("page", "3"))
        .respond_with(recorded_response(&pages[2], &base))
        .expect(1)
        .mount(&server)
        .await;

    let analysis = run_pipeline(&server, "octo-org/many").await;

    assert_eq!(analysis["status"], "succeeded");
    assert_eq!(analysis["prCount"], 19);
    assert_eq!(analysis["summarizedPrCount"], 19);
    let prompt = prompt_sent(&server).await;
    for page in &pages {
        for pull_request in page["body"].as_array().expect("list") {
            let number = pull_request["number"].as_u64().expect("number");
            assert!(
                prompt.contains(&format!("\"number\":{number},")),
                "#{number} missing"
            );
        }
    }
}
