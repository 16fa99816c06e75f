//! An analysis: one request to summarise a repository's open pull requests,
//! from acceptance to its final status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ConnectionId, RepositoryName, UserId};

/// An unguessable analysis id: a random (version 4) UUID, 122 random bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnalysisId(uuid::Uuid);

impl AnalysisId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses an id from a path or a queue message; only the hyphenated
    /// lowercase form that [`AnalysisId::generate`] produces is accepted.
    pub fn parse(input: &str) -> Option<Self> {
        let id = uuid::Uuid::parse_str(input).ok()?;
        (id.hyphenated().to_string() == input).then_some(Self(id))
    }
}

impl fmt::Display for AnalysisId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// The stage an analysis has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisStatus {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
}

impl AnalysisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Whether the analysis has its final status and must not change again.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

impl FromStr for AnalysisStatus {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "retrying" => Ok(Self::Retrying),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown analysis status {other:?}")),
        }
    }
}

/// The reason an analysis failed, or its last attempt did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// The analysis could not be put on the queue.
    EnqueueFailed,
    /// Nango has no connection with this id for the configured integration.
    ConnectionNotFound,
    /// Nango does not know the configured integration id.
    IntegrationUnknown,
    /// The user's GitHub grant was revoked or cannot be refreshed.
    ReconnectRequired,
    /// The connection's credentials contain no GitHub token.
    UnsupportedCredentials,
    /// GitHub returned 404: the repository is missing or not visible to the token.
    RepoNotFound,
    /// GitHub refused access to the repository for this token.
    RepoAccessDenied,
    /// GitHub's rate limit was exhausted.
    GithubRateLimited,
    /// GitHub failed or returned an unusable response.
    GithubUnavailable,
    /// Nango failed or returned an unusable response.
    NangoUnavailable,
    /// Nango rejected the request, for example the service's secret key.
    NangoRequestRejected,
    /// The Messages API was overloaded, rate limited or failing.
    ModelUnavailable,
    /// The Messages API rejected the request (bad request, key, model or size).
    ModelRequestRejected,
    /// The model returned no text.
    ModelEmptyResponse,
    /// An upstream did not respond in time.
    UpstreamTimeout,
    /// The worker's invocation ran out of time before the next step.
    WorkerTimeout,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnqueueFailed => "enqueue_failed",
            Self::ConnectionNotFound => "connection_not_found",
            Self::IntegrationUnknown => "integration_unknown",
            Self::ReconnectRequired => "reconnect_required",
            Self::UnsupportedCredentials => "unsupported_credentials",
            Self::RepoNotFound => "repo_not_found",
            Self::RepoAccessDenied => "repo_access_denied",
            Self::GithubRateLimited => "github_rate_limited",
            Self::GithubUnavailable => "github_unavailable",
            Self::NangoUnavailable => "nango_unavailable",
            Self::NangoRequestRejected => "nango_request_rejected",
            Self::ModelUnavailable => "model_unavailable",
            Self::ModelRequestRejected => "model_request_rejected",
            Self::ModelEmptyResponse => "model_empty_response",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::WorkerTimeout => "worker_timeout",
        }
    }
}

impl FromStr for FailureCode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(value.to_owned()))
            .map_err(|_| format!("unknown failure code {value:?}"))
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of a failed analysis, or of the last attempt of a retrying one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisError {
    pub code: FailureCode,
    /// A message for the user; it never contains a token, key or upstream body.
    pub message: String,
}

/// Token counts reported by the Messages API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The result of a succeeded analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisResult {
    pub summary: String,
    /// Open pull requests read from GitHub.
    pub pr_count: u32,
    /// Pull requests included in the prompt.
    pub summarized_pr_count: u32,
    /// Whether the model stopped at its output limit, so the summary is cut off.
    pub truncated: bool,
    /// The model that wrote the summary; `None` when no model call was needed.
    pub model: Option<String>,
    pub usage: TokenUsage,
}

/// An analysis as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub id: AnalysisId,
    pub owner: UserId,
    pub repository: RepositoryName,
    pub connection_id: ConnectionId,
    pub status: AnalysisStatus,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Attempts the worker has started.
    pub attempts: u32,
    /// Earliest time of the next attempt while the analysis is `retrying`.
    pub next_attempt_at: Option<OffsetDateTime>,
    pub result: Option<AnalysisResult>,
    pub error: Option<AnalysisError>,
}

impl Analysis {
    /// Creates a queued analysis with a fresh id.
    pub fn new(
        owner: UserId,
        repository: RepositoryName,
        connection_id: ConnectionId,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: AnalysisId::generate(),
            owner,
            repository,
            connection_id,
            status: AnalysisStatus::Queued,
            created_at: now,
            updated_at: now,
            attempts: 0,
            next_attempt_at: None,
            result: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_id_round_trips() {
        let id = AnalysisId::generate();
        assert_eq!(AnalysisId::parse(&id.to_string()), Some(id));
    }

    #[test]
    fn analysis_id_rejects_other_forms() {
        let id = AnalysisId::generate().to_string();
        assert_eq!(AnalysisId::parse(&id.to_uppercase()), None);
        assert_eq!(AnalysisId::parse(&id.replace('-', "")), None);
        assert_eq!(AnalysisId::parse("../x"), None);
        assert_eq!(AnalysisId::parse(""), None);
    }

    #[test]
    fn failure_code_round_trips() {
        for code in [
            FailureCode::EnqueueFailed,
            FailureCode::RepoNotFound,
            FailureCode::UpstreamTimeout,
        ] {
            assert_eq!(code.as_str().parse::<FailureCode>(), Ok(code));
        }
        assert!("nope".parse::<FailureCode>().is_err());
    }

    #[test]
    fn status_finished_only_at_end() {
        assert!(AnalysisStatus::Succeeded.is_finished());
        assert!(AnalysisStatus::Failed.is_finished());
        assert!(!AnalysisStatus::Retrying.is_finished());
        assert_eq!(
            "running".parse::<AnalysisStatus>(),
            Ok(AnalysisStatus::Running)
        );
    }
}
