//! The caller's identity: the verified JWT subject, or a header in local dev mode.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::ApiError;
use crate::config::AuthMode;
use crate::domain::UserId;

/// The header that names the caller when `AUTH_MODE=dev`.
pub const DEV_USER_HEADER: &str = "x-user-id";

/// Returns the caller's user id, or 401 when the request carries none.
///
/// In JWT mode the id is the `sub` claim that API Gateway's JWT authorizer
/// put in the request context after verifying the token. This mode never
/// reads a user id from the body or from headers.
pub fn caller(request: &Request, mode: AuthMode) -> Result<UserId, ApiError> {
    let subject = match mode {
        AuthMode::Jwt => jwt_subject(request),
        AuthMode::Dev => request
            .headers()
            .get(DEV_USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let subject = subject.ok_or(ApiError::Unauthorized)?;
    UserId::parse(&subject).map_err(|error| {
        tracing::warn!(%error, "rejected caller identity");
        ApiError::Unauthorized
    })
}

fn jwt_subject(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get("sub")
            .cloned(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
