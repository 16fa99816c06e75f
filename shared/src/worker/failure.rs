//! Sorting upstream errors into permanent failures and transient ones worth another attempt.

use crate::domain::{AnalysisError, FailureCode};
use crate::upstream::anthropic::AnthropicError;
use crate::upstream::github::GithubError;
use crate::upstream::nango::NangoError;
use crate::upstream::TransportError;

/// The reason one attempt at an analysis produced no summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    pub error: AnalysisError,
    /// Whether a later attempt may succeed (timeouts, 5xx, 429, 529).
    pub transient: bool,
}

impl AttemptFailure {
    pub fn permanent(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            error: AnalysisError {
                code,
                message: message.into(),
            },
            transient: false,
        }
    }

    pub fn transient(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            error: AnalysisError {
                code,
                message: message.into(),
            },
            transient: true,
        }
    }
}

fn transport_failure(error: &TransportError, upstream: &str, code: FailureCode) -> AttemptFailure {
    match error {
        TransportError::Timeout => AttemptFailure::transient(
            FailureCode::UpstreamTimeout,
            format!("{upstream} did not answer in time."),
        ),
        _ => AttemptFailure::transient(code, format!("{upstream} could not be reached.")),
    }
}

impl From<&NangoError> for AttemptFailure {
    fn from(error: &NangoError) -> Self {
        use FailureCode::*;
        match error {
            NangoError::Transport(transport) => {
                transport_failure(transport, "Nango", NangoUnavailable)
            }
            NangoError::InvalidResponse { .. } => AttemptFailure::transient(
                NangoUnavailable,
                "Nango answered a connection that could not be read.",
            ),
            NangoError::Rejected {
                status,
                code,
                message,
                ..
            } => {
                let status = status.as_u16();
                let backing_off = message.to_ascii_lowercase().contains("backing off");
                match (status, code.as_str()) {
                    (404, _) => AttemptFailure::permanent(
                        ConnectionNotFound,
                        "The GitHub connection was not found in Nango; connect GitHub again.",
                    ),
                    (400, "unknown_provider_config") => AttemptFailure::permanent(
                        IntegrationUnknown,
                        "The configured Nango integration does not exist; the operator must fix NANGO_INTEGRATION_ID.",
                    ),
                    (424, "invalid_credentials") if backing_off => AttemptFailure::transient(
                        NangoUnavailable,
                        "Nango is backing off after a failed token refresh; the analysis will be retried.",
                    ),
                    (400 | 424, "invalid_credentials") => AttemptFailure::permanent(
                        ReconnectRequired,
                        "GitHub access was revoked or expired; reconnect GitHub and try again.",
                    ),
                    (429, _) | (500..=599, _) => {
                        AttemptFailure::transient(NangoUnavailable, format!("Nango answered {status}; the analysis will be retried."))
                    }
                    _ => AttemptFailure::permanent(NangoUnavailable, format!("Nango rejected the request ({status}).")),
                }
            }
        }
    }
}

impl From<&GithubError> for AttemptFailure {
    fn from(error: &GithubError) -> Self {
        use FailureCode::*;
        match error {
            GithubError::Transport(transport) => transport_failure(transport, "GitHub", GithubUnavailable),
            GithubError::BadCredentials => AttemptFailure::permanent(
                ReconnectRequired,
                "GitHub rejected the connection's token; reconnect GitHub and try again.",
            ),
            GithubError::NotFound => AttemptFailure::permanent(
                RepoNotFound,
                "The repository does not exist or is not visible to the connected GitHub account.",
            ),
            GithubError::Forbidden { .. } => AttemptFailure::permanent(
                RepoAccessDenied,
                "GitHub refused access to this repository's pull requests for the connected account.",
            ),
            GithubError::RateLimited { .. } => {
                AttemptFailure::transient(GithubRateLimited, "GitHub's rate limit was reached; the analysis will be retried.")
            }
            GithubError::Status { status, .. } if status.is_server_error() => {
                AttemptFailure::transient(GithubUnavailable, format!("GitHub answered {status}; the analysis will be retried."))
            }
            GithubError::Status { status, .. } => {
                AttemptFailure::permanent(GithubUnavailable, format!("GitHub rejected the request ({status})."))
            }
            GithubError::InvalidResponse(_) => {
                AttemptFailure::transient(GithubUnavailable, "GitHub answered a pull request list that could not be read.")
            }
            GithubError::ForeignNextLink(_) => AttemptFailure::permanent(
                GithubUnavailable,
                "GitHub's next-page link pointed at another host, so listing stopped.",
            ),
        }
    }
}

impl From<&AnthropicError> for AttemptFailure {
    fn from(error: &AnthropicError) -> Self {
        use FailureCode::*;
        match error {
            AnthropicError::Transport(transport) => {
                transport_failure(transport, "The model", ModelUnavailable)
            }
            _ if error.is_transient() => AttemptFailure::transient(
                ModelUnavailable,
                "The model is unavailable or overloaded; the analysis will be retried.",
            ),
            AnthropicError::Api {
                status, error_type, ..
            } => AttemptFailure::permanent(
                ModelRequestRejected,
                format!("The model rejected the request ({status} {error_type})."),
            ),
            AnthropicError::InvalidResponse(_) => AttemptFailure::permanent(
                ModelUnavailable,
                "The model answered a body that could not be read.",
            ),
        }
    }
}
