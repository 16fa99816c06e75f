//! One HTTP server on 127.0.0.1 in place of Nango, GitHub and the Anthropic
//! Messages API, for running the stack without network access or real keys.
//!
//! Environment: `STAND_IN_PORT` (default 4010), `STAND_IN_NANGO_SECRET_KEY`,
//! `STAND_IN_INTEGRATION_ID`, `STAND_IN_END_USER_ID`, `STAND_IN_GITHUB_TOKEN`,
//! `STAND_IN_ANTHROPIC_API_KEY` (demo defaults), and `DEMO_GITHUB_FIXTURES`,
//! a directory of recorded GitHub responses (default the crate's
//! `demo-data/github`).

use std::process::ExitCode;

use local_stack::server::{bind_loopback, shutdown_signal};
use local_stack::stand_in::fixtures::{load_pages, FixtureError};
use local_stack::stand_in::{StandIn, StandInSettings};
use pr_digest::config::{ConfigError, Environment};
use pr_digest::telemetry;

#[derive(Debug, thiserror::Error)]
enum StandInError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Fixtures(#[from] FixtureError),
    #[error("listening on 127.0.0.1:{port} failed: {source}. Set STAND_IN_PORT to a free port.")]
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
            tracing::error!(%error, "the upstream stand-in stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), StandInError> {
    let settings = StandInSettings::from_env(&Environment::process())?;
    let pages = load_pages(&settings.fixtures_dir)?;
    if pages.is_empty() {
        tracing::warn!(dir = %settings.fixtures_dir.display(), "no recorded pull request pages found; every repository will list no open pull requests");
    }

    let port = settings.port;
    let listener = bind_loopback(port)
        .await
        .map_err(|source| StandInError::Bind { port, source })?;
    let address = listener.local_addr().map_err(StandInError::Serve)?;
    tracing::info!(
        %address,
        fixtures = %settings.fixtures_dir.display(),
        pages = pages.len(),
        "upstream stand-in listening for Nango, GitHub and Messages API requests"
    );

    let stand_in = StandIn::new(settings, format!("http://{address}"), pages);
    axum::serve(listener, stand_in.router())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(StandInError::Serve)?;
    tracing::info!("upstream stand-in stopped");
    Ok(())
}
