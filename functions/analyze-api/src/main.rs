//! The analyze API Lambda: `POST /api/analyze-prs` and `GET /api/analyses/{id}`.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error, Request};
use pr_digest::access::{AnalysisQuota, ConnectionOwnership, DynamoDbAccessStore};
use pr_digest::api::AnalysesApi;
use pr_digest::config::{AccessConfig, ApiConfig, Environment, NangoConfig, StorageConfig};
use pr_digest::queue::SqsAnalysisQueue;
use pr_digest::secrets::resolve_secret;
use pr_digest::store::DynamoDbAnalysisStore;
use pr_digest::upstream::nango::NangoClient;
use pr_digest::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();

    let env = Environment::process();
    let api_config = ApiConfig::from_env(&env)
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let storage = StorageConfig::from_env(&env)?;
    if storage.queue_url.is_empty() {
        return Err("missing environment variable ANALYSIS_QUEUE_URL".into());
    }
    let access = AccessConfig::from_env(&env)?;
    api_config.warn_if_dev_mode();

    let sdk_config = aws::load_sdk_config().await;
    let nango_key = resolve_secret(
        &env,
        || aws_sdk_ssm::Client::new(&sdk_config),
        "NANGO_SECRET_KEY",
    )
    .await?;
    let nango = NangoClient::new(NangoConfig::from_env(&env, nango_key)?)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk_config);

    let store = DynamoDbAnalysisStore::new(
        dynamodb.clone(),
        storage.table_name,
        storage.analysis_ttl_days,
    );
    let queue = SqsAnalysisQueue::new(aws_sdk_sqs::Client::new(&sdk_config), storage.queue_url);
    let access_store = Arc::new(DynamoDbAccessStore::new(
        dynamodb,
        access.table_name,
        access.ttl_days,
    ));
    let api = AnalysesApi::new(
        Arc::new(store),
        Arc::new(queue),
        ConnectionOwnership::new(access_store.clone(), nango),
        AnalysisQuota::new(access_store, access.max_analyses_per_hour),
        api_config,
    );

    run(service_fn(|request: Request| {
        let api = api.clone();
        async move { Ok::<_, Error>(api.handle(request).await) }
    }))
    .await
}
