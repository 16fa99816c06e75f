//! Creates the local AWS resources on the endpoint in `AWS_ENDPOINT_URL`
//! (moto server in local runs): the analysis queue with its dead-letter queue,
//! the analyses table and the access table (connection owners and quotas).
//! Running it again keeps what exists and reapplies the queue attributes.
//!
//! Prints `ANALYSIS_QUEUE_URL=<url>` as the only line on stdout, so a script
//! can capture it. Logs go to stderr.
//!
//! Environment: `LOCAL_QUEUE_NAME` (default `pr-digest-analyses`, with the
//! dead-letter queue `<name>-dlq`), `ANALYSES_TABLE` (default
//! `pr-digest-analyses`), `ACCESS_TABLE` (default `pr-digest-access`),
//! `LOCAL_VISIBILITY_TIMEOUT_SECONDS` (default 10) and `MAX_ATTEMPTS` (the
//! redrive policy's `maxReceiveCount`, default 5).

use std::process::ExitCode;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;
use pr_digest::aws;
use pr_digest::config::{ConfigError, Environment};
use serde_json::json;

/// The attribute that DynamoDB's TTL reads, in Unix seconds, as both stores write it.
const TTL_ATTRIBUTE: &str = "expiresAt";
/// The analyses table's partition key.
const ANALYSES_KEY_ATTRIBUTE: &str = "id";
/// The access table's partition key.
const ACCESS_KEY_ATTRIBUTE: &str = "pk";

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("creating SQS queue {queue} failed: {reason}")]
    CreateQueue { queue: String, reason: String },
    #[error("reading the ARN of SQS queue {queue} failed: {reason}")]
    QueueArn { queue: String, reason: String },
    #[error("setting the attributes of SQS queue {queue} failed: {reason}")]
    SetQueueAttributes { queue: String, reason: String },
    #[error("creating DynamoDB table {table} failed: {reason}")]
    CreateTable { table: String, reason: String },
}

/// Names and limits of the resources to create.
struct Settings {
    queue_name: String,
    dead_letter_queue_name: String,
    table_name: String,
    access_table_name: String,
    visibility_timeout_seconds: u32,
    max_receive_count: u32,
}

impl Settings {
    fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let queue_name = env
            .get("LOCAL_QUEUE_NAME")
            .unwrap_or_else(|| String::from("pr-digest-analyses"));
        let max_receive_count: u32 =
            env.parsed_or("MAX_ATTEMPTS", 5, "a whole number from 1 to 1000")?;
        if !(1..=1000).contains(&max_receive_count) {
            return Err(ConfigError::Invalid {
                name: "MAX_ATTEMPTS",
                value: max_receive_count.to_string(),
                expected: "a whole number from 1 to 1000 (the SQS maxReceiveCount range)",
            });
        }
        let visibility_timeout_seconds: u32 = env.parsed_or(
            "LOCAL_VISIBILITY_TIMEOUT_SECONDS",
            10,
            "a whole number of seconds from 0 to 43200",
        )?;
        if visibility_timeout_seconds > 43_200 {
            return Err(ConfigError::Invalid {
                name: "LOCAL_VISIBILITY_TIMEOUT_SECONDS",
                value: visibility_timeout_seconds.to_string(),
                expected: "a whole number of seconds from 0 to 43200",
            });
        }
        Ok(Self {
            dead_letter_queue_name: format!("{queue_name}-dlq"),
            queue_name,
            table_name: env
                .get("ANALYSES_TABLE")
                .unwrap_or_else(|| String::from("pr-digest-analyses")),
            access_table_name: env
                .get("ACCESS_TABLE")
                .unwrap_or_else(|| String::from("pr-digest-access")),
            visibility_timeout_seconds,
            max_receive_count,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    pr_digest::telemetry::init();
    match run().await {
        Ok(queue_url) => {
            println!("ANALYSIS_QUEUE_URL={queue_url}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "local set-up failed");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<String, SetupError> {
    let settings = Settings::from_env(&Environment::process())?;
    let sdk_config = aws::load_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk_config);

    let queue_url = create_queues(&sqs, &settings).await?;
    create_table(&dynamodb, &settings.table_name, ANALYSES_KEY_ATTRIBUTE).await?;
    enable_ttl(&dynamodb, &settings.table_name).await;
    create_table(&dynamodb, &settings.access_table_name, ACCESS_KEY_ATTRIBUTE).await?;
    enable_ttl(&dynamodb, &settings.access_table_name).await;
    Ok(queue_url)
}

/// Creates the dead-letter queue and the analysis queue, and returns the analysis queue's URL.
async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    settings: &Settings,
) -> Result<String, SetupError> {
    let dead_letter_url = create_queue(sqs, &settings.dead_letter_queue_name).await?;
    let dead_letter_arn =
        queue_arn(sqs, &dead_letter_url, &settings.dead_letter_queue_name).await?;
    let queue_url = create_queue(sqs, &settings.queue_name).await?;

    let redrive_policy = json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": settings.max_receive_count.to_string(),
    });
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            settings.visibility_timeout_seconds.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            redrive_policy.to_string(),
        )
        .send()
        .await
        .map_err(|error| SetupError::SetQueueAttributes {
            queue: settings.queue_name.clone(),
            reason: DisplayErrorContext(&error).to_string(),
        })?;
    tracing::info!(
        queue = %settings.queue_name,
        dead_letter_queue = %settings.dead_letter_queue_name,
        visibility_timeout_seconds = settings.visibility_timeout_seconds,
        max_receive_count = settings.max_receive_count,
        "analysis queue ready"
    );
    Ok(queue_url)
}

