//! AWS SDK configuration shared by the DynamoDB, SQS and SSM clients.
//!
//! The standard environment applies: `AWS_REGION`, credentials, and
//! `AWS_ENDPOINT_URL`, which points every client at a local emulator such as
//! moto server.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

/// Per-attempt and per-operation limits for AWS calls, retries included. Two
/// calls at the operation limit still fit the API functions' 29 s timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(6);

/// Loads the SDK configuration with bounded attempt and operation times.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}
