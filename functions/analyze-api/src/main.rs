//! The analyze API Lambda: `POST /api/analyze-prs` and `GET /api/analyses/{id}`.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error, Request};
use pr_digest::api::AnalysesApi;
use pr_digest::config::{ApiConfig, Environment, StorageConfig};
use pr_digest::queue::SqsAnalysisQueue;
use pr_digest::store::DynamoDbAnalysisStore;
use pr_digest::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();

    let env = Environment::process();
    let api_config = ApiConfig::from_env(&env)?;
    let storage = StorageConfig::from_env(&env)?;
    if storage.queue_url.is_empty() {
        return Err("missing environment variable ANALYSIS_QUEUE_URL".into());
    }
    api_config.warn_if_dev_mode();

    let sdk_config = aws::load_sdk_config().await;
    let store = DynamoDbAnalysisStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config),
        storage.table_name,
        storage.analysis_ttl_days,
    );
    let queue = SqsAnalysisQueue::new(aws_sdk_sqs::Client::new(&sdk_config), storage.queue_url);
    let api = AnalysesApi::new(Arc::new(store), Arc::new(queue), api_config);

    run(service_fn(|request: Request| {
        let api = api.clone();
        async move { Ok::<_, Error>(api.handle(request).await) }
    }))
    .await
}
