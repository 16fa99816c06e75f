//! Moves every message of the dead-letter queue back to the analysis queue,
//! for an operator who has fixed what made the worker fail (for example a
//! DynamoDB outage). Works against real SQS and against moto server.
//!
//! Each message is sent to the analysis queue before it is deleted from the
//! dead-letter queue, so a crash in between duplicates a message rather than
//! losing it. The worker acknowledges a message whose analysis is finished.
//!
//! Environment: `DEAD_LETTER_QUEUE_URL` and `ANALYSIS_QUEUE_URL` (both
//! required), plus the standard AWS variables.

use std::process::ExitCode;

use aws_sdk_sqs::error::DisplayErrorContext;
use pr_digest::config::{ConfigError, Environment};
use pr_digest::{aws, telemetry};

#[derive(Debug, thiserror::Error)]
enum RedriveError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("receiving from the dead-letter queue failed (check DEAD_LETTER_QUEUE_URL, AWS credentials and region): {0}")]
    Receive(String),
    #[error("sending message {message_id} to the analysis queue failed (check ANALYSIS_QUEUE_URL): {reason}")]
    Send { message_id: String, reason: String },
    #[error("deleting message {message_id} from the dead-letter queue failed: {reason}")]
    Delete { message_id: String, reason: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    match redrive().await {
        Ok(moved) => {
            println!("moved {moved} messages back to the analysis queue");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("redrive failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn redrive() -> Result<usize, RedriveError> {
    let env = Environment::process();
    let dead_letter_queue_url = env.required("DEAD_LETTER_QUEUE_URL")?;
    let queue_url = env.required("ANALYSIS_QUEUE_URL")?;
    let sqs = aws_sdk_sqs::Client::new(&aws::load_sdk_config().await);
    let mut moved = 0;

    loop {
        let received = sqs
            .receive_message()
            .queue_url(&dead_letter_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|error| RedriveError::Receive(DisplayErrorContext(&error).to_string()))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(moved);
        }

        for message in messages {
            let message_id = message.message_id().unwrap_or("-").to_owned();
            sqs.send_message()
                .queue_url(&queue_url)
                .message_body(message.body().unwrap_or_default())
                .send()
                .await
                .map_err(|error| RedriveError::Send {
                    message_id: message_id.clone(),
                    reason: DisplayErrorContext(&error).to_string(),
                })?;

            sqs.delete_message()
                .queue_url(&dead_letter_queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|error| RedriveError::Delete {
                    message_id: message_id.clone(),
                    reason: DisplayErrorContext(&error).to_string(),
                })?;

            tracing::info!(sqs_message_id = %message_id, "message moved back to the analysis queue");
            moved += 1;
        }
    }
}
