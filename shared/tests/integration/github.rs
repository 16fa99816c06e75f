//! GitHub client against wiremock, replaying recorded responses.

use pr_digest::domain::RepositoryName;
use pr_digest::upstream::github::{GithubError, RateLimit};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{github_client, github_fixture, recorded_response, GITHUB_TOKEN};

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).expect("valid repository")
}

fn token() -> SecretString {
    SecretString::from(GITHUB_TOKEN)
}

#[tokio::test]
async fn list_reads_recorded_page_with_headers() {
    let server = MockServer::start().await;
    let fixture = github_fixture("open-prs-11.json");
    Mock::given(method("GET"))
        .and(path("/repos/dev-02/github3.py/pulls"))
        .and(query_param("state", "open"))
        .and(query_param("per_page", "100"))
        .and(header(
            "authorization",
            format!("Bearer {GITHUB_TOKEN}").as_str(),
        ))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header_exists("user-agent"))
        .respond_with(recorded_response(&fixture, &server.uri()))
        .expect(1)
        .mount(&server)
        .await;

    let list = github_client(&server, 200)
        .list_open_pull_requests(&repo("dev-02/github3.py"), &token())
        .await
        .expect("listed");

    assert_eq!(list.pull_requests.len(), 11);
    assert!(!list.more_available);
    assert_eq!(
        list.pull_requests.iter().filter(|pr| pr.is_draft()).count(),
        1
    );
    assert_eq!(list.pull_requests[0].number, 1033);
}

#[tokio::test]
async fn list_accepts_missing_draft_and_null_fields() {
    let server = MockServer::start().await;
    let mut fixture = github_fixture("open-prs-5.json");
    fixture["body"][0]["user"] = serde_json::Value::Null;
    fixture["body"][1]["body"] = serde_json::Value::Null;
    if let Some(pr) = fixture["body"][2].as_object_mut() {
        pr.remove("draft");
        pr.remove("user");
    }
    Mock::given(path("/repos/dev-18/dev-18.rb/pulls"))
        .respond_with(recorded_response(&fixture, &server.uri()))
        .mount(&server)
        .await;

    let list = github_client(&server, 200)
        .list_open_pull_requests(&repo("dev-18/dev-18.rb"), &token())
        .await
        .expect("listed");

    assert_eq!(list.pull_requests.len(), 5);
    assert_eq!(list.pull_requests[0].author(), "ghost");
    assert_eq!(list.pull_requests[1].body, None);
    assert!(!list.pull_requests[2].is_draft());
}

