//! Logging set-up: JSON lines inside Lambda (CloudWatch), readable text elsewhere,
//! always on stderr so a command's stdout stays its output. `LOG_FORMAT=json|text`
//! overrides the choice of format.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber; `RUST_LOG` sets the filter (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
    };

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    if json {
        // CloudWatch adds its own timestamp to every line.
        let _ = builder.json().flatten_event(true).without_time().try_init();
    } else {
        let _ = builder.try_init();
    }
}
