//! Analysis storage: the [`AnalysisStore`] port and its DynamoDB adapter.
//!
//! A worker attempt first claims an analysis with a lease, and only the
//! holder of the current lease may record the attempt's outcome. So a
//! duplicate delivery cannot run a second attempt while the first is alive.
//! An attempt whose lease has expired (its Lambda crashed or timed out)
//! cannot overwrite the work of the attempt that took over.

mod dynamodb;
mod item;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

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
    #[error("analysis {id} is leased by a running attempt until {until}")]
    Leased {
        id: AnalysisId,
        until: OffsetDateTime,
    },
    #[error("the lease on analysis {0} was taken over by another attempt")]
    LeaseLost(AnalysisId),
    #[error("stored analysis {id} is malformed: {reason}")]
    Malformed { id: String, reason: String },
    #[error("DynamoDB request failed: {0}")]
    Backend(String),
}

/// An analysis claimed by one worker attempt.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The analysis as updated by the claim: `running`, with the attempt counted.
    pub analysis: Analysis,
    /// The token that the attempt's outcome must present.
    pub lease_token: String,
}

/// The outcome an attempt records while it still holds its lease.
#[derive(Debug, Clone)]
pub enum AttemptOutcome<'a> {
    Succeeded(&'a AnalysisResult),
    Failed(&'a AnalysisError),
    /// Another attempt will follow, not before `next_attempt_at`.
    Retrying {
        error: &'a AnalysisError,
        next_attempt_at: OffsetDateTime,
    },
}

/// Persistence of analyses. No write changes an analysis that is already
/// `succeeded` or `failed`.
#[async_trait]
pub trait AnalysisStore: Send + Sync {
    /// Stores a new analysis; fails with [`StoreError::AlreadyExists`] on an id clash.
    async fn create(&self, analysis: &Analysis) -> Result<(), StoreError>;

    async fn get(&self, id: &AnalysisId) -> Result<Option<Analysis>, StoreError>;

    /// Claims an unfinished analysis that no live attempt holds: marks it
    /// `running`, counts the attempt and leases it for `lease`.
    async fn claim(
        &self,
        id: &AnalysisId,
        lease: Duration,
        now: OffsetDateTime,
    ) -> Result<Claim, StoreError>;

    /// Records an attempt's outcome and releases its lease; fails with
    /// [`StoreError::LeaseLost`] when another attempt holds the analysis now.
    async fn record_outcome(
        &self,
        id: &AnalysisId,
        lease_token: &str,
        outcome: AttemptOutcome<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Marks an analysis that no attempt has claimed `failed`, for example when it could not be queued.
    async fn fail_unclaimed(
        &self,
        id: &AnalysisId,
        error: &AnalysisError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}
