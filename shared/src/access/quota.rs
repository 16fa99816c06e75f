//! The per-user limit on new analyses.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{AccessStore, AccessStoreError, QuotaDecision};
use crate::domain::UserId;

/// A fixed-window limit of new analyses per user and clock hour.
#[derive(Clone)]
pub struct AnalysisQuota {
    store: Arc<dyn AccessStore>,
    max_per_hour: u32,
}

impl AnalysisQuota {
    pub fn new(store: Arc<dyn AccessStore>, max_per_hour: u32) -> Self {
        Self {
            store,
            max_per_hour,
        }
    }

    /// Returns the store that keeps the counts.
    pub fn store(&self) -> Arc<dyn AccessStore> {
        self.store.clone()
    }

    /// Counts one new analysis for `user`, or returns how long to wait.
    pub async fn take(&self, user: &UserId) -> Result<QuotaDecision, AccessStoreError> {
        self.store
            .take_analysis_quota(user, self.max_per_hour, OffsetDateTime::now_utc())
            .await
    }
}
