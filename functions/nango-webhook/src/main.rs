//! The nango-webhook Lambda: `POST /api/nango-webhook`, called by Nango, not by users.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error, Request};
use pr_digest::access::DynamoDbAccessStore;
use pr_digest::api::NangoWebhookApi;
use pr_digest::config::{AccessConfig, Environment};
use pr_digest::secrets::resolve_secret;
use pr_digest::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();

    let env = Environment::process();
    let access = AccessConfig::from_env(&env)
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let integration_id = env
        .get("NANGO_INTEGRATION_ID")
        .unwrap_or_else(|| String::from("github"));

    let sdk_config = aws::load_sdk_config().await;
    let signing_key = resolve_secret(
        &env,
        || aws_sdk_ssm::Client::new(&sdk_config),
        "NANGO_WEBHOOK_SECRET",
    )
    .await
    .inspect_err(|error| tracing::error!(%error, "the webhook signing key is unavailable"))?;

    let store = DynamoDbAccessStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config),
        access.table_name,
        access.ttl_days,
    );
    let api = NangoWebhookApi::new(Arc::new(store), signing_key, integration_id);

    run(service_fn(|request: Request| {
        let api = api.clone();
        async move { Ok::<_, Error>(api.handle(request).await) }
    }))
    .await
}
