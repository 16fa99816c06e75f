//! Routing shared by the HTTP functions: preflight, unknown paths, wrong methods, CORS.

use lambda_http::http::Method;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use super::{cors, ApiError};

/// A router's decision for a request.
pub enum Route<T> {
    /// A known path and method, handled by the function.
    Handle(T),
    /// A known path with another method; `allow` lists the methods it takes.
    WrongMethod {
        allow: &'static str,
    },
    NotFound,
}

/// Splits a path into its segments, ignoring one trailing slash.
pub fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect()
}

/// Responds to preflights and routing errors, runs `handle` for a known route,
/// and adds CORS headers to every response.
pub async fn dispatch<T, F, Fut>(
    request: &Request,
    allowed_origins: &[String],
    route: Route<T>,
    handle: F,
) -> Response<Body>
where
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, ApiError>>,
{
    let result = match route {
        Route::NotFound => Err(ApiError::NotFound { resource: "route" }),
        Route::WrongMethod { allow } if request.method() == Method::OPTIONS => {
            return cors::preflight(request, allowed_origins, allow);
        }
        Route::WrongMethod { allow } => Err(ApiError::MethodNotAllowed {
            method: request.method().clone(),
            allow,
        }),
        Route::Handle(target) => handle(target).await,
    };

    let mut response = result.unwrap_or_else(|error| {
        tracing::info!(status = error.status().as_u16(), code = error.code(), %error, "request rejected");
        error.into_response()
    });
    cors::add_headers(request, &mut response, allowed_origins);
    response
}

/// Creates a span that tags every log line of a request with the Lambda and API Gateway request ids.
pub fn request_span(request: &Request) -> tracing::Span {
    let lambda_request_id = request
        .lambda_context_ref()
        .map(|context| context.request_id.clone());
    let api_request_id = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    tracing::info_span!(
        "request",
        request_id = lambda_request_id.as_deref().unwrap_or("-"),
        api_request_id = api_request_id.as_deref().unwrap_or("-"),
        method = %request.method(),
        path = request.uri().path(),
    )
}
