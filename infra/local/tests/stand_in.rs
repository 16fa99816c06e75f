//! The upstream stand-in, called through pr-digest's own Nango, GitHub and
//! Messages API clients, so the stand-in and the clients agree on the contracts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use local_stack::server::bind_loopback;
use local_stack::stand_in::fixtures::load_pages;
use local_stack::stand_in::{default_fixtures_dir, StandIn, StandInSettings};
use pr_digest::config::{AnthropicConfig, GithubConfig, HttpTimeouts, NangoConfig};
use pr_digest::domain::{ConnectionId, DigestPrompt, PromptLimits, RepositoryName, UserId};
use pr_digest::upstream::anthropic::{AnthropicClient, AnthropicError, MessageRequest};
use pr_digest::upstream::github::{GithubClient, GithubError};
use pr_digest::upstream::nango::{Credentials, NangoClient, NangoError};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

const NANGO_KEY: &str = "test-nango-key";
const GITHUB_TOKEN: &str = "test-github-token";
const ANTHROPIC_KEY: &str = "test-anthropic-key";

const TIMEOUTS: HttpTimeouts = HttpTimeouts {
    connect: Duration::from_secs(2),
    total: Duration::from_secs(10),
};

/// Starts a stand-in on a free port serving the pages in `fixtures_dir`, and returns its base URL.
async fn start(fixtures_dir: PathBuf) -> Url {
    let listener = bind_loopback(0).await.expect("a free loopback port");
    let address = listener.local_addr().expect("a bound address");
    let settings = StandInSettings {
        port: address.port(),
        nango_secret_key: NANGO_KEY.into(),
        integration_id: "github".into(),
        end_user_id: "user-1".into(),
        github_token: GITHUB_TOKEN.into(),
        anthropic_api_key: ANTHROPIC_KEY.into(),
        fixtures_dir: fixtures_dir.clone(),
    };
    let pages = load_pages(&fixtures_dir).expect("fixtures load");
    let base_url = format!("http://{address}");
    let router = StandIn::new(settings, base_url.clone(), pages).router();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the stand-in serves");
    });
    Url::parse(&base_url).expect("a valid URL")
}

fn nango(base_url: &Url, key: &str, integration_id: &str) -> NangoClient {
    NangoClient::new(NangoConfig {
        base_url: base_url.clone(),
        secret_key: SecretString::from(key.to_owned()),
        integration_id: integration_id.into(),
        timeouts: TIMEOUTS,
    })
    .expect("client builds")
}

fn github(base_url: &Url) -> GithubClient {
    GithubClient::new(GithubConfig {
        api_url: base_url.clone(),
        max_pull_requests: 1000,
        timeouts: TIMEOUTS,
    })
    .expect("client builds")
}

fn anthropic(base_url: &Url, key: &str) -> AnthropicClient {
    AnthropicClient::new(AnthropicConfig {
        base_url: base_url.clone(),
        api_key: SecretString::from(key.to_owned()),
        model: "claude-test-model".into(),
        max_tokens: 2048,
        timeouts: TIMEOUTS,
    })
    .expect("client builds")
}

fn repository(name: &str) -> RepositoryName {
    RepositoryName::parse(name).expect("a valid repository name")
}

fn token() -> SecretString {
    SecretString::from(GITHUB_TOKEN.to_owned())
}

/// Writes the demo page three times into a fresh directory, so it serves three pages.
fn three_page_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("local-stack-pages-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let demo =
        std::fs::read_to_string(default_fixtures_dir().join("open-prs.json")).expect("demo data");
    for name in ["a.json", "b.json", "c.json"] {
        std::fs::write(dir.join(name), &demo).expect("fixture written");
    }
    std::fs::write(
        dir.join("redirect.json"),
        r#"{"status":301,"headers":{},"body":{"message":"Moved Permanently"}}"#,
    )
    .expect("fixture written");
    dir
}

fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn nango_session_created() {
    let base_url = start(default_fixtures_dir()).await;
    let user = UserId::parse("user-1").expect("valid user");

    let session = nango(&base_url, NANGO_KEY, "github")
        .create_connect_session(&user)
        .await
        .expect("a session");

    let token = session.token.expose_secret();
    let hex = token
        .strip_prefix("nango_connect_session_")
        .expect("token prefix");
    assert_eq!(hex.len(), 64);
    let remaining = session.expires_at - time::OffsetDateTime::now_utc();
    assert!(remaining > time::Duration::minutes(29), "{remaining}");
    assert!(remaining <= time::Duration::minutes(30), "{remaining}");
}

#[tokio::test]
async fn nango_rejects_wrong_key() {
    let base_url = start(default_fixtures_dir()).await;
    let user = UserId::parse("user-1").expect("valid user");

    let error = nango(&base_url, "wrong", "github")
        .create_connect_session(&user)
        .await
        .expect_err("rejected");

    assert_eq!(error.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(error.code(), Some("unknown_account"));
}

#[tokio::test]
async fn nango_rejects_unknown_integration() {
    let base_url = start(default_fixtures_dir()).await;
    let user = UserId::parse("user-1").expect("valid user");
    let client = nango(&base_url, NANGO_KEY, "gitlab");

    let error = client
        .create_connect_session(&user)
        .await
        .expect_err("allowed_integrations rejected");
    assert_eq!(error.code(), Some("invalid_body"));

    let id = ConnectionId::parse("conn-1").expect("valid id");
    let error = client.get_connection(&id).await.expect_err("rejected");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(error.code(), Some("unknown_provider_config"));
}

#[tokio::test]
async fn nango_connection_decodes_id() {
    let base_url = start(default_fixtures_dir()).await;
    let id = ConnectionId::parse("org/team:42 @x").expect("valid id");

    let connection = nango(&base_url, NANGO_KEY, "github")
        .get_connection(&id)
        .await
        .expect("a connection");

    assert_eq!(connection.connection_id, "org/team:42 @x");
    assert_eq!(connection.provider_config_key, "github");
    assert_eq!(
        connection.tags.get("end_user_id").map(String::as_str),
        Some("user-1")
    );
    assert_eq!(connection.end_user_id, None);
    assert!(
        matches!(&connection.credentials, Credentials::Token(t) if t.expose_secret() == GITHUB_TOKEN)
    );
}

#[tokio::test]
async fn nango_error_is_nango_shaped() {
    let base_url = start(default_fixtures_dir()).await;
    let id = ConnectionId::parse("conn-1").expect("valid id");

    let error = nango(&base_url, "wrong", "github")
        .get_connection(&id)
        .await
        .expect_err("rejected");

    assert!(matches!(error, NangoError::Rejected { .. }), "{error:?}");
    assert_eq!(error.code(), Some("unknown_account"));
}

#[tokio::test]
async fn github_lists_demo_pull_requests() {
    let base_url = start(default_fixtures_dir()).await;

    let list = github(&base_url)
        .list_open_pull_requests(&repository("demo-org/demo-repo"), &token())
        .await
        .expect("a list");

    assert_eq!(list.pull_requests.len(), 6);
    assert!(!list.more_available);
    let drafts = list.pull_requests.iter().filter(|pr| pr.is_draft()).count();
    assert_eq!(drafts, 1);
    assert!(list.pull_requests.iter().any(|pr| pr.body.is_none()));
    assert!(list.pull_requests.iter().any(|pr| pr.user.is_none()));
    assert!(list.pull_requests.iter().any(|pr| pr
        .body
        .as_deref()
        .is_some_and(|b| b.contains("Ignore previous instructions"))));
}

#[tokio::test]
async fn github_follows_next_links() {
    let dir = three_page_dir();
    let base_url = start(dir.clone()).await;

    let list = github(&base_url)
        .list_open_pull_requests(&repository("demo-org/demo-repo"), &token())
        .await;
    remove_dir(&dir);

    let list = list.expect("a list");
    assert_eq!(list.pull_requests.len(), 18);
    assert!(!list.more_available);
}

#[tokio::test]
async fn github_reports_missing_repository() {
    let base_url = start(default_fixtures_dir()).await;

    let error = github(&base_url)
        .list_open_pull_requests(&repository("demo-org/missing"), &token())
        .await
        .expect_err("not found");

    assert!(matches!(error, GithubError::NotFound), "{error:?}");
}

#[tokio::test]
async fn github_rejects_wrong_token() {
    let base_url = start(default_fixtures_dir()).await;

    let error = github(&base_url)
        .list_open_pull_requests(
            &repository("demo-org/demo-repo"),
            &SecretString::from("wrong".to_owned()),
        )
        .await
        .expect_err("rejected");

    assert!(matches!(error, GithubError::BadCredentials), "{error:?}");
}

#[tokio::test]
async fn github_requires_user_agent() {
    let base_url = start(default_fixtures_dir()).await;
    let url = base_url
        .join("/repos/demo-org/demo-repo/pulls")
        .expect("valid URL");

    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(GITHUB_TOKEN)
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .expect("a response");

    assert_eq!(response.status().as_u16(), 403);
}

#[tokio::test]
async fn github_returns_not_modified() {
    let base_url = start(default_fixtures_dir()).await;
    let url = base_url
        .join("/repos/demo-org/demo-repo/pulls?state=open&per_page=100")
        .expect("valid URL");
    let client = reqwest::Client::builder()
        .user_agent("local-stack-test")
        .build()
        .expect("client builds");
    let request = || {
        client
            .get(url.clone())
            .bearer_auth(GITHUB_TOKEN)
            .header("X-GitHub-Api-Version", "2022-11-28")
    };

    let first = request().send().await.expect("a response");
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(
        first
            .headers()
            .get("x-ratelimit-limit")
            .map(|v| v.as_bytes()),
        Some(&b"5000"[..])
    );
    let etag = first.headers().get("etag").cloned().expect("an etag");

    let second = request()
        .header("If-None-Match", etag)
        .send()
        .await
        .expect("a response");
    assert_eq!(second.status().as_u16(), 304);
}

#[tokio::test]
async fn messages_lists_every_pull_request() {
    let base_url = start(default_fixtures_dir()).await;
    let repo = repository("demo-org/demo-repo");
    let list = github(&base_url)
        .list_open_pull_requests(&repo, &token())
        .await
        .expect("a list");
    let limits = PromptLimits {
        max_body_chars: 2_000,
        max_data_chars: 400_000,
    };
    let prompt = DigestPrompt::build(&repo, &list.pull_requests, limits);

    let message = anthropic(&base_url, ANTHROPIC_KEY)
        .create_message(&MessageRequest {
            system: prompt.system,
            user_message: prompt.user_message,
        })
        .await
        .expect("a response");

    assert_eq!(message.model, "claude-test-model");
    assert_eq!(message.stop_reason.as_deref(), Some("end_turn"));
    assert!(message.request_id.is_some_and(|id| id.starts_with("req_")));
    assert!(message.usage.input_tokens > 0);
    assert!(message.usage.output_tokens > 0);
    assert!(message.text.starts_with("SIMULATED"), "{}", message.text);
    for pr in &list.pull_requests {
        let draft = if pr.is_draft() { " (draft)" } else { "" };
        let line = format!("- #{} {} by {}{draft}\n", pr.number, pr.title, pr.author());
        assert!(
            message.text.contains(&line),
            "missing {line:?} in {}",
            message.text
        );
    }
}

#[tokio::test]
async fn messages_rejects_wrong_key() {
    let base_url = start(default_fixtures_dir()).await;

    let error = anthropic(&base_url, "wrong")
        .create_message(&MessageRequest {
            system: String::new(),
            user_message: String::from("hello"),
        })
        .await
        .expect_err("rejected");

    match error {
        AnthropicError::Api {
            status,
            error_type,
            request_id,
            ..
        } => {
            assert_eq!(status.as_u16(), 401);
            assert_eq!(error_type, "authentication_error");
            assert!(request_id.is_some_and(|id| id.starts_with("req_")));
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}
