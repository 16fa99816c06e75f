//! The worker Lambda: SQS-triggered, with partial batch responses.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pr_digest::config::{
    AnthropicConfig, Environment, GithubConfig, NangoConfig, StorageConfig, WorkerConfig,
};
use pr_digest::queue::SqsAnalysisQueue;
use pr_digest::secrets::resolve_secret;
use pr_digest::store::DynamoDbAnalysisStore;
use pr_digest::upstream::anthropic::AnthropicClient;
use pr_digest::upstream::github::GithubClient;
use pr_digest::upstream::nango::NangoClient;
use pr_digest::worker::{Deadline, Worker};
use pr_digest::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();

    let env = Environment::process();
    let storage = StorageConfig::from_env(&env)?;
    let sdk_config = aws::load_sdk_config().await;
    let ssm = || aws_sdk_ssm::Client::new(&sdk_config);
    let nango_key = resolve_secret(&env, ssm, "NANGO_SECRET_KEY").await?;
    let anthropic_key = resolve_secret(&env, ssm, "ANTHROPIC_API_KEY").await?;

    let store = DynamoDbAnalysisStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config),
        storage.table_name,
        storage.analysis_ttl_days,
    );
    if storage.queue_url.is_empty() {
        return Err(
            "missing environment variable ANALYSIS_QUEUE_URL (needed to postpone redeliveries)"
                .into(),
        );
    }
    let queue = SqsAnalysisQueue::new(aws_sdk_sqs::Client::new(&sdk_config), storage.queue_url);
    let worker = Worker::new(
        Arc::new(store),
        Arc::new(queue),
        NangoClient::new(NangoConfig::from_env(&env, nango_key)?)?,
        GithubClient::new(GithubConfig::from_env(&env)?)?,
        AnthropicClient::new(AnthropicConfig::from_env(&env, anthropic_key)?)?,
        WorkerConfig::from_env(&env)?,
    );

    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move {
            tracing::info!(request_id = %event.context.request_id, records = event.payload.records.len(), "batch received");
            let response: SqsBatchResponse = worker.handle_batch(event.payload, Deadline::from_epoch_millis(event.context.deadline)).await?;
            Ok::<_, Error>(response)
        }
    }))
    .await
}
