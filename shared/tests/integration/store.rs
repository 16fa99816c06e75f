//! DynamoDB store against moto server.

use aws_sdk_dynamodb::types::AttributeValue;
use pr_digest::domain::{
    Analysis, AnalysisError, AnalysisId, AnalysisResult, AnalysisStatus, ConnectionId, FailureCode,
    RepositoryName, TokenUsage, UserId,
};
use pr_digest::store::{AnalysisStore, AttemptOutcome, StoreError};
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

const LEASE: Duration = Duration::seconds(60);

#[tokio::test]
async fn claim_counts_attempts() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let now = OffsetDateTime::now_utc();

    let first = store
        .claim(&analysis.id, LEASE, now)
        .await
        .expect("claimed");
    let next_attempt_at = now + Duration::seconds(30);
    let error = failure(FailureCode::ModelUnavailable);
    let retrying = AttemptOutcome::Retrying {
        error: &error,
        next_attempt_at,
    };
    store
        .record_outcome(&analysis.id, &first.lease_token, retrying, now)
        .await
        .expect("retrying");
    let between = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    let second = store
        .claim(&analysis.id, LEASE, now)
        .await
        .expect("claimed again");

    assert_eq!(first.analysis.status, AnalysisStatus::Running);
    assert_eq!(first.analysis.attempts, 1);
    assert_eq!(between.status, AnalysisStatus::Retrying);
    assert_eq!(between.error, Some(failure(FailureCode::ModelUnavailable)));
    assert_eq!(
        between.next_attempt_at.map(|t| t.unix_timestamp()),
        Some(next_attempt_at.unix_timestamp())
    );
    assert_eq!(second.analysis.attempts, 2);
    assert_ne!(first.lease_token, second.lease_token);
}

#[tokio::test]
async fn claim_on_missing_is_not_found() {
    let (store, _, _) = create_store().await;

    let error = store
        .claim(&AnalysisId::generate(), LEASE, OffsetDateTime::now_utc())
        .await
        .expect_err("missing");

    assert!(matches!(error, StoreError::NotFound(_)));
}

#[tokio::test]
async fn claim_rejects_live_lease() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let now = OffsetDateTime::now_utc();
    store
        .claim(&analysis.id, LEASE, now)
        .await
        .expect("claimed");

    let error = store
        .claim(&analysis.id, LEASE, now)
        .await
        .expect_err("leased");
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert!(
        matches!(error, StoreError::Leased { until, .. } if until.unix_timestamp() == (now + LEASE).unix_timestamp())
    );
    assert_eq!(stored.attempts, 1);
}

#[tokio::test]
async fn expired_lease_is_taken_over() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let now = OffsetDateTime::now_utc();
    let crashed = store
        .claim(&analysis.id, LEASE, now)
        .await
        .expect("claimed");

    let later = now + LEASE + Duration::seconds(1);
    let takeover = store
        .claim(&analysis.id, LEASE, later)
        .await
        .expect("expired lease taken over");
    let late_write = store
        .record_outcome(
            &analysis.id,
            &crashed.lease_token,
            AttemptOutcome::Succeeded(&result()),
            later,
        )
        .await;
    store
        .record_outcome(
            &analysis.id,
            &takeover.lease_token,
            AttemptOutcome::Succeeded(&result()),
            later,
        )
        .await
        .expect("recorded");
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert!(matches!(late_write, Err(StoreError::LeaseLost(_))));
    assert_eq!(takeover.analysis.attempts, 2);
    assert_eq!(stored.status, AnalysisStatus::Succeeded);
    assert_eq!(stored.result, Some(result()));
    assert_eq!(stored.error, None);
}

#[tokio::test]
async fn finished_analysis_never_changes() {
    let (store, _, _) = create_store().await;
    let analysis = new_analysis();
    store.create(&analysis).await.expect("created");
    let now = OffsetDateTime::now_utc();
    let claim = store
        .claim(&analysis.id, LEASE, now)
        .await
        .expect("claimed");
    let not_found = failure(FailureCode::RepoNotFound);
    store
        .record_outcome(
            &analysis.id,
            &claim.lease_token,
            AttemptOutcome::Failed(&not_found),
            now,
        )
        .await
        .expect("failed");

    let later = now + LEASE + Duration::seconds(1);
    let complete = store
        .record_outcome(
            &analysis.id,
            &claim.lease_token,
            AttemptOutcome::Succeeded(&result()),
            now,
        )
        .await;
    let claim_again = store.claim(&analysis.id, LEASE, later).await;
    let fail_again = store
        .fail_unclaimed(&analysis.id, &failure(FailureCode::EnqueueFailed), now)
        .await;
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert!(matches!(complete, Err(StoreError::AlreadyFinished(_))));
    assert!(matches!(claim_again, Err(StoreError::AlreadyFinished(_))));
    assert!(matches!(fail_again, Err(StoreError::AlreadyFinished(_))));
    assert_eq!(stored.status, AnalysisStatus::Failed);
    assert_eq!(stored.error, Some(not_found));
    assert_eq!(stored.attempts, 1);
}

#[tokio::test]
async fn fail_unclaimed_marks_queued_analysis() {
    let (store, _, _) = create_store().await;
    let queued = new_analysis();
    let leased = new_analysis();
    store.create(&queued).await.expect("created");
    store.create(&leased).await.expect("created");
    store
        .claim(&leased.id, LEASE, OffsetDateTime::now_utc())
        .await
        .expect("claimed");

    store
        .fail_unclaimed(
            &queued.id,
            &failure(FailureCode::EnqueueFailed),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("failed");
    let refused = store
        .fail_unclaimed(
            &leased.id,
            &failure(FailureCode::EnqueueFailed),
            OffsetDateTime::now_utc(),
        )
        .await;
    let stored = store.get(&queued.id).await.expect("read").expect("present");

    assert_eq!(stored.status, AnalysisStatus::Failed);
    assert_eq!(stored.error, Some(failure(FailureCode::EnqueueFailed)));
    assert!(matches!(refused, Err(StoreError::Leased { .. })));
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
    let claim = store
        .claim(&analysis.id, LEASE, OffsetDateTime::now_utc())
        .await
        .expect("claimed");

    store
        .record_outcome(
            &analysis.id,
            &claim.lease_token,
            AttemptOutcome::Succeeded(&empty),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("completed");
    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");

    assert_eq!(stored.result, Some(empty));
    assert_eq!(stored.status, AnalysisStatus::Succeeded);
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
