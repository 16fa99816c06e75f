//! Emulates Lambda's SQS event source mapping with `ReportBatchItemFailures`:
//! receives batches from the analysis queue, invokes the worker through
//! `cargo lambda watch`, and deletes every record the worker did not report
//! as failed. When an invocation fails, nothing is deleted, so the records
//! come back after the queue's visibility timeout.
//!
//! Environment: `ANALYSIS_QUEUE_URL` (required), `BATCH_SIZE` (1 to 10,
//! default 5), `WORKER_INVOKE_URL` (default the `worker` function of
//! `cargo lambda watch` on 127.0.0.1:9000), `WORKER_INVOKE_TIMEOUT_SECONDS`
//! (default 300, which allows for compiling the worker on first invoke),
//! plus the standard AWS variables.

use std::process::ExitCode;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use local_stack::event_source::{
    build_event, event_source_arn, queue_name_from_url, WorkerInvoker,
};
use local_stack::server::shutdown_signal;
use pr_digest::config::{ConfigError, Environment};
use pr_digest::{aws, telemetry};

const DEFAULT_INVOKE_URL: &str = "http://127.0.0.1:9000/2015-03-31/functions/worker/invocations";
/// Long polling time of each `ReceiveMessage`.
const WAIT_TIME_SECONDS: i32 = 2;
/// Per-attempt limit of SQS calls: the long poll plus time for the response.
/// The shared SDK configuration's attempt limit is shorter than a long poll.
const SQS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(WAIT_TIME_SECONDS as u64 + 5);
const SQS_OPERATION_TIMEOUT: Duration = Duration::from_secs(3 * (WAIT_TIME_SECONDS as u64 + 5));
/// Pause after a failed `ReceiveMessage` before the next one.
const RECEIVE_RETRY_DELAY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
enum EventSourceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("ANALYSIS_QUEUE_URL {0:?} does not end in a queue name")]
    QueueUrl(String),
    #[error("building the HTTP client failed: {0}")]
    HttpClient(#[from] reqwest::Error),
}

struct Settings {
    queue_url: String,
    batch_size: i32,
    invoke_url: String,
    invoke_timeout: Duration,
}

