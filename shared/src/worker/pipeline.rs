//! One attempt at an analysis: token from Nango, pull requests from GitHub, digest from the model.

use secrecy::SecretString;

use super::retry::{with_retries, Deadline};
use super::{AttemptFailure, Worker};
use crate::domain::{Analysis, AnalysisResult, DigestPrompt, FailureCode, TokenUsage};
use crate::upstream::anthropic::MessageRequest;
use crate::upstream::github::PullRequestList;
use crate::upstream::nango::{Connection, Credentials, NangoError};

/// The summary stored when a repository has no open pull requests.
pub const NO_OPEN_PULL_REQUESTS: &str = "No open pull requests.";

impl Worker {
    pub(super) async fn run(
        &self,
        analysis: &Analysis,
        delivery: u32,
        deadline: Deadline,
    ) -> Result<AnalysisResult, AttemptFailure> {
        let token = self.fetch_token(analysis, false, deadline).await?;

        let list = match self
            .list_pull_requests(analysis, &token, delivery, deadline)
            .await
        {
            // GitHub returns 401 only for a bad token. Nango reported it valid, so ask once for a new one.
            Err(failure) if failure.error.code == FailureCode::ReconnectRequired => {
                tracing::warn!("GitHub rejected the token; asking Nango to refresh it");
                let token = self.fetch_token(analysis, true, deadline).await?;
                self.list_pull_requests(analysis, &token, delivery, deadline)
                    .await?
            }
            other => other?,
        };

        let pr_count = count(list.pull_requests.len());
        if list.more_available {
            tracing::warn!(
                max = self.github.max_pull_requests(),
                "repository has more open pull requests than MAX_PULL_REQUESTS; summarising the first ones"
            );
        }
        if list.pull_requests.is_empty() {
            return Ok(AnalysisResult {
                summary: NO_OPEN_PULL_REQUESTS.to_owned(),
                pr_count: 0,
                summarized_pr_count: 0,
                truncated: false,
                model: None,
                usage: TokenUsage::default(),
            });
        }

        let prompt = DigestPrompt::build(
            &analysis.repository,
            &list.pull_requests,
            self.config.prompt_limits,
        );
        let request = MessageRequest {
            system: prompt.system,
            user_message: prompt.user_message,
        };
        let budget = self.anthropic.timeout() + super::FINAL_WRITE_MARGIN;
        let message = with_retries(
            &self.config.retry,
            deadline,
            budget,
            "calling the model",
            || async {
                self.anthropic
                    .create_message(&request)
                    .await
                    .map_err(|error| {
                        tracing::warn!(%error, "the Messages API call failed");
                        AttemptFailure::from_anthropic(&error)
                    })
            },
        )
        .await?;

        if message.text.trim().is_empty() {
            tracing::warn!(
                anthropic_request_id = message.request_id.as_deref().unwrap_or("-"),
                stop_reason = message.stop_reason.as_deref().unwrap_or("-"),
                "the model returned no text"
            );
            return Err(AttemptFailure::permanent(
                FailureCode::ModelEmptyResponse,
                "The model returned no text; request a new analysis.",
            ));
        }

        Ok(AnalysisResult {
            summary: message.text,
            pr_count,
            summarized_pr_count: count(prompt.included_pull_requests),
            truncated: message.stop_reason.as_deref() == Some("max_tokens"),
            model: Some(message.model),
            usage: message.usage,
        })
    }

    /// Lists pull requests, retrying short transient failures.
    async fn list_pull_requests(
        &self,
        analysis: &Analysis,
        token: &SecretString,
        delivery: u32,
        deadline: Deadline,
    ) -> Result<PullRequestList, AttemptFailure> {
        let budget = self.github.timeout() + super::FINAL_WRITE_MARGIN;
        with_retries(
            &self.config.retry,
            deadline,
            budget,
            "listing pull requests",
            || async {
                self.github
                    .list_open_pull_requests(&analysis.repository, token)
                    .await
                    .map_err(|error| {
                        tracing::warn!(%error, "listing pull requests failed");
                        AttemptFailure::from_github(&error, delivery)
                    })
            },
        )
        .await
    }

    async fn fetch_token(
        &self,
        analysis: &Analysis,
        force_refresh: bool,
        deadline: Deadline,
    ) -> Result<SecretString, AttemptFailure> {
        let budget = self.nango.timeout() + super::FINAL_WRITE_MARGIN;
        let connection = with_retries(
            &self.config.retry,
            deadline,
            budget,
            "reading the Nango connection",
            || async {
                self.read_connection(analysis, force_refresh)
                    .await
                    .map_err(|error| {
                        tracing::warn!(
                            nango_status = error.status().map(|s| s.as_u16()),
                            nango_code = error.code().unwrap_or("-"),
                            %error,
                            "reading the Nango connection failed"
                        );
                        AttemptFailure::from_nango(&error)
                    })
            },
        )
        .await?;

        // The API checked the owner when it accepted the analysis; Nango's tags are
        // checked again here because they may have changed since.
        if connection.owner() != Some(analysis.owner.as_str()) {
            tracing::warn!("the connection no longer belongs to the analysis owner");
            return Err(AttemptFailure::permanent(
                FailureCode::ConnectionNotFound,
                "The GitHub connection does not belong to you. Connect GitHub again.",
            ));
        }

        match connection.credentials {
            Credentials::Token(token) => Ok(token),
            Credentials::Unsupported(kind) => {
                tracing::warn!(credentials_type = %kind, "connection has no usable GitHub token");
                Err(AttemptFailure::permanent(
                    FailureCode::UnsupportedCredentials,
                    format!("The connection's credentials ({kind}) carry no GitHub token; connect GitHub with OAuth, a GitHub App or a token."),
                ))
            }
        }
    }

    async fn read_connection(
        &self,
        analysis: &Analysis,
        force_refresh: bool,
    ) -> Result<Connection, NangoError> {
        if force_refresh {
            self.nango
                .get_connection_with_new_token(&analysis.connection_id)
                .await
        } else {
            self.nango.get_connection(&analysis.connection_id).await
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
