//! Recorded GitHub responses, replayed as the pages of a pull request list.
//!
//! A recording is a JSON file with `note`, `request {method, uri}`,
//! `recorded_at`, `status`, `headers` (lower-case names) and `body` (the
//! decoded JSON). Each recording with status 200 and an array body is one
//! page, in file-name order.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// One page of pull requests and the recorded headers served with it.
#[derive(Debug, Clone)]
pub struct RecordedPage {
    /// The file the page came from.
    pub file_name: String,
    /// The `etag` header and every `x-ratelimit-*` header of the recording.
    pub headers: Vec<(String, String)>,
    /// The etag, if recorded, for `If-None-Match`.
    pub etag: Option<String>,
    /// The pull requests, serialised once as the JSON array to serve.
    pub body: String,
    /// Number of pull requests on the page.
    pub pull_request_count: usize,
}

/// A fixture directory that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read the GitHub fixture directory {dir}: {source}. Set DEMO_GITHUB_FIXTURES to a directory of recorded responses.")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the GitHub fixture {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
struct Recording {
    status: u16,
    #[serde(default)]
    headers: Map<String, Value>,
    body: Value,
}

/// Loads every `*.json` file of `dir` in file-name order. Files that are not
/// valid recordings, or not a 200 with an array body, are skipped with a warning.
pub fn load_pages(dir: &Path) -> Result<Vec<RecordedPage>, FixtureError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FixtureError::ReadDir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| FixtureError::ReadDir {
            dir: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();

    let mut pages = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::ReadFile {
            path: path.clone(),
            source,
        })?;
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        match page_from_recording(&file_name, &text) {
            Ok(page) => {
                tracing::info!(file = %file_name, pull_requests = page.pull_request_count, page = pages.len() + 1, "loaded a recorded pull request page");
                pages.push(page);
            }
            Err(reason) => tracing::warn!(file = %file_name, %reason, "skipping a GitHub fixture"),
        }
    }
    Ok(pages)
}

/// Turns one recording into a page, or explains why it is not one.
pub fn page_from_recording(file_name: &str, text: &str) -> Result<RecordedPage, String> {
    let recording: Recording =
        serde_json::from_str(text).map_err(|error| format!("not a recorded response ({error})"))?;
    if recording.status != 200 {
        return Err(format!(
            "status {} is not a page of pull requests",
            recording.status
        ));
    }
    let Value::Array(pull_requests) = &recording.body else {
        return Err(String::from("the body is not an array of pull requests"));
    };
    // The stand-in serves open pull requests only, as GitHub does for `state=open`.
    let closed = pull_requests
        .iter()
        .filter(|pr| pr.get("state").and_then(Value::as_str) != Some("open"))
        .count();
    if closed > 0 {
        return Err(format!("{closed} of its pull requests are not open"));
    }

    let headers: Vec<(String, String)> = recording
        .headers
        .iter()
        .filter(|(name, _)| *name == "etag" || name.starts_with("x-ratelimit-"))
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    let etag = headers
        .iter()
        .find(|(name, _)| name == "etag")
        .map(|(_, value)| value.clone());

    Ok(RecordedPage {
        file_name: file_name.to_owned(),
        headers,
        etag,
        body: recording.body.to_string(),
        pull_request_count: pull_requests.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keeps_etag_and_rate_limit() {
        let text = r#"{"note":"n","request":{"method":"GET","uri":"u"},"recorded_at":"t","status":200,
            "headers":{"etag":"\"abc\"","x-ratelimit-remaining":"4999","date":"d","link":"<x>; rel=\"next\""},
            "body":[{"number":1,"title":"t","state":"open"}]}"#;
        let page = page_from_recording("a.json", text).expect("a page");
        assert_eq!(page.pull_request_count, 1);
        assert_eq!(page.etag.as_deref(), Some("\"abc\""));
        assert!(page
            .headers
            .contains(&("x-ratelimit-remaining".into(), "4999".into())));
        assert!(!page
            .headers
            .iter()
            .any(|(name, _)| name == "link" || name == "date"));
        assert_eq!(page.body, r#"[{"number":1,"state":"open","title":"t"}]"#);
    }

    #[test]
    fn non_pages_are_rejected() {
        let redirect = r#"{"status":301,"headers":{},"body":{"message":"Moved Permanently"}}"#;
        assert!(page_from_recording("r.json", redirect).is_err());
        let closed =
            r#"{"status":200,"headers":{},"body":[{"number":1,"title":"t","state":"closed"}]}"#;
        assert!(page_from_recording("c.json", closed).is_err());
        let object = r#"{"status":200,"headers":{},"body":{"number":1}}"#;
        assert!(page_from_recording("o.json", object).is_err());
        assert!(page_from_recording("x.json", "not json").is_err());
    }

    #[test]
    fn demo_data_is_one_page_of_six() {
        let pages = load_pages(&super::super::default_fixtures_dir()).expect("demo data loads");
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].pull_request_count, 6);
        assert_eq!(pages[0].file_name, "open-prs.json");
    }
}
