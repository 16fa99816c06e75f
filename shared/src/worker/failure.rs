//! Sorting upstream errors into permanent failures and transient ones, with
//! the wait each upstream requests before the next try.

use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{AnalysisError, FailureCode};
use crate::upstream::anthropic::AnthropicError;
use crate::upstream::github::{GithubError, RateLimit};
use crate::upstream::nango::NangoError;
use crate::upstream::TransportError;

/// Minimum wait after Nango reports that it is backing off a failed refresh.
const NANGO_BACKOFF_WAIT: Duration = Duration::from_secs(30);
/// Minimum wait after a GitHub secondary rate limit without `retry-after`, doubled per delivery.
const GITHUB_SECONDARY_WAIT: Duration = Duration::from_secs(60);
/// Largest wait this worker derives from a GitHub rate limit.
const GITHUB_MAX_WAIT: Duration = Duration::from_secs(60 * 60);

/// The reason one attempt at an analysis produced no summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    pub error: AnalysisError,
    /// Whether a later try may succeed (timeouts, 5xx, 429, 529).
    pub transient: bool,
    /// The wait the upstream asked for, when it named one.
    pub retry_after: Option<Duration>,
}

impl AttemptFailure {
    pub fn permanent(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            error: AnalysisError {
                code,
                message: message.into(),
            },
            transient: false,
            retry_after: None,
        }
    }

    pub fn transient(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            error: AnalysisError {
                code,
                message: message.into(),
            },
            transient: true,
            retry_after: None,
        }
    }

    fn waiting(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Creates the failure of an attempt stopped before `step` because the Lambda deadline was too close.
    pub fn out_of_time(step: &str) -> Self {
        Self::transient(
            FailureCode::WorkerTimeout,
            format!("The worker ran out of time before {step}; the analysis will be retried."),
        )
    }

    /// Classifies a Nango error.
    pub fn from_nango(error: &NangoError) -> Self {
        use FailureCode::*;
        match error {
            NangoError::Transport(transport) => {
                transport_failure(transport, "Nango", NangoUnavailable)
            }
            NangoError::InvalidResponse { .. } => Self::transient(
                NangoUnavailable,
                "Nango returned a connection that could not be read.",
            ),
            NangoError::Rejected {
                status,
                code,
                message,
                retry_after_seconds,
            } => {
                let status = status.as_u16();
                let retry_after = retry_after_seconds.map(Duration::from_secs);
                let backing_off = message.to_ascii_lowercase().contains("backing off");
                match (status, code.as_str()) {
                    (404, _) => Self::permanent(
                        ConnectionNotFound,
                        "The GitHub connection was not found in Nango; connect GitHub again.",
                    ),
                    (400, "unknown_provider_config") => Self::permanent(
                        IntegrationUnknown,
                        "The configured Nango integration does not exist; the operator must fix NANGO_INTEGRATION_ID.",
                    ),
                    (424, "invalid_credentials") if backing_off => Self::transient(
                        NangoUnavailable,
                        "Nango is backing off after a failed token refresh; the analysis will be retried.",
                    )
                    .waiting(Some(retry_after.unwrap_or_default().max(NANGO_BACKOFF_WAIT))),
                    (400 | 424, "invalid_credentials") => Self::permanent(
                        ReconnectRequired,
                        "GitHub access was revoked or expired; reconnect GitHub and try again.",
                    ),
                    (429, _) => Self::transient(NangoUnavailable, "Nango's rate limit was reached; the analysis will be retried.")
                        .waiting(retry_after),
                    (500..=599, _) => Self::transient(
                        NangoUnavailable,
                        format!("Nango returned {status}; the analysis will be retried."),
                    )
                    .waiting(retry_after),
                    (401 | 403, _) => Self::permanent(
                        NangoRequestRejected,
                        format!("Nango rejected the service's secret key ({status}); the operator must fix it."),
                    ),
                    _ => Self::permanent(NangoRequestRejected, format!("Nango rejected the request ({status}).")),
                }
            }
        }
    }

    /// Classifies a GitHub error of the `delivery`-th delivery (1 for the first).
    pub fn from_github(error: &GithubError, delivery: u32) -> Self {
        use FailureCode::*;
        match error {
            GithubError::Transport(transport) => transport_failure(transport, "GitHub", GithubUnavailable),
            GithubError::BadCredentials => Self::permanent(
                ReconnectRequired,
                "GitHub rejected the connection's token; reconnect GitHub and try again.",
            ),
            GithubError::NotFound => Self::permanent(
                RepoNotFound,
                "The repository does not exist or is not visible to the connected GitHub account.",
            ),
            GithubError::Forbidden { .. } => Self::permanent(
                RepoAccessDenied,
                "GitHub refused access to this repository's pull requests for the connected account.",
            ),
            GithubError::RateLimited { limit, .. } => {
                Self::transient(GithubRateLimited, "GitHub's rate limit was reached; the analysis will be retried.")
                    .waiting(Some(github_rate_limit_wait(*limit, delivery)))
            }
            GithubError::Status { status, .. } if status.is_server_error() => Self::transient(
                GithubUnavailable,
                format!("GitHub returned {status}; the analysis will be retried."),
            ),
            GithubError::Status { status, .. } => {
                Self::permanent(GithubUnavailable, format!("GitHub rejected the request ({status})."))
            }
            GithubError::InvalidResponse(_) => {
                Self::transient(GithubUnavailable, "GitHub returned a pull request list that could not be read.")
            }
            GithubError::ForeignNextLink(_) => Self::permanent(
                GithubUnavailable,
                "GitHub's next-page link pointed at another host, so listing stopped.",
            ),
        }
    }

    /// Classifies a Messages API error.
    pub fn from_anthropic(error: &AnthropicError) -> Self {
        use FailureCode::*;
        match error {
            AnthropicError::Transport(transport) => {
                transport_failure(transport, "The model", ModelUnavailable)
            }
            AnthropicError::Api { retry_after_ms, .. } if error.is_transient() => Self::transient(
                ModelUnavailable,
                "The model is unavailable or overloaded; the analysis will be retried.",
            )
            .waiting(retry_after_ms.map(Duration::from_millis)),
            AnthropicError::Api {
                status, error_type, ..
            } => Self::permanent(
                ModelRequestRejected,
                format!("The model rejected the request ({status} {error_type})."),
            ),
            AnthropicError::InvalidResponse(_) => Self::transient(
                ModelUnavailable,
                "The model returned a body that could not be read.",
            ),
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

/// Returns how long GitHub asked to wait: until the primary limit resets, or
/// the secondary limit's `retry-after`, else 60 s doubled per delivery.
fn github_rate_limit_wait(limit: RateLimit, delivery: u32) -> Duration {
    let wait = match limit {
        RateLimit::Primary {
            reset_at: Some(reset_at),
        } => {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let seconds = i64::try_from(reset_at)
                .unwrap_or(i64::MAX)
                .saturating_sub(now)
                .max(1);
            Duration::from_secs(seconds.unsigned_abs())
        }
        RateLimit::Primary { reset_at: None } => GITHUB_SECONDARY_WAIT,
        RateLimit::Secondary {
            retry_after_seconds: Some(seconds),
        } => Duration::from_secs(seconds),
        RateLimit::Secondary {
            retry_after_seconds: None,
        } => GITHUB_SECONDARY_WAIT
            .saturating_mul(2u32.saturating_pow(delivery.saturating_sub(1).min(10))),
    };
    wait.min(GITHUB_MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_waits_follow_limits() {
        let reset_at = (OffsetDateTime::now_utc().unix_timestamp() + 120) as u64;
        let primary = github_rate_limit_wait(
            RateLimit::Primary {
                reset_at: Some(reset_at),
            },
            1,
        );
        assert!((118..=120).contains(&primary.as_secs()), "{primary:?}");
        let past = github_rate_limit_wait(RateLimit::Primary { reset_at: Some(1) }, 1);
        assert_eq!(past, Duration::from_secs(1));
        let secondary = RateLimit::Secondary {
            retry_after_seconds: None,
        };
        assert_eq!(
            github_rate_limit_wait(secondary, 1),
            Duration::from_secs(60)
        );
        assert_eq!(
            github_rate_limit_wait(secondary, 3),
            Duration::from_secs(240)
        );
        assert_eq!(github_rate_limit_wait(secondary, 30), GITHUB_MAX_WAIT);
        let told = RateLimit::Secondary {
            retry_after_seconds: Some(7),
        };
        assert_eq!(github_rate_limit_wait(told, 5), Duration::from_secs(7));
    }
}
