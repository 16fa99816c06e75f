//! Plays the frontend against the local gateway: opens a Nango connect
//! session, requests an analysis, polls it until it finishes, and prints the
//! result. Exits 0 only when the analysis succeeded.
//!
//! Environment: `API_BASE_URL` (default `http://127.0.0.1:3000`),
//! `DEMO_USER_ID` (sent as `x-user-id`, default `demo-user`),
//! `DEMO_CONNECTION_ID` (default `demo-connection`), `DEMO_REPO` (default
//! `demo-org/demo-repo`), `DEMO_TIMEOUT_SECONDS` (default 300, for the whole
//! run, since the first request to each function may compile it).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use pr_digest::api::DEV_USER_HEADER;
use pr_digest::config::{ConfigError, Environment};
use pr_digest::telemetry;
use reqwest::StatusCode;
use serde_json::{json, Value};
use url::Url;

const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("building the HTTP client failed: {0}")]
    HttpClient(reqwest::Error),
    #[error("{step} failed: {reason}")]
    Request { step: &'static str, reason: String },
    #[error("{step} returned HTTP {status}, expected {expected}: {body}")]
    UnexpectedStatus {
        step: &'static str,
        status: StatusCode,
        expected: StatusCode,
        body: String,
    },
    #[error("{step} returned a body without {field}: {body}")]
    InvalidResponse {
        step: &'static str,
        field: &'static str,
        body: String,
    },
    #[error("analysis {id} failed with {code}: {message}")]
    AnalysisFailed {
        id: String,
        code: String,
        message: String,
    },
    #[error("analysis {id} did not finish within {seconds} s (last status: {status}). Check that sqs-event-source is running.")]
    TimedOut {
        id: String,
        seconds: u64,
        status: String,
    },
}

struct Settings {
    api_base_url: Url,
    user_id: String,
    connection_id: String,
    repo: String,
    timeout: Duration,
}

impl Settings {
    fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let text = |name: &str, default: &str| env.get(name).unwrap_or_else(|| default.to_owned());
        let timeout_seconds: u64 =
            env.parsed_or("DEMO_TIMEOUT_SECONDS", 300, "a whole number of seconds")?;
        if timeout_seconds == 0 {
            return Err(ConfigError::Invalid {
                name: "DEMO_TIMEOUT_SECONDS",
                value: timeout_seconds.to_string(),
                expected: "a positive whole number of seconds",
            });
        }
        Ok(Self {
            api_base_url: env.url_or("API_BASE_URL", "http://127.0.0.1:3000")?,
            user_id: text("DEMO_USER_ID", "demo-user"),
            connection_id: text("DEMO_CONNECTION_ID", "demo-connection"),
            repo: text("DEMO_REPO", "demo-org/demo-repo"),
            timeout: Duration::from_secs(timeout_seconds),
        })
    }
}

/// A response's status and body, read as JSON where possible.
struct ApiResponse {
    status: StatusCode,
    text: String,
    json: Value,
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), DemoError> {
    let settings = Settings::from_env(&Environment::process())?;
    let deadline = Instant::now() + settings.timeout;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(settings.timeout)
        .build()
        .map_err(DemoError::HttpClient)?;
    let client = DemoClient { http, settings };

    println!("API: {}", client.settings.api_base_url);
    client.open_connect_session().await?;
    let status_url = client.request_analysis().await?;
    let analysis = client.wait_for_result(&status_url, deadline).await?;
    print_result(&analysis);

    match analysis["status"].as_str() {
        Some("succeeded") => Ok(()),
        _ => Err(DemoError::AnalysisFailed {
            id: text_field(&analysis, "id"),
            code: text_field(&analysis["error"], "code"),
            message: text_field(&analysis["error"], "message"),
        }),
    }
}

struct DemoClient {
    http: reqwest::Client,
    settings: Settings,
}

