//! The parts of Lambda's SQS event source mapping that the local stack needs:
//! turning received messages into an [`SqsEvent`], invoking the worker, and
//! reading its partial batch response.
//!
//! The rules for the response follow AWS's documentation of
//! `ReportBatchItemFailures`: a null or empty response, or an empty or null
//! `batchItemFailures`, means every record succeeded. A response that is not
//! valid JSON, or names an item identifier that is empty, null or not in the
//! batch, fails the whole batch.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::Message;
use serde_json::Value;

/// The account id in the event source ARN. Lambda puts the queue's real
/// account there, but the worker does not read it.
const LOCAL_ACCOUNT_ID: &str = "000000000000";

/// Characters of an unexpected response body kept in an error.
const MAX_BODY_IN_ERROR: usize = 500;

/// The first wait before retrying a connection to the invoke URL. Each retry
/// doubles it, up to [`MAX_CONNECT_BACKOFF`].
const FIRST_CONNECT_BACKOFF: Duration = Duration::from_millis(500);
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(5);

/// A failed worker invocation, after which the caller deletes no record of the batch.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("could not connect to the worker at {url} for {waited_seconds} s: {reason}")]
    Connect {
        url: String,
        waited_seconds: u64,
        reason: String,
    },
    #[error("the worker did not respond within {0} s")]
    Timeout(u64),
    #[error("the invoke request failed: {0}")]
    Request(String),
    #[error("the invoke endpoint returned HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the worker returned a function error {error_type}: {message}")]
    Function { error_type: String, message: String },
    #[error("the worker's response is not a valid batch response: {0}")]
    InvalidResponse(String),
}

/// Returns the queue name, the last path segment of an SQS queue URL.
pub fn queue_name_from_url(queue_url: &str) -> Option<&str> {
    queue_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty() && !name.contains(':'))
}

/// Returns the ARN that Lambda puts in `eventSourceARN` for a queue.
pub fn event_source_arn(region: &str, queue_name: &str) -> String {
    format!("arn:aws:sqs:{region}:{LOCAL_ACCOUNT_ID}:{queue_name}")
}

/// Builds the event Lambda sends for one batch of received messages.
pub fn build_event(messages: &[Message], event_source_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|message| {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id.clone();
            record.receipt_handle = message.receipt_handle.clone();
            record.body = message.body.clone();
            record.md5_of_body = message.md5_of_body.clone();
            record.md5_of_message_attributes = message.md5_of_message_attributes.clone();
            record.attributes = message
                .attributes
                .iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                .collect();
            record.event_source = Some(String::from("aws:sqs"));
            record.event_source_arn = Some(event_source_arn.to_owned());
            record.aws_region = Some(region.to_owned());
            record
        })
        .collect();
    event
}

/// Reads a partial batch response and returns the message ids to keep on the
/// queue, applying Lambda's rules from the module documentation.
pub fn failed_message_ids(
    body: &[u8],
    batch_message_ids: &HashSet<String>,
) -> Result<Vec<String>, InvokeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| InvokeError::InvalidResponse(format!("not JSON ({error})")))?;

    let object = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(object) => object,
        other => {
            return Err(InvokeError::InvalidResponse(format!(
                "expected a JSON object, got {}",
                excerpt(&other.to_string())
            )))
        }
    };
    if let Some(error_type) = object.get("errorType") {
        return Err(function_error(error_type, object.get("errorMessage")));
    }

    let failures = match object.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(failures)) => failures,
        Some(other) => {
            return Err(InvokeError::InvalidResponse(format!(
                "batchItemFailures is not an array: {}",
                excerpt(&other.to_string())
            )))
        }
    };

    let mut failed = Vec::with_capacity(failures.len());
    for failure in failures {
        match failure.get("itemIdentifier") {
            Some(Value::String(id)) if batch_message_ids.contains(id) => failed.push(id.clone()),
            Some(Value::String(id)) if !id.is_empty() => {
                return Err(InvokeError::InvalidResponse(format!(
                    "itemIdentifier {id:?} is not a message of this batch"
                )))
            }
            _ => {
                return Err(InvokeError::InvalidResponse(format!(
                    "a batchItemFailures entry has no usable itemIdentifier: {}",
                    excerpt(&failure.to_string())
                )))
            }
        }
    }
    Ok(failed)
}

