//! Soak: 200 analyses through the analyze handler, SQS and DynamoDB on moto,
//! and the worker, with upstreams that fail 20% of calls transiently and
//! respond slowly at random. Bounded to well under a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use pr_digest::domain::{AnalysisId, AnalysisStatus};
use pr_digest::queue::SqsAnalysisQueue;
use pr_digest::store::AnalysisStore;
use pr_digest::worker::{Deadline, Worker};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{
    analyses_api, anthropic_client, anthropic_message_body, create_access_store, create_store,
    event, github_client, github_fixture, jwt_api_config, nango_client, nango_connection_body,
    request, response_json, seed_owner, worker_config,
};

const ANALYSES: usize = 200;
const WORKERS: usize = 4;
const TIME_LIMIT: Duration = Duration::from_secs(45);

/// Responds like `healthy`, except that a fifth of the calls get a transient error, and all wait 0-40 ms.
struct Flaky<F> {
    healthy: F,
    transient_status: u16,
}

impl<F: Fn(&Request) -> ResponseTemplate + Send + Sync> Respond for Flaky<F> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let delay = Duration::from_millis(fastrand::u64(0..40));
        if fastrand::u8(0..5) == 0 {
            return ResponseTemplate::new(self.transient_status).set_delay(delay);
        }
        (self.healthy)(request).set_delay(delay)
    }
}

/// Counts the model's successful answers per repository named in the prompt.
#[derive(Default, Clone)]
struct ModelAnswers(Arc<Mutex<HashMap<String, usize>>>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_every_analysis_succeeds_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/connections/conn-user-123"))
        .respond_with(Flaky {
            healthy: |_: &Request| {
                ResponseTemplate::new(200)
                    .set_body_json(nango_connection_body("conn-user-123", "user-123"))
            },
            transient_status: 503,
        })
        .mount(&server)
        .await;
    let page = github_fixture("open-prs-5.json")["body"].clone();
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/soak-org/repo-\d+/pulls$"))
        .respond_with(Flaky {
            healthy: move |_: &Request| ResponseTemplate::new(200).set_body_json(page.clone()),
            transient_status: 502,
        })
        .mount(&server)
        .await;
    let answers = ModelAnswers::default();
    let counted = answers.clone();
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(Flaky {
            healthy: move |request: &Request| {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
                let repo = prompt
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("Repository: ")
                    .to_owned();
                *counted
                    .0
                    .lock()
                    .expect("not poisoned")
                    .entry(repo.clone())
                    .or_default() += 1;
                ResponseTemplate::new(200).set_body_json(anthropic_message_body(
                    &[&format!("digest of {repo}")],
                    "end_turn",
                ))
            },
            transient_status: 529,
        })
        .mount(&server)
        .await;

    let (store, _, _) = create_store().await;
    let store = Arc::new(store);
    let sdk = crate::helpers::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("soak-{}", uuid::Uuid::new_v4().simple()))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "5",
        )
        .send()
        .await
        .expect("queue created")
        .queue_url
        .expect("queue URL");
    let queue = Arc::new(SqsAnalysisQueue::new(sqs.clone(), &queue_url));
    let access = create_access_store().await;
    seed_owner(&access, "conn-user-123", "user-123").await;
    let api = analyses_api(
        store.clone(),
        queue.clone(),
        access,
        &server,
        jwt_api_config(),
        10_000,
    );
    let mut config = worker_config();
    config.retry.base_requeue_delay = Duration::from_secs(1);
    config.retry.max_requeue_delay = Duration::from_secs(2);
    let worker = Worker::new(
        store.clone(),
        queue,
        nango_client(&server),
        github_client(&server, 200),
        anthropic_client(&server),
        config,
    );
    let started = Instant::now();

    let mut ids = Vec::with_capacity(ANALYSES);
    for n in 0..ANALYSES {
        let mut post = event("analyze-prs.json");
        post["body"] = json!(
            json!({"connectionId": "conn-user-123", "repo": format!("soak-org/repo-{n}")})
                .to_string()
        );
        let accepted = api.handle(request(&post)).await;
        assert_eq!(accepted.status().as_u16(), 202);
        ids.push(
            AnalysisId::parse(response_json(&accepted)["id"].as_str().expect("id"))
                .expect("valid id"),
        );
    }

    let pollers = (0..WORKERS).map(|_| poll_until_empty(&worker, &sqs, &queue_url, started));
    futures::future::join_all(pollers).await;

    let mut unfinished = Vec::new();
    for id in &ids {
        let analysis = store.get(id).await.expect("read").expect("stored");
        if analysis.status != AnalysisStatus::Succeeded {
            unfinished.push((id.to_string(), analysis.status, analysis.error));
        }
    }
    assert!(
        unfinished.is_empty(),
        "{} analyses did not succeed: {unfinished:?}",
        unfinished.len()
    );
    let answers = answers.0.lock().expect("not poisoned").clone();
    assert_eq!(
        answers.len(),
        ANALYSES,
        "every repository got a model answer"
    );
    let repeated: Vec<_> = answers.iter().filter(|(_, count)| **count != 1).collect();
    assert!(
        repeated.is_empty(),
        "repositories answered more than once: {repeated:?}"
    );
    assert!(started.elapsed() < TIME_LIMIT + Duration::from_secs(5));
}

/// Receives and processes batches as Lambda's SQS integration does, until the queue stays empty.
async fn poll_until_empty(
    worker: &Worker,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    started: Instant,
) {
    let mut empty_polls = 0;
    while started.elapsed() < TIME_LIMIT && empty_polls < 4 {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            empty_polls += 1;
            continue;
        }
        empty_polls = 0;

        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect())
                    .unwrap_or_default();
                json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                       "attributes": attributes, "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
            })
            .collect();
        let event = serde_json::from_value(json!({"Records": records})).expect("valid SQS event");
        let response = worker
            .handle_batch(event, Deadline::none())
            .await
            .expect("batch handled");

        let kept: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !kept.contains(&m.message_id().unwrap_or_default()))
            .enumerate()
            .map(|(n, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .expect("valid entry")
            })
            .collect();
        if !entries.is_empty() {
            sqs.delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("delete");
        }
    }
}
