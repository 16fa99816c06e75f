//! DynamoDB store against moto server.

use aws_sdk_dynamodb::types::AttributeValue;
use pr_digest::domain::{
    Analysis, AnalysisError, AnalysisId, AnalysisResult, AnalysisStatus, ConnectionId, FailureCode,
    RepositoryName, TokenUsage, UserId,
};
use pr_digest::store::{AnalysisStore, StoreError};
use time::{Duration, OffsetDateTime};

use crate::helpers::create_store;

fn new_analysis() -> Analysis {
    // DynamoDB stores timestamps at second precision in RFC 3339, so tests start on a whole second.
    let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp())
        .expect("valid time");
    Analysis::new(
        UserId::parse("user-123").expect("valid"),
        RepositoryName::parse("octo-org/hello").expect("valid"),
        ConnectionId::parse("conn-1").expect("valid"),
        now,
    )
}

fn result() -> AnalysisResult {
    AnalysisResult {
        summary: "## Fixes\n- #1 Fix it".into(),
        pr_count: 3,
        summarized_pr_count: 3,
        truncated: true,
        model: Some("claude-opus-4-6".into()),
        usage: TokenUsage {
            input_tokens: 100,
            output_tokens: 20,
        },
    }
}

fn failure(code: FailureCode) -> AnalysisError {
    AnalysisError {
        code,
        message: format!("{code} happened"),
    }
}

#[tokio::test]
async fn create_then_get_round_trips() {
    let (store, client, table) = create_store().await;
    let analysis = new_analysis();

    store.create(&analysis).await.expect("created");
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert_eq!(stored, analysis);
    let item = client
        .get_item()
        .table_name(&table)
        .key("id", AttributeValue::S(analysis.id.to_string()))
        .send()
        .await
        .expect("raw read")
        .item
        .expect("item");
    let expected_expiry = (analysis.created_at + Duration::days(30))
        .unix_timestamp()
        .to_string();
    assert_eq!(
        item.get("expiresAt"),
        Some(&AttributeValue::N(expected_expiry))
    );
    assert_eq!(
        item.get("status"),
        Some(&AttributeValue::S("queued".into()))
    );
}

#[tokio::test]
async fn create_rejects_duplicate_id() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");

    let error = store.create(&analysis).await.expect_err("duplicate");

    assert!(matches!(error, StoreError::AlreadyExists(_)));
}

#[tokio::test]
async fn get_missing_returns_none() {
    let (store, _, _) = create_store().await;

    let missing = store.get(&AnalysisId::generate()).await.expect("read");

    assert!(missing.is_none());
}

#[tokio::test]
async fn start_attempt_counts_attempts() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");

    let first = store
        .start_attempt(&analysis.id, OffsetDateTime::now_utc())
        .await
        .expect("started");
    let second = store
        .start_attempt(&analysis.id, OffsetDateTime::now_utc())
        .await
        .expect("started again");

    assert_eq!(first.status, AnalysisStatus::Running);
    assert_eq!(first.attempts, 1);
    assert_eq!(second.attempts, 2);
}

#[tokio::test]
async fn start_attempt_on_missing_is_not_found() {
    let (store, _, _) = create_store().await;

    let error = store
        .start_attempt(&AnalysisId::generate(), OffsetDateTime::now_utc())
        .await
        .expect_err("missing");

    assert!(matches!(error, StoreError::NotFound(_)));
}

#[tokio::test]
async fn retry_then_complete_stores_result() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    store
        .start_attempt(&analysis.id, OffsetDateTime::now_utc())
        .await
        .expect("started");

    store
        .record_retry(
            &analysis.id,
            &failure(FailureCode::ModelUnavailable),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("retrying");
    let retrying = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    store
        .complete(&analysis.id, &result(), OffsetDateTime::now_utc())
        .await
        .expect("completed");
    let done = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert_eq!(retrying.status, AnalysisStatus::Retrying);
    assert_eq!(retrying.error, Some(failure(FailureCode::ModelUnavailable)));
    assert_eq!(done.status, AnalysisStatus::Succeeded);
    assert_eq!(done.result, Some(result()));
    assert_eq!(done.error, None);
    assert_eq!(done.attempts, 1);
}

#[tokio::test]
async fn finished_analysis_never_changes() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    store
        .fail(
            &analysis.id,
            &failure(FailureCode::RepoNotFound),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("failed");

    let complete = store
        .complete(&analysis.id, &result(), OffsetDateTime::now_utc())
        .await;
    let fail_again = store
        .fail(
            &analysis.id,
            &failure(FailureCode::UpstreamTimeout),
            OffsetDateTime::now_utc(),
        )
        .await;
    let retry = store
        .record_retry(
            &analysis.id,
            &failure(FailureCode::UpstreamTimeout),
            OffsetDateTime::now_utc(),
        )
        .await;
    let start = store
        .start_attempt(&analysis.id, OffsetDateTime::now_utc())
        .await;
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert!(matches!(complete, Err(StoreError::AlreadyFinished(_))));
    assert!(matches!(fail_again, Err(StoreError::AlreadyFinished(_))));
    assert!(matches!(retry, Err(StoreError::AlreadyFinished(_))));
    assert!(matches!(start, Err(StoreError::AlreadyFinished(_))));
    assert_eq!(stored.status, AnalysisStatus::Failed);
    assert_eq!(stored.error, Some(failure(FailureCode::RepoNotFound)));
}

#[tokio::test]
async fn complete_without_model_reads_back() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let empty = AnalysisResult {
        model: None,
        truncated: false,
        pr_count: 0,
        summarized_pr_count: 0,
        usage: TokenUsage::default(),
        summary: "No open pull requests.".into(),
    };

    store
        .complete(&analysis.id, &empty, OffsetDateTime::now_utc())
        .await
        .expect("completed");
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert_eq!(stored.result, Some(empty));
}

#[tokio::test]
async fn missing_table_is_backend_error() {
    let (_, client, _) = create_store().await;
    let store = pr_digest::store::DynamoDbAnalysisStore::new(client, "no-such-table", 30);

    let error = store
        .get(&AnalysisId::generate())
        .await
        .expect_err("missing table");

    assert!(matches!(error, StoreError::Backend(_)));
}
