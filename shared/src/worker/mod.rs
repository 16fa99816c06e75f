//! The worker: turns a queued analysis into a stored summary.
//!
//! Each SQS record is handled on its own, so one bad record never fails its
//! neighbours. An attempt first claims its analysis with a lease, so a
//! duplicate delivery cannot run a second attempt at the same time. Short
//! upstream waits are served within the invocation; a longer one postpones
//! the message (`ChangeMessageVisibility`), lists it in `batchItemFailures`
//! and leaves the analysis `retrying`. After `MAX_ATTEMPTS` deliveries a
//! transient failure becomes final, so no analysis waits forever.

mod failure;
mod pipeline;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::config::WorkerConfig;
use crate::domain::{AnalysisId, AnalysisResult};
use crate::queue::{AnalysisMessage, Redelivery};
use crate::store::{AnalysisStore, AttemptOutcome, StoreError};
use crate::upstream::anthropic::AnthropicClient;
use crate::upstream::github::GithubClient;
use crate::upstream::nango::NangoClient;

pub use failure::AttemptFailure;
pub use pipeline::NO_OPEN_PULL_REQUESTS;
pub use retry::{Deadline, RetryPolicy};

/// The SQS attribute that counts deliveries of a message, this one included.
const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";
/// Lease of an attempt when the invocation has no deadline.
const DEFAULT_LEASE: Duration = Duration::from_secs(5 * 60);
/// Time kept back from the deadline for the final write and the batch response.
const FINAL_WRITE_MARGIN: Duration = Duration::from_secs(3);

/// The outcome of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordOutcome {
    /// Delete the record: the analysis is finished, or the record is unusable.
    Acknowledge,
    /// Leave the record for another delivery.
    Retry,
    /// Leave the record because the store could not be reached.
    StoreUnavailable,
}

/// The whole batch failed because the store could not be reached for any record.
#[derive(Debug, thiserror::Error)]
#[error("the analysis store could not be reached for any of the {0} records")]
pub struct BatchError(usize);