#[tokio::test]
async fn list_follows_next_links_verbatim() {
    let server = MockServer::start().await;
    let first = github_fixture("closed-prs-page1-of-9.json");
    let second = github_fixture("open-prs-11.json");
    let third = github_fixture("open-prs-3-after-redirect.json");
    let base = server.uri();
    Mock::given(path("/repos/dev-18/dev-18.rb/pulls"))
        .respond_with(recorded_response(&first, &base))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/repositories/417862/pulls"))
        .and(query_param("page", "2"))
        .respond_with(recorded_response(&second, &base).insert_header(
            "link",
            format!("<{base}/repositories/417862/pulls?state=closed&page=3>; rel=\"next\", <{base}/repositories/417862/pulls?state=closed&page=1>; rel=\"first\"").as_str(),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/repositories/417862/pulls"))
        .and(query_param("page", "3"))
        .and(query_param("state", "closed"))
        .respond_with(recorded_response(&third, &base))
        .expect(1)
        .mount(&server)
        .await;

    let list = github_client(&server, 200)
        .list_open_pull_requests(&repo("dev-18/dev-18.rb"), &token())
        .await
        .expect("listed");

    assert_eq!(list.pull_requests.len(), 30 + 11 + 3);
    assert!(!list.more_available);
}

#[tokio::test]
async fn list_stops_at_maximum() {
    let server = MockServer::start().await;
    let first = github_fixture("closed-prs-page1-of-9.json");
    Mock::given(path("/repos/dev-18/dev-18.rb/pulls"))
        .respond_with(recorded_response(&first, &server.uri()))
        .expect(1)
        .mount(&server)
        .await;

    let list = github_client(&server, 25)
        .list_open_pull_requests(&repo("dev-18/dev-18.rb"), &token())
        .await
        .expect("listed");

    assert_eq!(list.pull_requests.len(), 25);
    assert!(list.more_available);
}

#[tokio::test]
async fn list_follows_rename_redirect() {
    let server = MockServer::start().await;
    let moved = github_fixture("renamed-repo-301.json");
    let target = github_fixture("open-prs-3-after-redirect.json");
    let location = format!(
        "{}/repositories/11439734/pulls?state=open&per_page=100",
        server.uri()
    );
    Mock::given(path("/repos/dev-02/betamax/pulls"))
        .respond_with(
            recorded_response(&moved, &server.uri()).insert_header("location", location.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/repositories/11439734/pulls"))
        .and(header(
            "authorization",
            format!("Bearer {GITHUB_TOKEN}").as_str(),
        ))
        .respond_with(recorded_response(&target, &server.uri()))
        .expect(1)
        .mount(&server)
        .await;

    let list = github_client(&server, 200)
        .list_open_pull_requests(&repo("dev-02/betamax"), &token())
        .await
        .expect("listed");

    assert_eq!(list.pull_requests.len(), 3);
}

#[tokio::test]
async fn list_rejects_foreign_next_link() {
    let server = MockServer::start().await;
    let first = github_fixture("closed-prs-page1-of-9.json");
    // The recorded link still names api.github.com, another origin than the mock.
    let mut template = ResponseTemplate::new(200).set_body_json(first["body"].clone());
    template = template.insert_header("link", first["headers"]["link"].as_str().expect("link"));
    Mock::given(path("/repos/dev-18/dev-18.rb/pulls"))
        .respond_with(template)
        .expect(1)
        .mount(&server)
        .await;

    let error = github_client(&server, 200)
        .list_open_pull_requests(&repo("dev-18/dev-18.rb"), &token())
        .await
        .expect_err("foreign link");

    assert!(
        matches!(error, GithubError::ForeignNextLink(origin) if origin == "https://api.github.com")
    );
}

#[tokio::test]
async fn list_maps_error_statuses() {
    let cases: Vec<(ResponseTemplate, &str)> = vec![
        (ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})), "bad_credentials"),
        (ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})), "not_found"),
        (ResponseTemplate::new(403).set_body_json(json!({"message": "Resource not accessible by integration"})), "forbidden"),
        (
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1796418000")
                .set_body_json(json!({"message": "API rate limit exceeded for user ID 1."})),
            "primary",
        ),
        (
            ResponseTemplate::new(429)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1796418000")
                .set_body_json(json!({"message": "API rate limit exceeded"})),
            "primary",
        ),
        (
            ResponseTemplate::new(403)
                .insert_header("retry-after", "61")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."})),
            "secondary",
        ),
        (ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"), "status"),
        (ResponseTemplate::new(200).set_body_string("{\"not\": \"a list\"}"), "invalid"),
    ];

    for (template, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/repos/octo-org/hello/pulls"))
            .respond_with(template)
            .mount(&server)
            .await;

        let error = github_client(&server, 200)
            .list_open_pull_requests(&repo("octo-org/hello"), &token())
            .await
            .expect_err("error status");

        let kind = match &error {
            GithubError::BadCredentials => "bad_credentials",
            GithubError::NotFound => "not_found",
            GithubError::Forbidden { .. } => "forbidden",
            GithubError::RateLimited {
                limit:
                    RateLimit::Primary {
                        reset_at: Some(1796418000),
                    },
                ..
            } => "primary",
            GithubError::RateLimited {
                limit:
                    RateLimit::Secondary {
                        retry_after_seconds: Some(61),
                    },
                ..
            } => "secondary",
            GithubError::Status { status, .. } if status.as_u16() == 502 => "status",
            GithubError::InvalidResponse(_) => "invalid",
            other => panic!("unexpected error {other:?}"),
        };
        assert_eq!(kind, expected);
    }
}

#[tokio::test]
async fn list_times_out_on_slow_server() {
    let server = MockServer::start().await;
    Mock::given(path("/repos/octo-org/hello/pulls"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(std::time::Duration::from_secs(5)),
        )
        .mount(&server)
        .await;

    let error = github_client(&server, 200)
        .list_open_pull_requests(&repo("octo-org/hello"), &token())
        .await
        .expect_err("timeout");

    assert!(
        matches!(
            error,
            GithubError::Transport(pr_digest::upstream::TransportError::Timeout)
        ),
        "{error:?}"
    );
}
