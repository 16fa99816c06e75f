//! GitHub REST: `GET /repos/{owner}/{repo}/pulls`, replaying the recorded pages.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{header_text, random_hex, StandIn};

/// The repository that does not exist, for demonstrating the `repo_not_found` failure.
pub const MISSING_REPOSITORY: (&str, &str) = ("demo-org", "missing");

/// The default `per_page` of GitHub's list endpoints.
const DEFAULT_PER_PAGE: &str = "30";

/// `GET /repos/{owner}/{repo}/pulls`.
pub(super) async fn list_repo_pulls(
    State(stand_in): State<Arc<StandIn>>,
    Path((owner, repo)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(rejection) = rejection(&stand_in, &headers) {
        return rejection;
    }
    if (owner.as_str(), repo.as_str()) == MISSING_REPOSITORY {
        return not_found();
    }
    let list_path = format!("/repos/{owner}/{repo}/pulls");
    serve_page(&stand_in, &list_path, query.as_deref(), &headers)
}

/// `GET /repositories/{id}/pulls`, the form GitHub may use in `link` headers;
/// every id serves the same pages.
pub(super) async fn list_repository_id_pulls(
    State(stand_in): State<Arc<StandIn>>,
    Path(repository_id): Path<u64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(rejection) = rejection(&stand_in, &headers) {
        return rejection;
    }
    let list_path = format!("/repositories/{repository_id}/pulls");
    serve_page(&stand_in, &list_path, query.as_deref(), &headers)
}

/// Checks the `User-Agent`, the token and the API version header, in the
/// order GitHub applies them, and returns the error response for the first
/// one missing or wrong.
fn rejection(stand_in: &StandIn, headers: &HeaderMap) -> Option<Response> {
    if header_text(headers, "user-agent").is_none_or(str::is_empty) {
        let body = "Request forbidden by administrative rules. \
                    Please make sure your request has a User-Agent header.\n";
        return Some(
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
        );
    }

    let token = header_text(headers, "authorization").and_then(|value| {
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("token "))
    });
    if token.map(str::trim) != Some(stand_in.settings.github_token.as_str()) {
        let body = json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401"
        });
        return Some((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }

    if header_text(headers, "x-github-api-version").is_none_or(str::is_empty) {
        let body = json!({
            "message": "The local stand-in requires the X-GitHub-Api-Version header, for example 2022-11-28.",
            "status": "400"
        });
        return Some((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    None
}

fn not_found() -> Response {
    let body = json!({
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#list-pull-requests",
        "status": "404"
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// The query parameters that select a page and shape the `link` header.
struct PageQuery {
    page: usize,
    state: String,
    per_page: String,
}

impl PageQuery {
    /// Reads `page`, `state` and `per_page`. A missing or invalid page is page 1, as on GitHub.
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self {
            page: 1,
            state: String::from("open"),
            per_page: String::from(DEFAULT_PER_PAGE),
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match name.as_ref() {
                "page" => parsed.page = value.trim().parse().unwrap_or(1).max(1),
                "state" => parsed.state = value.into_owned(),
                "per_page" => parsed.per_page = value.into_owned(),
                _ => {}
            }
        }
        parsed
    }
}

fn serve_page(
    stand_in: &StandIn,
    list_path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let query = PageQuery::parse(query);
    let page = query
        .page
        .checked_sub(1)
        .and_then(|index| stand_in.pages.get(index));

    let mut response_headers = HeaderMap::new();
    let request_id = random_hex(16).to_uppercase();
    insert_header(&mut response_headers, "x-github-request-id", &request_id);
    let links = link_header(&stand_in.base_url, list_path, &query, stand_in.pages.len());
    if !links.is_empty() {
        insert_header(&mut response_headers, "link", &links);
    }

    let Some(page) = page else {
        // Past the last page GitHub returns an empty list.
        return (StatusCode::OK, response_headers, Json(json!([]))).into_response();
    };
    for (name, value) in &page.headers {
        insert_header(&mut response_headers, name, value);
    }

    let if_none_match = header_text(headers, "if-none-match");
    if page.etag.is_some() && if_none_match == page.etag.as_deref() {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    tracing::info!(page = query.page, file = %page.file_name, pull_requests = page.pull_request_count, "serving a recorded pull request page");
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    (StatusCode::OK, response_headers, page.body.clone()).into_response()
}

/// Builds GitHub's `link` header for page `query.page` of `page_count`,
/// pointing at the stand-in: `next` and `last` while more pages remain,
/// `first` and `prev` after the first page.
fn link_header(base_url: &str, list_path: &str, query: &PageQuery, page_count: usize) -> String {
    let page_url = |page: usize| {
        let query_string = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("state", &query.state)
            .append_pair("per_page", &query.per_page)
            .append_pair("page", &page.to_string())
            .finish();
        format!("{base_url}{list_path}?{query_string}")
    };

    let mut links = Vec::new();
    if query.page < page_count {
        links.push(format!("<{}>; rel=\"next\"", page_url(query.page + 1)));
        links.push(format!("<{}>; rel=\"last\"", page_url(page_count)));
    }
    if query.page > 1 {
        links.push(format!("<{}>; rel=\"first\"", page_url(1)));
        links.push(format!("<{}>; rel=\"prev\"", page_url(query.page - 1)));
    }
    links.join(", ")
}

/// Inserts a header, skipping a recorded name or value that is not valid in HTTP.
fn insert_header(headers: &mut HeaderMap, name: &str, value: &str) {
    match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        (Ok(name), Ok(value)) => {
            headers.insert(name, value);
        }
        _ => tracing::warn!(header = name, "skipping a header that is not valid in HTTP"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:4010";
    const LIST: &str = "/repos/demo-org/demo-repo/pulls";

    fn query(text: &str) -> PageQuery {
        PageQuery::parse(Some(text))
    }

    #[test]
    fn page_query_defaults() {
        let parsed = PageQuery::parse(None);
        assert_eq!(parsed.page, 1);
        assert_eq!(parsed.state, "open");
        assert_eq!(parsed.per_page, "30");
        assert_eq!(query("page=0").page, 1);
        assert_eq!(query("page=abc").page, 1);
        assert_eq!(query("page=3&state=open&per_page=100").page, 3);
    }

    #[test]
    fn first_page_links_next_and_last() {
        let links = link_header(BASE, LIST, &query("state=open&per_page=100"), 3);
        assert_eq!(
            links,
            "<http://127.0.0.1:4010/repos/demo-org/demo-repo/pulls?state=open&per_page=100&page=2>; rel=\"next\", \
             <http://127.0.0.1:4010/repos/demo-org/demo-repo/pulls?state=open&per_page=100&page=3>; rel=\"last\""
        );
    }

    #[test]
    fn last_page_has_no_next() {
        let links = link_header(BASE, LIST, &query("state=open&per_page=100&page=3"), 3);
        assert!(!links.contains("rel=\"next\""), "{links}");
        assert!(links.contains("page=2>; rel=\"prev\""), "{links}");
        assert!(links.contains("page=1>; rel=\"first\""), "{links}");
    }

    #[test]
    fn single_page_has_no_links() {
        assert_eq!(link_header(BASE, LIST, &query("state=open"), 1), "");
        assert_eq!(link_header(BASE, LIST, &query("state=open"), 0), "");
    }

    #[test]
    fn link_query_is_encoded() {
        let links = link_header(BASE, LIST, &query("state=a%3Eb&per_page=1"), 2);
        assert!(links.contains("state=a%3Eb&per_page=1&page=2"), "{links}");
    }
}