/// The worker function's state, built once per cold start.
#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn AnalysisStore>,
    redelivery: Arc<dyn Redelivery>,
    nango: NangoClient,
    github: GithubClient,
    anthropic: AnthropicClient,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(
        store: Arc<dyn AnalysisStore>,
        redelivery: Arc<dyn Redelivery>,
        nango: NangoClient,
        github: GithubClient,
        anthropic: AnthropicClient,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            redelivery,
            nango,
            github,
            anthropic,
            config,
        }
    }

    /// Handles a batch; records not listed in the response are deleted by Lambda.
    pub async fn handle_batch(
        &self,
        event: SqsEvent,
        deadline: Deadline,
    ) -> Result<SqsBatchResponse, BatchError> {
        let records = event.records;
        let outcomes = futures::future::join_all(records.iter().map(|record| {
            let span = tracing::info_span!(
                "record",
                sqs_message_id = record.message_id.as_deref().unwrap_or("-")
            );
            self.process_record(record, deadline).instrument(span)
        }))
        .await;

        if !records.is_empty()
            && outcomes
                .iter()
                .all(|o| *o == RecordOutcome::StoreUnavailable)
        {
            return Err(BatchError(records.len()));
        }

        let mut response = SqsBatchResponse::default();
        for (record, outcome) in records.iter().zip(outcomes) {
            if outcome == RecordOutcome::Acknowledge {
                continue;
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
        Ok(response)
    }

    async fn process_record(&self, record: &SqsMessage, deadline: Deadline) -> RecordOutcome {
        let body = record.body.as_deref().unwrap_or("");
        let id = match AnalysisMessage::parse(body) {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(%error, "dropping an unreadable queue message");
                return RecordOutcome::Acknowledge;
            }
        };
        let span = tracing::info_span!("analysis", analysis_id = %id);
        self.attempt(record, id, deadline).instrument(span).await
    }

    async fn attempt(
        &self,
        record: &SqsMessage,
        id: AnalysisId,
        deadline: Deadline,
    ) -> RecordOutcome {
        let lease = deadline
            .remaining()
            .map_or(DEFAULT_LEASE, |left| left + FINAL_WRITE_MARGIN);
        let lease = time::Duration::try_from(lease).unwrap_or(time::Duration::minutes(5));
        let claim = match self
            .store
            .claim(&id, lease, OffsetDateTime::now_utc())
            .await
        {
            Ok(claim) => claim,
            Err(StoreError::NotFound(_)) => {
                tracing::error!("dropping a message for an analysis that does not exist");
                return RecordOutcome::Acknowledge;
            }
            Err(StoreError::AlreadyFinished(_)) => {
                tracing::info!("analysis already finished; acknowledging a repeated delivery");
                return RecordOutcome::Acknowledge;
            }
            Err(StoreError::Leased { until, .. }) => {
                let wait = (until - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                let wait = Duration::try_from(wait).unwrap_or_default() + Duration::from_secs(1);
                tracing::info!(
                    wait_s = wait.as_secs(),
                    "another attempt holds the analysis; postponing this delivery"
                );
                self.postpone(record, wait).await;
                return RecordOutcome::Retry;
            }
            Err(error) => {
                tracing::error!(%error, "claiming the analysis failed; the record will be delivered again");
                return RecordOutcome::StoreUnavailable;
            }
        };

        let delivery = receive_count(record);
        let analysis = &claim.analysis;
        tracing::info!(attempt = analysis.attempts, delivery, repo = %analysis.repository, "analysis started");

        let outcome = self.run(analysis, delivery, deadline).await;
        self.finish(record, &id, &claim.lease_token, outcome, delivery)
            .await
    }

    async fn finish(
        &self,
        record: &SqsMessage,
        id: &AnalysisId,
        lease_token: &str,
        outcome: Result<AnalysisResult, AttemptFailure>,
        delivery: u32,
    ) -> RecordOutcome {
        let now = OffsetDateTime::now_utc();
        let mut postpone_for = None;

        let write = match &outcome {
            Ok(result) => {
                tracing::info!(
                    pr_count = result.pr_count,
                    truncated = result.truncated,
                    "analysis succeeded"
                );
                self.store
                    .record_outcome(id, lease_token, AttemptOutcome::Succeeded(result), now)
                    .await
            }
            Err(failure) if failure.transient && delivery < self.config.max_attempts => {
                let wait = failure
                    .retry_after
                    .unwrap_or_else(|| self.config.retry.requeue_delay(delivery));
                let next_attempt_at =
                    now + time::Duration::try_from(wait).unwrap_or(time::Duration::ZERO);
                tracing::warn!(code = %failure.error.code, delivery, wait_s = wait.as_secs(), "attempt failed transiently; retrying later");
                postpone_for = Some(wait);
                let retrying = AttemptOutcome::Retrying {
                    error: &failure.error,
                    next_attempt_at,
                };
                self.store
                    .record_outcome(id, lease_token, retrying, now)
                    .await
            }
            Err(failure) => {
                tracing::warn!(code = %failure.error.code, delivery, transient = failure.transient, "analysis failed");
                self.store
                    .record_outcome(id, lease_token, AttemptOutcome::Failed(&failure.error), now)
                    .await
            }
        };

        match write {
            Ok(()) => match postpone_for {
                Some(wait) => {
                    self.postpone(record, wait).await;
                    RecordOutcome::Retry
                }
                None => RecordOutcome::Acknowledge,
            },
            Err(StoreError::AlreadyFinished(_) | StoreError::LeaseLost(_)) => {
                tracing::info!("another attempt took the analysis over; keeping its result");
                RecordOutcome::Acknowledge
            }
            Err(error) => {
                tracing::error!(%error, "storing the outcome failed; the record will be delivered again");
                RecordOutcome::Retry
            }
        }
    }

    /// Postpones the record's next delivery; without it, the queue's visibility timeout applies.
    async fn postpone(&self, record: &SqsMessage, wait: Duration) {
        let Some(receipt_handle) = record.receipt_handle.as_deref() else {
            tracing::warn!("record has no receipt handle; the queue's visibility timeout applies");
            return;
        };
        if let Err(error) = self.redelivery.postpone(receipt_handle, wait).await {
            tracing::warn!(%error, "postponing the redelivery failed; the queue's visibility timeout applies");
        }
    }
}

/// Reads `ApproximateReceiveCount`; a record without it counts as the first delivery.
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get(RECEIVE_COUNT_ATTRIBUTE)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}
