//! Fault injection: every upstream failure from `docs/failure-modes.md`,
//! run through the worker against wiremock and moto, with the table checked
//! against the document.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pr_digest::domain::{Analysis, ConnectionId, RepositoryName, UserId};
use pr_digest::queue::AnalysisMessage;
use pr_digest::store::AnalysisStore;
use pr_digest::worker::{Deadline, Worker};
use serde_json::json;
use time::OffsetDateTime;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    anthropic_client_at, anthropic_message_body, create_store, failed_ids, github_client_at,
    github_fixture, nango_client_at, nango_connection_body, sqs_event, worker_config,
    RecordedRedelivery,
};

/// An address on which nothing listens, so connecting is refused.
const REFUSED: &str = "http://127.0.0.1:1";
const CONNECTION: &str = "conn-1";
const REPO: &str = "octo-org/hello";

/// One row of the failure table: the fault and what must follow.
struct Row {
    upstream: &'static str,
    fault: &'static str,
    status: &'static str,
    code: &'static str,
    calls: &'static str,
    next_delivery: &'static str,
    /// The delivery count of the message, 1 unless the row sets another.
    delivery: u32,
}

const fn row(
    upstream: &'static str,
    fault: &'static str,
    status: &'static str,
    code: &'static str,
    calls: &'static str,
    next_delivery: &'static str,
) -> Row {
    Row {
        upstream,
        fault,
        status,
        code,
        calls,
        next_delivery,
        delivery: 1,
    }
}

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        row("Nango", "timeout", "retrying", "upstream_timeout", "3", "30 s"),
        row("Nango", "connection refused", "retrying", "nango_unavailable", "n/a", "30 s"),
        row("Nango", "500", "retrying", "nango_unavailable", "3", "30 s"),
        row("Nango", "503", "retrying", "nango_unavailable", "3", "30 s"),
        row("Nango", "529", "retrying", "nango_unavailable", "3", "30 s"),
        row("Nango", "429 with retry-after", "retrying", "nango_unavailable", "1", "12 s"),
        row("Nango", "429 without retry-after", "retrying", "nango_unavailable", "3", "30 s"),
        row("Nango", "424 backing off", "retrying", "nango_unavailable", "1", "30 s"),
        row("Nango", "424 refresh limit", "failed", "reconnect_required", "1", "none"),
        row("Nango", "400 invalid_credentials", "failed", "reconnect_required", "1", "none"),
        row("Nango", "401", "failed", "nango_request_rejected", "1", "none"),
        row("Nango", "404", "failed", "connection_not_found", "1", "none"),
        row("Nango", "malformed JSON", "retrying", "nango_unavailable", "3", "30 s"),
        row("GitHub", "timeout", "retrying", "upstream_timeout", "3", "30 s"),
        row("GitHub", "connection refused", "retrying", "github_unavailable", "n/a", "30 s"),
        row("GitHub", "500", "retrying", "github_unavailable", "3", "30 s"),
        row("GitHub", "503", "retrying", "github_unavailable", "3", "30 s"),
        row("GitHub", "529", "retrying", "github_unavailable", "3", "30 s"),
        row("GitHub", "429 with retry-after", "retrying", "github_rate_limited", "1", "61 s"),
        row("GitHub", "429 without retry-after", "retrying", "github_rate_limited", "1", "60 s"),
        row("GitHub", "primary rate limit", "retrying", "github_rate_limited", "1", "until x-ratelimit-reset"),
        row("GitHub", "secondary rate limit", "retrying", "github_rate_limited", "1", "45 s"),
        row("GitHub", "401", "failed", "reconnect_required", "2", "none"),
        row("GitHub", "404", "failed", "repo_not_found", "1", "none"),
        row("GitHub", "403 not accessible", "failed", "repo_access_denied", "1", "none"),
        row("GitHub", "malformed JSON", "retrying", "github_unavailable", "3", "30 s"),
        row("Anthropic", "timeout", "retrying", "upstream_timeout", "3", "30 s"),
        row("Anthropic", "connection refused", "retrying", "model_unavailable", "n/a", "30 s"),
        row("Anthropic", "500", "retrying", "model_unavailable", "3", "30 s"),
        row("Anthropic", "503", "retrying", "model_unavailable", "3", "30 s"),
        row("Anthropic", "529", "retrying", "model_unavailable", "3", "30 s"),
        row("Anthropic", "429 with retry-after", "retrying", "model_unavailable", "1", "20 s"),
        row("Anthropic", "429 without retry-after", "retrying", "model_unavailable", "3", "30 s"),
        row("Anthropic", "400", "failed", "model_request_rejected", "1", "none"),
        row("Anthropic", "401", "failed", "model_request_rejected", "1", "none"),
        row("Anthropic", "404", "failed", "model_request_rejected", "1", "none"),
        row("Anthropic", "malformed JSON", "retrying", "model_unavailable", "3", "30 s"),
        row("Anthropic", "empty content", "failed", "model_empty_response", "1", "none"),
        row("Anthropic", "stop_reason max_tokens", "succeeded", "none", "1", "none"),
        Row { delivery: 5, ..row("Anthropic", "529 on the last delivery", "failed", "model_unavailable", "3", "none") },
    ]
}

