//! The HTTP API behind API Gateway (HTTP API, payload format 2.0).

mod analyses;
mod analysis_view;
mod body;
mod connect_session;
mod cors;
mod idempotency;
mod identity;
mod nango_webhook;
mod response;
mod routing;
pub mod webhook_signature;

pub use analyses::AnalysesApi;
pub use body::MAX_BODY_BYTES;
pub use connect_session::ConnectSessionApi;
pub use identity::DEV_USER_HEADER;
pub use nango_webhook::NangoWebhookApi;
pub use response::{json_response, ApiError};