impl Settings {
    fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let batch_size: i32 = env.parsed_or("BATCH_SIZE", 5, "a whole number from 1 to 10")?;
        if !(1..=10).contains(&batch_size) {
            return Err(ConfigError::Invalid {
                name: "BATCH_SIZE",
                value: batch_size.to_string(),
                expected: "a whole number from 1 to 10 (the ReceiveMessage maximum)",
            });
        }
        let timeout_seconds: u64 = env.parsed_or(
            "WORKER_INVOKE_TIMEOUT_SECONDS",
            300,
            "a whole number of seconds",
        )?;
        if timeout_seconds == 0 {
            return Err(ConfigError::Invalid {
                name: "WORKER_INVOKE_TIMEOUT_SECONDS",
                value: timeout_seconds.to_string(),
                expected: "a positive whole number of seconds",
            });
        }
        Ok(Self {
            queue_url: env.required("ANALYSIS_QUEUE_URL")?,
            batch_size,
            invoke_url: env
                .get("WORKER_INVOKE_URL")
                .unwrap_or_else(|| DEFAULT_INVOKE_URL.to_owned()),
            invoke_timeout: Duration::from_secs(timeout_seconds),
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the SQS event source stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), EventSourceError> {
    let settings = Settings::from_env(&Environment::process())?;
    let queue_name = queue_name_from_url(&settings.queue_url)
        .ok_or_else(|| EventSourceError::QueueUrl(settings.queue_url.clone()))?;
    let sdk_config = aws::load_sdk_config().await;
    let region = sdk_config
        .region()
        .map_or_else(|| String::from("us-east-1"), ToString::to_string);
    let arn = event_source_arn(&region, queue_name);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(SQS_ATTEMPT_TIMEOUT)
        .operation_timeout(SQS_OPERATION_TIMEOUT)
        .build();
    let sqs_config = aws_sdk_sqs::config::Builder::from(&sdk_config)
        .timeout_config(timeouts)
        .build();
    let sqs = aws_sdk_sqs::Client::from_conf(sqs_config);
    let invoker = WorkerInvoker::new(settings.invoke_url.clone(), settings.invoke_timeout)?;

    tracing::info!(
        queue_url = %settings.queue_url,
        invoke_url = %settings.invoke_url,
        batch_size = settings.batch_size,
        "SQS event source started"
    );
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    loop {
        let messages = tokio::select! {
            () = &mut shutdown => break,
            messages = receive(&sqs, &settings) => messages,
        };
        if messages.is_empty() {
            continue;
        }

        let event = build_event(&messages, &arn, &region);
        let message_ids: Vec<&str> = messages.iter().filter_map(|m| m.message_id()).collect();
        tracing::info!(?message_ids, "invoking the worker with a batch");

        let result = tokio::select! {
            () = &mut shutdown => {
                tracing::info!(?message_ids, "shutting down during an invocation; the batch will be delivered again");
                break;
            }
            result = invoker.invoke(&event) => result,
        };
        match result {
            Ok(failed_ids) => {
                delete_succeeded(&sqs, &settings.queue_url, &messages, &failed_ids).await
            }
            Err(error) => tracing::error!(
                ?message_ids,
                %error,
                "invoking the worker failed; deleting nothing, the batch will be delivered again after the visibility timeout"
            ),
        }
    }

    tracing::info!("SQS event source stopped");
    Ok(())
}

/// Receives up to `BATCH_SIZE` messages. An error is logged and yields none.
async fn receive(sqs: &aws_sdk_sqs::Client, settings: &Settings) -> Vec<Message> {
    let result = sqs
        .receive_message()
        .queue_url(&settings.queue_url)
        .max_number_of_messages(settings.batch_size)
        .wait_time_seconds(WAIT_TIME_SECONDS)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await;
    match result {
        Ok(output) => output.messages.unwrap_or_default(),
        Err(error) => {
            tracing::warn!(error = %DisplayErrorContext(&error), retry_in_s = RECEIVE_RETRY_DELAY.as_secs(), "receiving messages failed");
            tokio::time::sleep(RECEIVE_RETRY_DELAY).await;
            Vec::new()
        }
    }
}

/// Deletes every message not in `failed_ids` and logs what was deleted and kept.
async fn delete_succeeded(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[Message],
    failed_ids: &[String],
) {
    let mut entries = Vec::new();
    let mut deleted_ids = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let (Some(id), Some(receipt_handle)) = (message.message_id(), message.receipt_handle())
        else {
            tracing::warn!(
                "a received message has no id or receipt handle; leaving it on the queue"
            );
            continue;
        };
        if failed_ids.iter().any(|failed| failed == id) {
            continue;
        }
        let entry = DeleteMessageBatchRequestEntry::builder()
            .id(format!("m{index}"))
            .receipt_handle(receipt_handle)
            .build();
        match entry {
            Ok(entry) => {
                entries.push(entry);
                deleted_ids.push(id);
            }
            Err(error) => {
                tracing::error!(message_id = id, %error, "building a delete entry failed; leaving the message on the queue")
            }
        }
    }

    if entries.is_empty() {
        tracing::info!(kept = ?failed_ids, "batch done; the worker reported every record as failed, deleting none");
        return;
    }
    match sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(output) => {
            for failure in output.failed() {
                tracing::error!(
                    entry = failure.id(),
                    code = failure.code(),
                    reason = failure.message().unwrap_or("-"),
                    "deleting a message failed; it will be delivered again"
                );
            }
            tracing::info!(deleted = ?deleted_ids, kept = ?failed_ids, "batch done");
        }
        Err(error) => tracing::error!(
            deleted = ?deleted_ids,
            error = %DisplayErrorContext(&error),
            "deleting the batch failed; its records will be delivered again"
        ),
    }
}