/// Builds the response that injects `fault` into one upstream.
fn fault_response(upstream: &str, fault: &str) -> ResponseTemplate {
    let nango_error = |status: u16, code: &str, message: &str| {
        ResponseTemplate::new(status)
            .set_body_json(json!({"error": {"code": code, "message": message}}))
    };
    let github_error = |status: u16, message: &str| {
        ResponseTemplate::new(status).set_body_json(
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        )
    };
    let model_error = |status: u16, kind: &str| {
        ResponseTemplate::new(status)
            .insert_header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy")
            .set_body_json(json!({"type": "error", "error": {"type": kind, "message": "details"}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}))
    };
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(5));
    let reset_at = (OffsetDateTime::now_utc().unix_timestamp() + 120).to_string();

    match (upstream, fault) {
        (_, "timeout") => slow,
        // Never served: the client points at a closed port.
        (_, "connection refused") => ResponseTemplate::new(500),
        (_, "malformed JSON") => ResponseTemplate::new(200).set_body_string("{\"truncated\": "),
        ("Nango", "500") => nango_error(500, "server_error", "An internal error occurred"),
        ("Nango", "503") => nango_error(503, "server_error", "Service unavailable"),
        ("Nango", "529") => nango_error(529, "server_error", "Overloaded"),
        ("Nango", "401") => nango_error(401, "unknown_account", "The secret key is not valid"),
        ("Nango", "429 with retry-after") => nango_error(429, "too_many_request", "Too many requests").insert_header("retry-after", "12"),
        ("Nango", "429 without retry-after") => nango_error(429, "too_many_request", "Too many requests"),
        ("Nango", "424 backing off") => nango_error(424, "invalid_credentials", "A recent refresh attempt failed. Backing off..."),
        ("Nango", "424 refresh limit") => nango_error(424, "invalid_credentials", "The refresh limit has been reached for this connection."),
        ("Nango", "400 invalid_credentials") => nango_error(400, "invalid_credentials", "There was an error when trying to refresh the access token."),
        ("Nango", "404") => nango_error(404, "not_found", "No connection found"),
        ("GitHub", "500") => github_error(500, "Server Error"),
        ("GitHub", "503") => github_error(503, "Service Unavailable"),
        ("GitHub", "529") => github_error(529, "Overloaded"),
        ("GitHub", "429 with retry-after") => github_error(429, "Too many requests").insert_header("retry-after", "61"),
        ("GitHub", "429 without retry-after") => github_error(429, "Too many requests"),
        ("GitHub", "primary rate limit") => github_error(403, "API rate limit exceeded for user ID 1.")
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", reset_at.as_str()),
        ("GitHub", "secondary rate limit") => github_error(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")
            .insert_header("retry-after", "45"),
        ("GitHub", "401") => github_error(401, "Bad credentials"),
        ("GitHub", "404") => github_error(404, "Not Found"),
        ("GitHub", "403 not accessible") => github_error(403, "Resource not accessible by integration"),
        ("Anthropic", "500") => model_error(500, "api_error"),
        ("Anthropic", "503") => model_error(503, "api_error"),
        ("Anthropic", "529" | "529 on the last delivery") => model_error(529, "overloaded_error"),
        ("Anthropic", "429 with retry-after") => model_error(429, "rate_limit_error").insert_header("retry-after", "20"),
        ("Anthropic", "429 without retry-after") => model_error(429, "rate_limit_error"),
        ("Anthropic", "400") => model_error(400, "invalid_request_error"),
        ("Anthropic", "401") => model_error(401, "authentication_error"),
        ("Anthropic", "404") => model_error(404, "not_found_error"),
        ("Anthropic", "empty content") => ResponseTemplate::new(200).set_body_json(anthropic_message_body(&[], "end_turn")),
        ("Anthropic", "stop_reason max_tokens") => {
            ResponseTemplate::new(200).set_body_json(anthropic_message_body(&["## Themes\n- cut"], "max_tokens"))
        }
        other => panic!("no fault {other:?}"),
    }
}

