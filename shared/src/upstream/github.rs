//! GitHub REST client: lists a repository's open pull requests, page by page.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{build_http_client, header_str, TransportError};
use crate::config::GithubConfig;
use crate::domain::{PullRequest, RepositoryName};

const API_VERSION: &str = "2022-11-28";
const PAGE_SIZE: &str = "100";

/// Open pull requests read from GitHub.
#[derive(Debug)]
pub struct PullRequestList {
    pub pull_requests: Vec<PullRequest>,
    /// Whether GitHub has more open pull requests than the configured maximum.
    pub more_available: bool,
}

/// How long GitHub asked the caller to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// The primary limit: wait until this time, in Unix seconds.
    Primary { reset_at: Option<u64> },
    /// A secondary limit: wait this many seconds, when GitHub sends `retry-after`.
    Secondary { retry_after_seconds: Option<u64> },
}

/// A failed GitHub call.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub request failed: {0}")]
    Transport(#[from] TransportError),
    #[error("GitHub rejected the token (401)")]
    BadCredentials,
    #[error("repository not found, or not visible to this token (404)")]
    NotFound,
    #[error("GitHub refused access (403): {message}")]
    Forbidden { message: String },
    #[error("GitHub rate limit reached ({status})")]
    RateLimited {
        status: StatusCode,
        limit: RateLimit,
    },
    #[error("GitHub returned {status}: {message}")]
    Status { status: StatusCode, message: String },
    #[error("GitHub returned a list that could not be read: {0}")]
    InvalidResponse(String),
    #[error("GitHub's next-page link points outside the configured API ({0})")]
    ForeignNextLink(String),
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

/// A client of the GitHub REST API (github.com or GitHub Enterprise Server).
#[derive(Debug, Clone)]
pub struct GithubClient {
    http: reqwest::Client,
    config: GithubConfig,
}

impl GithubClient {
    pub fn new(config: GithubConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: build_http_client(config.timeouts)?,
            config,
        })
    }

    /// Returns the total timeout of one call.
    pub fn timeout(&self) -> std::time::Duration {
        self.config.timeouts.total
    }

    pub fn max_pull_requests(&self) -> usize {
        self.config.max_pull_requests
    }

    /// Lists open pull requests, following `rel="next"` links verbatim until
    /// the last page or the configured maximum. The HTTP client follows
    /// redirects, such as the 301 of a renamed repository.
    pub async fn list_open_pull_requests(
        &self,
        repository: &RepositoryName,
        token: &SecretString,
    ) -> Result<PullRequestList, GithubError> {
        let max = self.config.max_pull_requests;
        let mut pull_requests = Vec::new();
        let mut next_url = Some(self.first_page_url(repository));

        while let Some(url) = next_url.take() {
            let page = self.fetch_page(url, token).await?;
            pull_requests.extend(page.pull_requests);
            next_url = page.next_url;

            if pull_requests.len() >= max {
                break;
            }
        }

        let more_available = pull_requests.len() > max || next_url.is_some();
        pull_requests.truncate(max);
        Ok(PullRequestList {
            pull_requests,
            more_available,
        })
    }

    fn first_page_url(&self, repository: &RepositoryName) -> Url {
        let mut url = self.config.api_url.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        // Owner and name are limited to URL-safe characters by `RepositoryName::parse`.
        url.set_path(&format!(
            "{base_path}/repos/{}/{}/pulls",
            repository.owner(),
            repository.name()
        ));
        url.query_pairs_mut()
            .append_pair("state", "open")
            .append_pair("per_page", PAGE_SIZE);
        url
    }

    async fn fetch_page(&self, url: Url, token: &SecretString) -> Result<Page, GithubError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose_secret())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .send()
            .await
            .map_err(TransportError::from)?;

        let status = response.status();
        let request_id = header_str(response.headers(), "x-github-request-id")
            .unwrap_or("-")
            .to_owned();
        tracing::debug!(%status, github_request_id = %request_id, "GitHub returned a pull request page");

        if !status.is_success() {
            let error = rejection(response).await;
            tracing::warn!(%status, github_request_id = %request_id, error = %error, "GitHub rejected a pull request page");
            return Err(error);
        }

        let next_url = match header_str(response.headers(), "link").and_then(next_link) {
            Some(link) => Some(self.check_same_origin(link)?),
            None => None,
        };
        let bytes = response.bytes().await.map_err(TransportError::from)?;
        let pull_requests: Vec<PullRequest> = serde_json::from_slice(&bytes)
            .map_err(|error| GithubError::InvalidResponse(error.to_string()))?;
        Ok(Page {
            pull_requests,
            next_url,
        })
    }

    /// Rejects a next-page link on another origin, which would receive the user's token.
    fn check_same_origin(&self, link: &str) -> Result<Url, GithubError> {
        let url = Url::parse(link)
            .map_err(|_| GithubError::InvalidResponse(format!("invalid next link {link:?}")))?;
        if url.origin() != self.config.api_url.origin() {
            return Err(GithubError::ForeignNextLink(
                url.origin().ascii_serialization(),
            ));
        }
        Ok(url)
    }
}

struct Page {
    pull_requests: Vec<PullRequest>,
    next_url: Option<Url>,
}

/// Finds the `rel="next"` target in a `link` header.
fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|param| matches!(param.trim(), "rel=\"next\"" | "rel=next"));
        if !is_next {
            return None;
        }
        target.trim().strip_prefix('<')?.strip_suffix('>')
    })
}

async fn rejection(response: reqwest::Response) -> GithubError {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .unwrap_or_default()
        .message;

    let remaining = header_str(&headers, "x-ratelimit-remaining").map(str::trim);
    let reset_at = header_str(&headers, "x-ratelimit-reset").and_then(|v| v.trim().parse().ok());
    let retry_after_seconds =
        header_str(&headers, "retry-after").and_then(|v| v.trim().parse().ok());
    let limited_status = status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS;

    if limited_status && remaining == Some("0") {
        return GithubError::RateLimited {
            status,
            limit: RateLimit::Primary { reset_at },
        };
    }
    if limited_status
        && message
            .to_ascii_lowercase()
            .contains("secondary rate limit")
    {
        return GithubError::RateLimited {
            status,
            limit: RateLimit::Secondary {
                retry_after_seconds,
            },
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return GithubError::RateLimited {
            status,
            limit: RateLimit::Secondary {
                retry_after_seconds,
            },
        };
    }

    match status {
        StatusCode::UNAUTHORIZED => GithubError::BadCredentials,
        StatusCode::NOT_FOUND => GithubError::NotFound,
        StatusCode::FORBIDDEN => GithubError::Forbidden { message },
        _ => GithubError::Status { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_finds_next() {
        let header = r#"<https://api.github.com/repositories/1/pulls?state=closed&page=2>; rel="next", <https://api.github.com/repositories/1/pulls?state=closed&page=9>; rel="last""#;
        assert_eq!(
            next_link(header),
            Some("https://api.github.com/repositories/1/pulls?state=closed&page=2")
        );
    }

    #[test]
    fn next_link_absent_on_last_page() {
        let header = r#"<https://api.github.com/x?page=1>; rel="first", <https://api.github.com/x?page=2>; rel="prev""#;
        assert_eq!(next_link(header), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("garbage"), None);
    }
}
