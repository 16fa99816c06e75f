//! Integration tests: upstream clients against wiremock, the store and queue
//! against moto server, handlers fed from `events/`, and the whole pipeline.

mod anthropic;
mod api;
mod end_to_end;
mod failure_matrix;
mod github;
mod helpers;
mod nango;
mod ownership;
mod queue;
mod soak;
mod store;
mod webhook;
mod worker;
