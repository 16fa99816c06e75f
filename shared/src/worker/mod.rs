//! The worker: turns a queued analysis into a stored summary.
//!
//! Each SQS record is handled on its own, so one bad record never fails its
//! neighbours. A transient failure leaves the record in `batchItemFailures`
//! (SQS delivers it again after its visibility timeout) and the analysis
//! `retrying`; every other outcome acknowledges the record.

mod failure;
mod pipeline;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::config::WorkerConfig;
use crate::queue::AnalysisMessage;
use crate::store::{AnalysisStore, StoreError};
use crate::upstream::anthropic::AnthropicClient;
use crate::upstream::github::GithubClient;
use crate::upstream::nango::NangoClient;

pub use failure::AttemptFailure;
pub use pipeline::NO_OPEN_PULL_REQUESTS;

/// The SQS attribute that counts deliveries of a message, this one included.
const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";

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
    nango: NangoClient,
    github: GithubClient,
    anthropic: AnthropicClient,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(
        store: Arc<dyn AnalysisStore>,
        nango: NangoClient,
        github: GithubClient,
        anthropic: AnthropicClient,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            nango,
            github,
            anthropic,
            config,
        }
    }

    /// Handles a batch; records not listed in the response are deleted by Lambda.
    pub async fn handle_batch(&self, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        let records = event.records;
        let outcomes = futures::future::join_all(records.iter().map(|record| {
            let span = tracing::info_span!(
                "record",
                sqs_message_id = record.message_id.as_deref().unwrap_or("-")
            );
            self.process_record(record).instrument(span)
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

    async fn process_record(&self, record: &SqsMessage) -> RecordOutcome {
        let body = record.body.as_deref().unwrap_or("");
        let id = match AnalysisMessage::parse(body) {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(%error, "dropping an unreadable queue message");
                return RecordOutcome::Acknowledge;
            }
        };
        let span = tracing::info_span!("analysis", analysis_id = %id);
        async {
            let analysis = match self.store.start_attempt(&id, OffsetDateTime::now_utc()).await {
                Ok(analysis) => analysis,
                Err(StoreError::NotFound(_)) => {
                    tracing::error!("dropping a message for an analysis that does not exist");
                    return RecordOutcome::Acknowledge;
                }
                Err(StoreError::AlreadyFinished(_)) => {
                    tracing::info!("analysis already finished; acknowledging a repeated delivery");
                    return RecordOutcome::Acknowledge;
                }
                Err(error) => {
                    tracing::error!(%error, "starting an attempt failed; the record will be delivered again");
                    return RecordOutcome::StoreUnavailable;
                }
            };
            let delivery = receive_count(record);
            tracing::info!(attempt = analysis.attempts, delivery, repo = %analysis.repository, "analysis started");

            let outcome = self.run(&analysis).await;
            self.record_outcome(&analysis.id, outcome, delivery).await
        }
        .instrument(span)
        .await
    }

    async fn record_outcome(
        &self,
        id: &crate::domain::AnalysisId,
        outcome: Result<crate::domain::AnalysisResult, AttemptFailure>,
        delivery: u32,
    ) -> RecordOutcome {
        let now = OffsetDateTime::now_utc();
        let (write, next) = match outcome {
            Ok(result) => {
                tracing::info!(
                    pr_count = result.pr_count,
                    truncated = result.truncated,
                    "analysis succeeded"
                );
                (
                    self.store.complete(id, &result, now).await,
                    RecordOutcome::Acknowledge,
                )
            }
            Err(failure) if failure.transient && delivery < self.config.max_attempts => {
                tracing::warn!(code = %failure.error.code, delivery, "attempt failed transiently; retrying");
                (
                    self.store.record_retry(id, &failure.error, now).await,
                    RecordOutcome::Retry,
                )
            }
            Err(failure) => {
                tracing::warn!(code = %failure.error.code, delivery, transient = failure.transient, "analysis failed");
                (
                    self.store.fail(id, &failure.error, now).await,
                    RecordOutcome::Acknowledge,
                )
            }
        };

        match write {
            Ok(()) => next,
            Err(StoreError::AlreadyFinished(_)) => {
                tracing::info!("analysis was finished by another delivery; keeping that result");
                RecordOutcome::Acknowledge
            }
            Err(error) => {
                tracing::error!(%error, "storing the outcome failed; the record will be delivered again");
                RecordOutcome::Retry
            }
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
