//! Access control data: who owns which Nango connection, and how many
//! analyses each user has requested in the current hour.

mod dynamodb;
mod ownership;
mod quota;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{ConnectionId, UserId};

pub use dynamodb::DynamoDbAccessStore;
pub use ownership::{ConnectionOwnership, OwnershipError};
pub use quota::AnalysisQuota;

/// Whether a connection's GitHub grant is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Active,
    /// Nango reported a failed token refresh: the user must connect GitHub again.
    ReconnectRequired,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReconnectRequired => "reconnect_required",
        }
    }
}

/// The verified owner of a Nango connection of one integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub connection_id: ConnectionId,
    pub integration_id: String,
    pub owner: UserId,
    pub status: ConnectionStatus,
}

/// The result of taking one analysis from a user's hourly quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    Allowed,
    /// The quota is used up until the hour ends, in this many seconds.
    Exceeded {
        retry_after_seconds: u64,
    },
}

/// The request an `Idempotency-Key` was first used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    pub analysis_id: String,
    /// The request's normalised fields, to tell a replay from a different request.
    pub fingerprint: String,
}

/// The result of reserving an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyReservation {
    /// The key is new: the request goes ahead under the given analysis id.
    Reserved,
    /// The key was used within its lifetime, for this request.
    Used(IdempotentRequest),
}

/// A failed access store operation.
#[derive(Debug, thiserror::Error)]
pub enum AccessStoreError {
    #[error("stored access record {key} is malformed: {reason}")]
    Malformed { key: String, reason: String },
    #[error("DynamoDB request failed: {0}")]
    Backend(String),
}

/// Persistence of connection owners and hourly quotas.
#[async_trait]
pub trait AccessStore: Send + Sync {
    async fn get_connection(
        &self,
        integration_id: &str,
        connection_id: &ConnectionId,
    ) -> Result<Option<ConnectionRecord>, AccessStoreError>;

    /// Stores or replaces a connection's owner and status.
    async fn put_connection(
        &self,
        record: &ConnectionRecord,
        now: OffsetDateTime,
    ) -> Result<(), AccessStoreError>;

    /// Marks a known connection `reconnect_required`; returns whether a record existed.
    async fn mark_reconnect_required(
        &self,
        integration_id: &str,
        connection_id: &ConnectionId,
        now: OffsetDateTime,
    ) -> Result<bool, AccessStoreError>;

    /// Reserves `key` of `user` for `request` for `lifetime`, unless an unexpired reservation exists.
    async fn reserve_idempotency_key(
        &self,
        user: &UserId,
        key: &str,
        request: &IdempotentRequest,
        lifetime: time::Duration,
        now: OffsetDateTime,
    ) -> Result<KeyReservation, AccessStoreError>;

    /// Deletes a reservation whose request was not accepted, so the key can be used again.
    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &str,
    ) -> Result<(), AccessStoreError>;

    /// Counts one new analysis for `user` in the current clock hour, unless `limit` is reached.
    async fn take_analysis_quota(
        &self,
        user: &UserId,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<QuotaDecision, AccessStoreError>;
}