/// Creates a queue with default attributes, or returns the URL of the existing one.
/// The caller sets attributes afterwards, because `CreateQueue` rejects an existing
/// queue whose attributes differ.
async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, SetupError> {
    let output = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|error| SetupError::CreateQueue {
            queue: name.to_owned(),
            reason: DisplayErrorContext(&error).to_string(),
        })?;
    output.queue_url.ok_or_else(|| SetupError::CreateQueue {
        queue: name.to_owned(),
        reason: String::from("the response has no QueueUrl"),
    })
}

async fn queue_arn(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    name: &str,
) -> Result<String, SetupError> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| SetupError::QueueArn {
            queue: name.to_owned(),
            reason: DisplayErrorContext(&error).to_string(),
        })?;
    output
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| SetupError::QueueArn {
            queue: name.to_owned(),
            reason: String::from("the response has no QueueArn attribute"),
        })
}

/// Creates a table keyed by the string attribute `key` with on-demand billing, unless it exists.
async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<(), SetupError> {
    let create_error = |reason: String| SetupError::CreateTable {
        table: table.to_owned(),
        reason,
    };
    let key_definition = AttributeDefinition::builder()
        .attribute_name(key)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|error| create_error(error.to_string()))?;
    let key_schema = KeySchemaElement::builder()
        .attribute_name(key)
        .key_type(KeyType::Hash)
        .build()
        .map_err(|error| create_error(error.to_string()))?;

    let result = dynamodb
        .create_table()
        .table_name(table)
        .attribute_definitions(key_definition)
        .key_schema(key_schema)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match result {
        Ok(_) => tracing::info!(%table, "DynamoDB table created"),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|service_error| service_error.is_resource_in_use_exception()) =>
        {
            tracing::info!(%table, "DynamoDB table already exists");
        }
        Err(error) => return Err(create_error(DisplayErrorContext(&error).to_string())),
    }
    Ok(())
}

/// Enables TTL on [`TTL_ATTRIBUTE`]. Failures only warn, because an emulator
/// may not support TTL and items then simply stay until deleted.
async fn enable_ttl(dynamodb: &aws_sdk_dynamodb::Client, table: &str) {
    let current = dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await;
    if let Ok(output) = &current {
        let description = output.time_to_live_description();
        let enabled = description.is_some_and(|d| {
            d.attribute_name() == Some(TTL_ATTRIBUTE)
                && matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
        });
        if enabled {
            tracing::info!(%table, attribute = TTL_ATTRIBUTE, "DynamoDB TTL already enabled");
            return;
        }
    }

    let specification = match TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
    {
        Ok(specification) => specification,
        Err(error) => {
            tracing::warn!(%table, %error, "building the TTL specification failed; TTL stays off");
            return;
        }
    };
    match dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(specification)
        .send()
        .await
    {
        Ok(_) => tracing::info!(%table, attribute = TTL_ATTRIBUTE, "DynamoDB TTL enabled"),
        Err(error) => tracing::warn!(
            %table,
            error = %DisplayErrorContext(&error),
            "enabling DynamoDB TTL failed; items will not expire on this endpoint"
        ),
    }
}
