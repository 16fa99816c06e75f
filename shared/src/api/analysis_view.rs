//! The JSON form of an analysis returned by `GET /api/analyses/{id}`.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::domain::Analysis;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisView {
    id: String,
    repo: String,
    status: &'static str,
    created_at: String,
    updated_at: String,
    attempts: u32,
    next_attempt_at: Option<String>,
    pr_count: Option<u32>,
    summarized_pr_count: Option<u32>,
    truncated: bool,
    summary: Option<String>,
    model: Option<String>,
    usage: Option<UsageView>,
    error: Option<ErrorView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageView {
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
struct ErrorView {
    code: &'static str,
    message: String,
}

impl From<&Analysis> for AnalysisView {
    fn from(analysis: &Analysis) -> Self {
        let result = analysis.result.as_ref();
        Self {
            id: analysis.id.to_string(),
            repo: analysis.repository.to_string(),
            status: analysis.status.as_str(),
            created_at: analysis.created_at.format(&Rfc3339).unwrap_or_default(),
            updated_at: analysis.updated_at.format(&Rfc3339).unwrap_or_default(),
            attempts: analysis.attempts,
            next_attempt_at: analysis
                .next_attempt_at
                .and_then(|at| at.format(&Rfc3339).ok()),
            pr_count: result.map(|r| r.pr_count),
            summarized_pr_count: result.map(|r| r.summarized_pr_count),
            truncated: result.is_some_and(|r| r.truncated),
            summary: result.map(|r| r.summary.clone()),
            model: result.and_then(|r| r.model.clone()),
            usage: result.map(|r| UsageView {
                input_tokens: r.usage.input_tokens,
                output_tokens: r.usage.output_tokens,
            }),
            error: analysis.error.as_ref().map(|e| ErrorView {
                code: e.code.as_str(),
                message: e.message.clone(),
            }),
        }
    }
}