fn healthy_response(upstream: &str) -> ResponseTemplate {
    match upstream {
        "Nango" => {
            ResponseTemplate::new(200).set_body_json(nango_connection_body(CONNECTION, "user-123"))
        }
        "GitHub" => ResponseTemplate::new(200)
            .set_body_json(github_fixture("open-prs-5.json")["body"].clone()),
        _ => ResponseTemplate::new(200)
            .set_body_json(anthropic_message_body(&["## Themes"], "end_turn")),
    }
}

fn upstream_path(upstream: &str) -> String {
    match upstream {
        "Nango" => format!("/connections/{CONNECTION}"),
        "GitHub" => format!("/repos/{REPO}/pulls"),
        _ => String::from("/v1/messages"),
    }
}

/// Runs one row's delivery and renders what it produced as the document's cells.
async fn run_row(row: &Row) -> [String; 6] {
    let server = MockServer::start().await;
    for upstream in ["Nango", "GitHub", "Anthropic"] {
        let template = if upstream == row.upstream {
            fault_response(upstream, row.fault)
        } else {
            healthy_response(upstream)
        };
        let http_method = if upstream == "Anthropic" {
            "POST"
        } else {
            "GET"
        };
        Mock::given(method(http_method))
            .and(path(upstream_path(upstream)))
            .respond_with(template)
            .mount(&server)
            .await;
    }

    let base_of = |upstream: &str| {
        if upstream == row.upstream && row.fault == "connection refused" {
            REFUSED.to_owned()
        } else {
            server.uri()
        }
    };
    let (store, _, _) = create_store().await;
    let store = Arc::new(store);
    let redelivery = Arc::new(RecordedRedelivery::default());
    let worker = Worker::new(
        store.clone(),
        redelivery.clone(),
        nango_client_at(&base_of("Nango")),
        github_client_at(&base_of("GitHub"), 200),
        anthropic_client_at(&base_of("Anthropic")),
        worker_config(),
    );
    let analysis = Analysis::new(
        UserId::parse("user-123").expect("valid"),
        RepositoryName::parse(REPO).expect("valid"),
        ConnectionId::parse(CONNECTION).expect("valid"),
        OffsetDateTime::now_utc(),
    );
    store.create(&analysis).await.expect("created");

    let body = AnalysisMessage::new(&analysis.id).to_body();
    let response = worker
        .handle_batch(sqs_event(&[("m1", &body, row.delivery)]), Deadline::none())
        .await
        .expect("batch handled");

    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    let label = format!("{} {}", row.upstream, row.fault);
    let requeued = failed_ids(&response) == vec!["m1".to_owned()];
    assert_eq!(
        requeued,
        stored.status.as_str() == "retrying",
        "{label}: a retrying analysis keeps its message"
    );

    let target = upstream_path(row.upstream);
    let received = server.received_requests().await.expect("recording on");
    let calls = if row.fault == "connection refused" {
        String::from("n/a")
    } else {
        received
            .iter()
            .filter(|request| request.url.path() == target)
            .count()
            .to_string()
    };
    let delays = redelivery.delays();
    let next_delivery = match delays.as_slice() {
        [] => String::from("none"),
        [delay] if row.fault == "primary rate limit" && (110..=121).contains(&delay.as_secs()) => {
            String::from("until x-ratelimit-reset")
        }
        [delay] => format!("{} s", delay.as_secs()),
        many => format!("{many:?}"),
    };
    let code = stored
        .error
        .as_ref()
        .map_or("none", |error| error.code.as_str())
        .to_owned();
    if row.fault == "stop_reason max_tokens" {
        assert!(
            stored
                .result
                .as_ref()
                .is_some_and(|result| result.truncated),
            "{label}: the summary is marked truncated"
        );
    }
    if row.upstream == "GitHub" && row.fault == "401" {
        let forced = received
            .iter()
            .filter(|r| {
                r.url
                    .query()
                    .is_some_and(|q| q.contains("force_refresh=true"))
            })
            .count();
        assert_eq!(forced, 1, "{label}: one forced token refresh");
    }

    [
        row.upstream.to_owned(),
        row.fault.to_owned(),
        stored.status.as_str().to_owned(),
        code,
        calls,
        next_delivery,
    ]
}

