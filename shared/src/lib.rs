//! pr-digest: LLM digests of a GitHub repository's open pull requests.
//!
//! The library behind the Lambda functions: domain types, the upstream
//! clients (Nango, GitHub, Anthropic), the DynamoDB store, the SQS queue,
//! the HTTP API and the worker. The binaries in `functions/` only wire these
//! together at cold start.

pub mod access;
pub mod api;
pub mod aws;
pub mod config;
pub mod domain;
pub mod queue;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod worker;