fn function_error(error_type: &Value, message: Option<&Value>) -> InvokeError {
    let text = |value: Option<&Value>| match value {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    InvokeError::Function {
        error_type: text(Some(error_type)),
        message: text(message),
    }
}

fn excerpt(text: &str) -> String {
    pr_digest::domain::truncate_chars(text, MAX_BODY_IN_ERROR)
}

/// Sends batches to the worker through the Lambda invoke API of `cargo lambda watch`.
#[derive(Debug, Clone)]
pub struct WorkerInvoker {
    http: reqwest::Client,
    invoke_url: String,
    timeout: Duration,
}

impl WorkerInvoker {
    /// Creates an invoker whose requests wait at most `timeout` for a response.
    /// Connection failures are retried within the same time.
    pub fn new(invoke_url: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            invoke_url,
            timeout,
        })
    }

    /// Invokes the worker with `event` and returns the message ids it reported as failed.
    ///
    /// Connection failures are retried with a growing backoff, because
    /// `cargo lambda watch` may still be starting. They are reported once
    /// the invoke timeout has passed.
    pub async fn invoke(&self, event: &SqsEvent) -> Result<Vec<String>, InvokeError> {
        let batch_message_ids: HashSet<String> = event
            .records
            .iter()
            .filter_map(|record| record.message_id.clone())
            .collect();
        let started = Instant::now();
        let mut backoff = FIRST_CONNECT_BACKOFF;

        let response = loop {
            match self.http.post(&self.invoke_url).json(event).send().await {
                Ok(response) => break response,
                Err(error) if error.is_connect() && started.elapsed() + backoff < self.timeout => {
                    tracing::warn!(url = %self.invoke_url, error = %error.without_url(), retry_in_ms = backoff.as_millis(), "connecting to the worker failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
                }
                Err(error) => return Err(self.request_error(error, started)),
            }
        };

        let status = response.status();
        let function_error_header = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|error| self.request_error(error, started))?;

        if !status.is_success() {
            // `cargo lambda watch` returns a function error as HTTP 500 with
            // the runtime's `{"errorType", "errorMessage"}` body.
            if let Ok(Value::Object(error)) = serde_json::from_slice::<Value>(&body) {
                if let Some(error_type) = error.get("errorType") {
                    return Err(function_error(error_type, error.get("errorMessage")));
                }
            }
            return Err(InvokeError::Status {
                status: status.as_u16(),
                body: excerpt(&String::from_utf8_lossy(&body)),
            });
        }
        // Lambda's own invoke API returns a function error as HTTP 200 with this header.
        if let Some(kind) = function_error_header {
            return Err(InvokeError::Function {
                error_type: kind,
                message: excerpt(&String::from_utf8_lossy(&body)),
            });
        }
        failed_message_ids(&body, &batch_message_ids)
    }

    fn request_error(&self, error: reqwest::Error, started: Instant) -> InvokeError {
        let error = error.without_url();
        if error.is_timeout() {
            InvokeError::Timeout(self.timeout.as_secs())
        } else if error.is_connect() {
            InvokeError::Connect {
                url: self.invoke_url.clone(),
                waited_seconds: started.elapsed().as_secs(),
                reason: error.to_string(),
            }
        } else {
            InvokeError::Request(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageSystemAttributeName;

    fn ids(list: &[&str]) -> HashSet<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn queue_name_is_last_segment() {
        assert_eq!(
            queue_name_from_url("http://127.0.0.1:5050/123456789012/pr-digest-analyses"),
            Some("pr-digest-analyses")
        );
        assert_eq!(
            queue_name_from_url("https://sqs.us-east-1.amazonaws.com/1/q/"),
            Some("q")
        );
        assert_eq!(queue_name_from_url(""), None);
    }

    #[test]
    fn event_copies_message_fields() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh-1")
            .body(r#"{"analysisId":"x"}"#)
            .md5_of_body("abc")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .build();
        let arn = event_source_arn("us-east-1", "q");
        let event = build_event(&[message], &arn, "us-east-1");

        let json = serde_json::to_value(&event).expect("events serialise");
        let record = &json["Records"][0];
        assert_eq!(record["messageId"], "m-1");
        assert_eq!(record["receiptHandle"], "rh-1");
        assert_eq!(record["body"], r#"{"analysisId":"x"}"#);
        assert_eq!(record["md5OfBody"], "abc");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:000000000000:q"
        );
        assert_eq!(record["awsRegion"], "us-east-1");
    }

    #[test]
    fn empty_responses_mean_success() {
        let batch = ids(&["a", "b"]);
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
        ] {
            let failed = failed_message_ids(body.as_bytes(), &batch);
            assert!(matches!(failed.as_deref(), Ok([])), "{body}");
        }
    }

    #[test]
    fn listed_failures_are_kept() {
        let batch = ids(&["a", "b", "c"]);
        let body = br#"{"batchItemFailures":[{"itemIdentifier":"b"},{"itemIdentifier":"c"}]}"#;
        let failed = failed_message_ids(body, &batch).expect("valid response");
        assert_eq!(failed, vec!["b", "c"]);
    }

    #[test]
    fn invalid_responses_fail_batch() {
        let batch = ids(&["a"]);
        for body in [
            "not json",
            "[]",
            r#"{"batchItemFailures":{}}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"id":"a"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
        ] {
            let failed = failed_message_ids(body.as_bytes(), &batch);
            assert!(
                matches!(failed, Err(InvokeError::InvalidResponse(_))),
                "{body}: {failed:?}"
            );
        }
    }

    #[test]
    fn error_object_is_function_error() {
        let body = br#"{"errorType":"BatchError","errorMessage":"store down"}"#;
        let failed = failed_message_ids(body, &ids(&["a"]));
        assert!(
            matches!(failed, Err(InvokeError::Function { ref error_type, ref message }) if error_type == "BatchError" && message == "store down"),
            "{failed:?}"
        );
    }
}
