//! Analysis storage: the [`AnalysisStore`] port and its DynamoDB adapter.

mod dynamodb;
mod item;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{Analysis, AnalysisError, AnalysisId, AnalysisResult};

pub use dynamodb::DynamoDbAnalysisStore;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("analysis {0} not found")]
    NotFound(AnalysisId),
    #[error("analysis {0} already exists")]
    AlreadyExists(AnalysisId),
    #[error("analysis {0} is already finished and cannot change")]
    AlreadyFinished(AnalysisId),
    #[error("stored analysis {id} is malformed: {reason}")]
    Malformed { id: String, reason: String },
    #[error("DynamoDB request failed: {0}")]
    Backend(String),
}

/// Persistence of analyses. Writes that change the status never touch an
/// analysis that is already `succeeded` or `failed`.
#[async_trait]
pub trait AnalysisStore: Send + Sync {
    /// Stores a new analysis; fails with [`StoreError::AlreadyExists`] on an id clash.
    async fn create(&self, analysis: &Analysis) -> Result<(), StoreError>;

    async fn get(&self, id: &AnalysisId) -> Result<Option<Analysis>, StoreError>;

    /// Marks an unfinished analysis `running` and counts the attempt; returns it as updated.
    async fn start_attempt(
        &self,
        id: &AnalysisId,
        now: OffsetDateTime,
    ) -> Result<Analysis, StoreError>;

    /// Marks an unfinished analysis `retrying` with the error of the attempt that just ended.
    async fn record_retry(
        &self,
        id: &AnalysisId,
        error: &AnalysisError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Marks an unfinished analysis `succeeded` with its result.
    async fn complete(
        &self,
        id: &AnalysisId,
        result: &AnalysisResult,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Marks an unfinished analysis `failed` with its reason.
    async fn fail(
        &self,
        id: &AnalysisId,
        error: &AnalysisError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}
