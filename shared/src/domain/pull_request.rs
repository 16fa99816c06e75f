//! The fields of a GitHub pull request that a summary needs.

use serde::Deserialize;

/// An open pull request as listed by `GET /repos/{owner}/{repo}/pulls`.
///
/// `user` and `body` may be null, and `draft` is absent on servers older
/// than the draft feature, so those fields are optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
    #[serde(default)]
    pub user: Option<PullRequestAuthor>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub draft: Option<bool>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestAuthor {
    pub login: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    pub name: String,
}

impl PullRequest {
    /// Returns the author's login, or `ghost` (GitHub's name for a deleted account) when absent.
    pub fn author(&self) -> &str {
        self.user
            .as_ref()
            .map_or("ghost", |user| user.login.as_str())
    }

    pub fn is_draft(&self) -> bool {
        self.draft.unwrap_or(false)
    }
}
