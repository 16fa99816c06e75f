//! Domain types: parsed once at the edge, trusted everywhere else.

mod analysis;
mod connection;
mod prompt;
mod pull_request;
mod repository;
mod user;

pub use analysis::{
    Analysis, AnalysisError, AnalysisId, AnalysisResult, AnalysisStatus, FailureCode, TokenUsage,
};
pub use connection::{ConnectionId, ConnectionIdError};
pub use prompt::{truncate_chars, DigestPrompt, PromptLimits, DATA_BLOCK_TAG};
pub use pull_request::{Label, PullRequest, PullRequestAuthor};
pub use repository::{RepositoryName, RepositoryNameError};
pub use user::{UserId, UserIdError};
