//! Stands in for API Gateway in local runs: listens on 127.0.0.1 and forwards
//! every request to the `cargo lambda watch` function URL of the function
//! that owns its path (`connect-session` for `/api/nango-session`,
//! `analyze-api` for every other path).
//!
//! Environment: `GATEWAY_PORT` (default 3000), `LAMBDA_WATCH_URL` (default
//! `http://127.0.0.1:9000`), `GATEWAY_TIMEOUT_SECONDS` (default 300, which
//! allows for compiling a function on its first request).

use std::process::ExitCode;
use std::time::Duration;

use local_stack::gateway::Gateway;
use local_stack::server::{bind_loopback, shutdown_signal};
use pr_digest::config::{ConfigError, Environment};
use pr_digest::telemetry;

#[derive(Debug, thiserror::Error)]
enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("building the HTTP client failed: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("listening on 127.0.0.1:{port} failed: {source}. Set GATEWAY_PORT to a free port.")]
    Bind { port: u16, source: std::io::Error },
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the local gateway stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), GatewayError> {
    let env = Environment::process();
    let port: u16 = env.parsed_or("GATEWAY_PORT", 3000, "a TCP port number")?;
    let lambda_watch_url = env.url_or("LAMBDA_WATCH_URL", "http://127.0.0.1:9000")?;
    let timeout_seconds: u64 =
        env.parsed_or("GATEWAY_TIMEOUT_SECONDS", 300, "a whole number of seconds")?;
    if timeout_seconds == 0 {
        return Err(ConfigError::Invalid {
            name: "GATEWAY_TIMEOUT_SECONDS",
            value: timeout_seconds.to_string(),
            expected: "a positive whole number of seconds",
        }
        .into());
    }
    let gateway = Gateway::new(
        lambda_watch_url.as_str(),
        Duration::from_secs(timeout_seconds),
    )?;

    let listener = bind_loopback(port)
        .await
        .map_err(|source| GatewayError::Bind { port, source })?;
    let address = listener.local_addr().map_err(GatewayError::Serve)?;
    tracing::info!(%address, %lambda_watch_url, "local gateway listening");

    axum::serve(listener, gateway.router())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(GatewayError::Serve)?;
    tracing::info!("local gateway stopped");
    Ok(())
}
