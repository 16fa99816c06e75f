//! Local stand-ins for running pr-digest offline.
//!
//! `stack.sh` starts these binaries next to `cargo lambda watch` and moto server:
//! - `local-setup` creates the queues and the table.
//! - `local-gateway` stands in for API Gateway.
//! - `sqs-event-source` stands in for Lambda's SQS event source mapping.
//! - `upstream-stand-in` stands in for Nango, GitHub and the Anthropic Messages API.
//! - `demo-client` plays the frontend.
//! - `redrive` moves dead-lettered messages back to the analysis queue (`make redrive`).
//!
//! Every server binds to 127.0.0.1 only.

pub mod event_source;
pub mod gateway;
pub mod server;
pub mod stand_in;
