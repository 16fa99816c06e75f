//! The analysis queue: the [`AnalysisQueue`] port, its message and its SQS adapter.

mod sqs;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::AnalysisId;

pub use sqs::SqsAnalysisQueue;

/// The body of a queue message: only the id, so no user data sits in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisMessage {
    pub analysis_id: String,
}

/// The reason a queue message body is unusable.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message body is not {{\"analysisId\": \"…\"}}: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("message names an invalid analysis id {0:?}")]
    InvalidId(String),
}

impl AnalysisMessage {
    pub fn new(id: &AnalysisId) -> Self {
        Self {
            analysis_id: id.to_string(),
        }
    }

    pub fn to_body(&self) -> String {
        // A struct of one string always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a message body and the analysis id in it.
    pub fn parse(body: &str) -> Result<AnalysisId, MessageError> {
        let message: Self = serde_json::from_str(body)?;
        AnalysisId::parse(&message.analysis_id).ok_or(MessageError::InvalidId(message.analysis_id))
    }
}

/// A failed send to the queue.
#[derive(Debug, thiserror::Error)]
#[error("SQS send failed: {0}")]
pub struct QueueError(pub String);

/// Postpones the next delivery of a received message.
#[async_trait]
pub trait Redelivery: Send + Sync {
    /// Makes the message with `receipt_handle` invisible for `delay` (at most 12 hours),
    /// so SQS delivers it again only after that wait.
    async fn postpone(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError>;
}

/// Hands analyses to the worker.
#[async_trait]
pub trait AnalysisQueue: Send + Sync {
    async fn enqueue(&self, id: &AnalysisId) -> Result<(), QueueError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trips() {
        let id = AnalysisId::generate();
        let body = AnalysisMessage::new(&id).to_body();
        assert_eq!(body, format!("{{\"analysisId\":\"{id}\"}}"));
        assert_eq!(AnalysisMessage::parse(&body).expect("valid"), id);
    }

    #[test]
    fn message_rejects_bad_bodies() {
        assert!(matches!(
            AnalysisMessage::parse("not json"),
            Err(MessageError::NotJson(_))
        ));
        assert!(matches!(
            AnalysisMessage::parse("{}"),
            Err(MessageError::NotJson(_))
        ));
        assert!(matches!(
            AnalysisMessage::parse(r#"{"analysisId":"x"}"#),
            Err(MessageError::InvalidId(_))
        ));
    }
}
