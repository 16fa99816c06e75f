//! Connection ownership: a caller may use only a Nango connection whose tags
//! name them, so no user can have another user's GitHub read.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{AccessStore, AccessStoreError, ConnectionRecord, ConnectionStatus};
use crate::domain::{ConnectionId, UserId};
use crate::upstream::nango::{NangoClient, NangoError};

/// The reason a caller may not use a connection.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// The connection does not exist, or belongs to someone else: callers get the same response for both.
    #[error("connection not found for this caller")]
    NotFound,
    #[error("the connection's GitHub grant must be renewed")]
    ReconnectRequired,
    #[error("Nango could not be asked who owns the connection: {0}")]
    NangoUnavailable(String),
    #[error(transparent)]
    Store(#[from] AccessStoreError),
}

/// Checks connection owners against the access store, asking Nango only on a miss.
#[derive(Clone)]
pub struct ConnectionOwnership {
    store: Arc<dyn AccessStore>,
    nango: NangoClient,
}

impl ConnectionOwnership {
    pub fn new(store: Arc<dyn AccessStore>, nango: NangoClient) -> Self {
        Self { store, nango }
    }

    /// Succeeds when `caller` owns an active connection `connection_id` of the configured integration.
    pub async fn verify(
        &self,
        caller: &UserId,
        connection_id: &ConnectionId,
    ) -> Result<(), OwnershipError> {
        let integration_id = self.nango.integration_id();
        let record = match self
            .store
            .get_connection(integration_id, connection_id)
            .await?
        {
            Some(record) => record,
            None => self.record_from_nango(connection_id).await?,
        };

        if &record.owner != caller {
            tracing::warn!(caller = %caller, connection_id = %connection_id, "rejected a connection owned by another user");
            return Err(OwnershipError::NotFound);
        }
        match record.status {
            ConnectionStatus::Active => Ok(()),
            ConnectionStatus::ReconnectRequired => Err(OwnershipError::ReconnectRequired),
        }
    }

    /// Reads the owner from Nango's copy of the connection and remembers it.
    async fn record_from_nango(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<ConnectionRecord, OwnershipError> {
        let connection = match self.nango.get_connection(connection_id).await {
            Ok(connection) => connection,
            Err(error) if is_missing_or_unusable(&error) => {
                tracing::info!(
                    nango_status = error.status().map(|s| s.as_u16()),
                    nango_code = error.code().unwrap_or("-"),
                    "Nango has no usable connection with this id"
                );
                return Err(OwnershipError::NotFound);
            }
            Err(error) => {
                tracing::error!(%error, "asking Nango for a connection's owner failed");
                return Err(OwnershipError::NangoUnavailable(error.to_string()));
            }
        };

        let Some(owner) = connection
            .owner()
            .and_then(|owner| UserId::parse(owner).ok())
        else {
            tracing::warn!("Nango connection has no end_user_id tag, so it belongs to nobody");
            return Err(OwnershipError::NotFound);
        };
        let record = ConnectionRecord {
            connection_id: connection_id.clone(),
            integration_id: self.nango.integration_id().to_owned(),
            owner,
            status: ConnectionStatus::Active,
        };
        self.store
            .put_connection(&record, OffsetDateTime::now_utc())
            .await?;
        Ok(record)
    }
}

/// Tells whether a Nango error means the connection cannot be used, without naming its owner.
///
/// A refused refresh (`invalid_credentials`) also lands here: its owner is
/// unknown, so the caller gets the same 404 as for a missing connection.
fn is_missing_or_unusable(error: &NangoError) -> bool {
    match error.status().map(|s| s.as_u16()) {
        Some(404) => true,
        Some(400 | 424) => {
            matches!(
                error.code(),
                Some("unknown_provider_config" | "invalid_credentials")
            ) && !error
                .to_string()
                .to_ascii_lowercase()
                .contains("backing off")
        }
        _ => false,
    }
}
