//! One attempt at an analysis: token from Nango, pull requests from GitHub, digest from the model.

use secrecy::SecretString;

use super::{AttemptFailure, Worker};
use crate::domain::{Analysis, AnalysisResult, DigestPrompt, FailureCode, TokenUsage};
use crate::upstream::anthropic::MessageRequest;
use crate::upstream::nango::Credentials;

/// The summary stored when a repository has no open pull requests.
pub const NO_OPEN_PULL_REQUESTS: &str = "No open pull requests.";

impl Worker {
    pub(super) async fn run(&self, analysis: &Analysis) -> Result<AnalysisResult, AttemptFailure> {
        let token = self.fetch_token(analysis).await?;

        let list = self
            .github
            .list_open_pull_requests(&analysis.repository, &token)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "listing pull requests failed");
                AttemptFailure::from(&error)
            })?;
        let pr_count = count(list.pull_requests.len());
        if list.more_available {
            tracing::warn!(max = self.github.max_pull_requests(), "repository has more open pull requests than MAX_PULL_REQUESTS; summarising the first ones");
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
        let message = self
            .anthropic
            .create_message(&request)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "the Messages API call failed");
                AttemptFailure::from(&error)
            })?;

        if message.text.trim().is_empty() {
            tracing::warn!(
                anthropic_request_id = message.request_id.as_deref().unwrap_or("-"),
                stop_reason = message.stop_reason.as_deref().unwrap_or("-"),
                "the model answered without text"
            );
            return Err(AttemptFailure::permanent(
                FailureCode::ModelEmptyResponse,
                "The model answered without any text.",
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

    async fn fetch_token(&self, analysis: &Analysis) -> Result<SecretString, AttemptFailure> {
        let connection = self.nango.get_connection(&analysis.connection_id).await.map_err(|error| {
            tracing::warn!(nango_status = error.status().map(|s| s.as_u16()), nango_code = error.code().unwrap_or("-"), %error, "reading the Nango connection failed");
            AttemptFailure::from(&error)
        })?;

        // TODO: check that the connection's `tags.end_user_id` (or `end_user.id`) is the
        // analysis owner before using its token. Until then, a caller who knows another
        // user's connection id can have that user's repositories read.
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
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