impl DemoClient {
    async fn send(
        &self,
        step: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<ApiResponse, DemoError> {
        let response = request
            .header(DEV_USER_HEADER, &self.settings.user_id)
            .send()
            .await
            .map_err(|error| DemoError::Request {
                step,
                reason: error.to_string(),
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|error| DemoError::Request {
            step,
            reason: error.to_string(),
        })?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(ApiResponse { status, text, json })
    }

    fn url(&self, path: &str) -> Result<Url, DemoError> {
        self.settings
            .api_base_url
            .join(path)
            .map_err(|error| DemoError::Request {
                step: "building a URL",
                reason: format!("{path:?} on {}: {error}", self.settings.api_base_url),
            })
    }

    /// `POST /api/nango-session`: prints that a token arrived, never the token.
    async fn open_connect_session(&self) -> Result<(), DemoError> {
        const STEP: &str = "POST /api/nango-session";
        let url = self.url("/api/nango-session")?;
        let response = self
            .send(STEP, self.http.post(url).json(&json!({})))
            .await?;
        expect_status(STEP, &response, StatusCode::CREATED)?;
        if response.json["token"].as_str().is_none_or(str::is_empty) {
            return Err(invalid(STEP, "token", &response));
        }
        let expires_at = response.json["expiresAt"]
            .as_str()
            .ok_or_else(|| invalid(STEP, "expiresAt", &response))?;
        println!("Connect session: token received (not shown), expires at {expires_at}");
        Ok(())
    }

    /// `POST /api/analyze-prs`: returns the status URL of the accepted analysis.
    async fn request_analysis(&self) -> Result<String, DemoError> {
        const STEP: &str = "POST /api/analyze-prs";
        let url = self.url("/api/analyze-prs")?;
        let body =
            json!({ "connectionId": self.settings.connection_id, "repo": self.settings.repo });
        let response = self.send(STEP, self.http.post(url).json(&body)).await?;
        expect_status(STEP, &response, StatusCode::ACCEPTED)?;
        let id = response.json["id"]
            .as_str()
            .ok_or_else(|| invalid(STEP, "id", &response))?;
        let status_url = response.json["statusUrl"]
            .as_str()
            .ok_or_else(|| invalid(STEP, "statusUrl", &response))?;
        println!(
            "Analysis of {} accepted: id {id}, status URL {status_url}",
            self.settings.repo
        );
        Ok(status_url.to_owned())
    }

    /// Polls the status URL every second until the analysis has finished or the deadline passes.
    async fn wait_for_result(
        &self,
        status_url: &str,
        deadline: Instant,
    ) -> Result<Value, DemoError> {
        const STEP: &str = "GET the analysis";
        let url = self.url(status_url)?;
        let mut last_status = String::new();
        loop {
            let response = self.send(STEP, self.http.get(url.clone())).await?;
            expect_status(STEP, &response, StatusCode::OK)?;
            let status = response.json["status"]
                .as_str()
                .ok_or_else(|| invalid(STEP, "status", &response))?;
            if status != last_status {
                println!("Status: {status}");
                last_status = status.to_owned();
            }
            if matches!(status, "succeeded" | "failed") {
                return Ok(response.json);
            }
            if Instant::now() + POLL_INTERVAL > deadline {
                return Err(DemoError::TimedOut {
                    id: text_field(&response.json, "id"),
                    seconds: self.settings.timeout.as_secs(),
                    status: last_status,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

fn expect_status(
    step: &'static str,
    response: &ApiResponse,
    expected: StatusCode,
) -> Result<(), DemoError> {
    if response.status == expected {
        return Ok(());
    }
    Err(DemoError::UnexpectedStatus {
        step,
        status: response.status,
        expected,
        body: response.text.clone(),
    })
}

fn invalid(step: &'static str, field: &'static str, response: &ApiResponse) -> DemoError {
    DemoError::InvalidResponse {
        step,
        field,
        body: response.text.clone(),
    }
}

fn text_field(value: &Value, name: &str) -> String {
    match &value[name] {
        Value::String(text) => text.clone(),
        Value::Null => String::from("-"),
        other => other.to_string(),
    }
}

fn print_result(analysis: &Value) {
    println!();
    println!("Final status: {}", text_field(analysis, "status"));
    println!("Repository:   {}", text_field(analysis, "repo"));
    println!("Attempts:     {}", text_field(analysis, "attempts"));
    println!("PR count:     {}", text_field(analysis, "prCount"));
    println!("Model:        {}", text_field(analysis, "model"));
    let usage = &analysis["usage"];
    if usage.is_object() {
        println!(
            "Usage:        {} input tokens, {} output tokens",
            text_field(usage, "inputTokens"),
            text_field(usage, "outputTokens")
        );
    }
    if let Some(summary) = analysis["summary"].as_str() {
        println!("Summary:\n{summary}");
    }
    if analysis["error"].is_object() {
        println!(
            "Error:        {}: {}",
            text_field(&analysis["error"], "code"),
            text_field(&analysis["error"], "message")
        );
    }
}
