//! Benchmarks of the worker's CPU work per analysis: reading a page of pull
//! requests from GitHub's JSON and building the prompt for up to 200 of them.
//!
//! Input: the recorded 30-item page and the 11-item page from the team's
//! fixtures beside the project, repeated to 200 pull requests.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pr_digest::domain::{DigestPrompt, PromptLimits, PullRequest, RepositoryName};

fn fixture_body(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/github")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let recorded: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
    recorded["body"].to_string()
}

fn bench_parse_page(c: &mut Criterion) {
    let page = fixture_body("closed-prs-page1-of-9.json");
    let mut group = c.benchmark_group("github_page");
    group.throughput(Throughput::Bytes(page.len() as u64));
    group.bench_function("parse_30_pull_requests", |b| {
        b.iter(|| serde_json::from_str::<Vec<PullRequest>>(&page).expect("valid page"))
    });
    group.finish();
}

fn bench_build_prompt(c: &mut Criterion) {
    let mut pull_requests: Vec<PullRequest> = Vec::new();
    for name in ["closed-prs-page1-of-9.json", "open-prs-11.json"] {
        let page: Vec<PullRequest> = serde_json::from_str(&fixture_body(name)).expect("valid page");
        pull_requests.extend(page);
    }
    let pull_requests: Vec<PullRequest> = pull_requests.iter().cycle().take(200).cloned().collect();
    let repository = RepositoryName::parse("octo-org/hello").expect("valid name");
    let limits = PromptLimits {
        max_body_chars: 2_000,
        max_data_chars: 400_000,
    };

    let mut group = c.benchmark_group("prompt");
    group.throughput(Throughput::Elements(pull_requests.len() as u64));
    group.bench_function("build_200_pull_requests", |b| {
        b.iter(|| DigestPrompt::build(&repository, &pull_requests, limits))
    });
    group.finish();
}

criterion_group!(benches, bench_parse_page, bench_build_prompt);
criterion_main!(benches);
