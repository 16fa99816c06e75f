//! One HTTP server in place of Nango, GitHub and the Anthropic Messages API,
//! so the whole stack runs without network access or real keys.
//!
//! Each upstream checks the credentials and headers that the real service
//! requires, and responds in the real service's shape:
//! - Nango: connect sessions, and connections that contain a fixed GitHub token.
//! - GitHub: pull request pages replayed from recorded responses.
//! - Messages API: a text that lists the pull requests of the prompt, written
//!   without calling a model.

mod anthropic;
pub mod fixtures;
mod github;
mod nango;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pr_digest::config::{ConfigError, Environment};
use serde_json::json;

pub use anthropic::{parse_pull_request_block, simulated_summary, PullRequestLine};
pub use fixtures::RecordedPage;

/// The stand-in's credentials, ids and data, read from `STAND_IN_*` variables.
///
/// It has no `Debug`, so the keys cannot end up in a log line.
pub struct StandInSettings {
    pub port: u16,
    /// The key Nango callers must send as `Authorization: Bearer …`.
    pub nango_secret_key: String,
    /// The only integration id (provider config key) that the Nango stand-in accepts.
    pub integration_id: String,
    /// The `end_user_id` tag of every connection.
    pub end_user_id: String,
    /// The GitHub token in every connection, and the only one GitHub accepts.
    pub github_token: String,
    /// The key Messages API callers must send as `x-api-key`.
    pub anthropic_api_key: String,
    /// The directory of recorded GitHub responses replayed as pull request pages.
    pub fixtures_dir: PathBuf,
}

impl StandInSettings {
    /// Reads the settings. Unset values take the demo defaults that `stack.sh demo` also uses.
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let text = |name: &str, default: &str| env.get(name).unwrap_or_else(|| default.to_owned());
        Ok(Self {
            port: env.parsed_or("STAND_IN_PORT", 4010, "a TCP port number")?,
            nango_secret_key: text("STAND_IN_NANGO_SECRET_KEY", "demo-nango-secret-key"),
            integration_id: text("STAND_IN_INTEGRATION_ID", "github"),
            end_user_id: text("STAND_IN_END_USER_ID", "demo-user"),
            github_token: text("STAND_IN_GITHUB_TOKEN", "demo-github-token"),
            anthropic_api_key: text("STAND_IN_ANTHROPIC_API_KEY", "demo-anthropic-api-key"),
            fixtures_dir: env
                .get("DEMO_GITHUB_FIXTURES")
                .map_or_else(default_fixtures_dir, PathBuf::from),
        })
    }
}

/// Returns the directory of the project's own sample pull requests, `infra/local/demo-data/github`.
pub fn default_fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo-data/github")
}

/// The state shared by every handler.
pub struct StandIn {
    settings: StandInSettings,
    /// The stand-in's own origin, used in connect links and `link` headers.
    base_url: String,
    pages: Vec<RecordedPage>,
}

impl StandIn {
    /// Creates the state, where `base_url` is the origin the stand-in is reachable at.
    pub fn new(settings: StandInSettings, base_url: String, pages: Vec<RecordedPage>) -> Self {
        Self {
            settings,
            base_url: base_url.trim_end_matches('/').to_owned(),
            pages,
        }
    }

    /// Builds the router of all three upstreams.
    pub fn router(self) -> Router {
        Router::new()
            .route("/connect/sessions", post(nango::create_connect_session))
            .route("/connections/{connection_id}", get(nango::get_connection))
            .route("/connection/{connection_id}", get(nango::get_connection))
            .route("/repos/{owner}/{repo}/pulls", get(github::list_repo_pulls))
            .route(
                "/repositories/{repository_id}/pulls",
                get(github::list_repository_id_pulls),
            )
            .route("/v1/messages", post(anthropic::create_message))
            .fallback(not_found)
            .layer(middleware::from_fn(log_request))
            .with_state(Arc::new(self))
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "message": "Not Found: the local stand-in serves only the Nango, GitHub and Messages API paths that pr-digest calls" })),
    )
        .into_response()
}

/// Logs method, path and status of every request. Headers and query, which may carry keys, stay out.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis(),
        "request served"
    );
    response
}

/// Returns `len` random lowercase hex digits.
fn random_hex(len: usize) -> String {
    let mut hex = String::with_capacity(len + 32);
    while hex.len() < len {
        hex.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    hex.truncate(len);
    hex
}

/// Reads a header as text, if present and visible ASCII.
fn header_text<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_requested_length() {
        for len in [0, 1, 24, 32, 64] {
            let hex = random_hex(len);
            assert_eq!(hex.len(), len);
            assert!(
                hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{hex}"
            );
        }
    }

    #[test]
    fn default_fixtures_dir_exists() {
        assert!(default_fixtures_dir().join("open-prs.json").is_file());
    }
}
