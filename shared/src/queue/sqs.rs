//! [`AnalysisQueue`] on an SQS standard queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;

use super::{AnalysisMessage, AnalysisQueue, QueueError, Redelivery};
use crate::domain::AnalysisId;

#[derive(Debug, Clone)]
pub struct SqsAnalysisQueue {
    client: Client,
    queue_url: String,
}

impl SqsAnalysisQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl AnalysisQueue for SqsAnalysisQueue {
    async fn enqueue(&self, id: &AnalysisId) -> Result<(), QueueError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(AnalysisMessage::new(id).to_body())
            .send()
            .await
            .map_err(|error| QueueError(DisplayErrorContext(&error).to_string()))?;
        tracing::info!(analysis_id = %id, sqs_message_id = output.message_id().unwrap_or("-"), "analysis queued");
        Ok(())
    }
}

/// The maximum visibility timeout SQS accepts, in seconds.
const MAX_VISIBILITY_SECONDS: u64 = 12 * 60 * 60;

#[async_trait]
impl Redelivery for SqsAnalysisQueue {
    async fn postpone(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        let seconds = delay.as_secs().clamp(1, MAX_VISIBILITY_SECONDS);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|error| QueueError(DisplayErrorContext(&error).to_string()))?;
        Ok(())
    }
}
