//! The connect-session Lambda: `POST /api/nango-session`.

use lambda_http::{run, service_fn, Error, Request};
use pr_digest::api::ConnectSessionApi;
use pr_digest::config::{ApiConfig, Environment, NangoConfig};
use pr_digest::secrets::resolve_secret;
use pr_digest::upstream::nango::NangoClient;
use pr_digest::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();

    let env = Environment::process();
    let api_config = ApiConfig::from_env(&env)
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    api_config.warn_if_dev_mode();

    let sdk_config = aws::load_sdk_config().await;
    let nango_key = resolve_secret(
        &env,
        || aws_sdk_ssm::Client::new(&sdk_config),
        "NANGO_SECRET_KEY",
    )
    .await?;
    let nango = NangoClient::new(NangoConfig::from_env(&env, nango_key)?)?;
    let api = ConnectSessionApi::new(nango, api_config);

    run(service_fn(|request: Request| {
        let api = api.clone();
        async move { Ok::<_, Error>(api.handle(request).await) }
    }))
    .await
}