/// Reads the first six cells of every row of the document's failure table.
fn documented_rows() -> Vec<[String; 6]> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/failure-modes.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let table = text.split("## Other outcomes").next().unwrap_or("");
    table
        .lines()
        .filter(|line| {
            line.starts_with("| ") && !line.starts_with("| upstream") && !line.starts_with("| ---")
        })
        .map(|line| {
            let cells: Vec<String> = line
                .split('|')
                .skip(1)
                .map(|cell| cell.trim().to_owned())
                .collect();
            std::array::from_fn(|i| cells.get(i).cloned().unwrap_or_default())
        })
        .collect()
}

#[tokio::test]
async fn failure_matrix_matches_docs() {
    let rows = rows();

    let observed = futures::future::join_all(rows.iter().map(run_row)).await;

    for (row, cells) in rows.iter().zip(&observed) {
        let expected = [
            row.upstream,
            row.fault,
            row.status,
            row.code,
            row.calls,
            row.next_delivery,
        ]
        .map(str::to_owned);
        assert_eq!(cells, &expected, "{} {}", row.upstream, row.fault);
    }
    let documented = documented_rows();
    let expected: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            [
                row.upstream,
                row.fault,
                row.status,
                row.code,
                row.calls,
                row.next_delivery,
            ]
            .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        documented, expected,
        "docs/failure-modes.md and this test disagree"
    );
}

#[tokio::test]
async fn github_401_refreshes_token_once() {
    let server = MockServer::start().await;
    Mock::given(path(upstream_path("Nango")))
        .and(query_param("force_refresh", "true"))
        .respond_with(healthy_response("Nango"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(upstream_path("Nango")))
        .respond_with(healthy_response("Nango"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(upstream_path("GitHub")))
        .respond_with(fault_response("GitHub", "401"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(upstream_path("GitHub")))
        .respond_with(healthy_response("GitHub"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/messages"))
        .respond_with(healthy_response("Anthropic"))
        .expect(1)
        .mount(&server)
        .await;
    let (store, _, _) = create_store().await;
    let store = Arc::new(store);
    let worker = Worker::new(
        store.clone(),
        Arc::new(RecordedRedelivery::default()),
        nango_client_at(&server.uri()),
        github_client_at(&server.uri(), 200),
        anthropic_client_at(&server.uri()),
        worker_config(),
    );
    let analysis = Analysis::new(
        UserId::parse("user-123").expect("valid"),
        RepositoryName::parse(REPO).expect("valid"),
        ConnectionId::parse(CONNECTION).expect("valid"),
        OffsetDateTime::now_utc(),
    );
    store.create(&analysis).await.expect("created");

    let body = AnalysisMessage::new(&analysis.id).to_body();
    worker
        .handle_batch(sqs_event(&[("m1", &body, 1)]), Deadline::none())
        .await
        .expect("batch handled");

    let stored = store
        .get(&analysis.id)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.status.as_str(), "succeeded");
}
