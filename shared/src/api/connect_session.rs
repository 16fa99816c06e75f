//! The connect-session API: `POST /api/nango-session` opens a Nango connect
//! session for the caller, so the frontend can show Nango's Connect UI.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use secrecy::ExposeSecret;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::routing::{dispatch, request_span, segments, Route};
use super::{identity, ApiError};
use crate::config::ApiConfig;
use crate::upstream::nango::{NangoClient, NangoError};
use tracing::Instrument;

/// The connect-session function's state, built once per cold start.
#[derive(Clone)]
pub struct ConnectSessionApi {
    nango: NangoClient,
    config: ApiConfig,
}

impl ConnectSessionApi {
    pub fn new(nango: NangoClient, config: ApiConfig) -> Self {
        Self { nango, config }
    }

    /// Handles one API Gateway request.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let route = match segments(request.uri().path()).as_slice() {
            ["api", "nango-session"] if request.method() == Method::POST => Route::Handle(()),
            ["api", "nango-session"] => Route::WrongMethod { allow: "POST" },
            _ => Route::NotFound,
        };
        let span = request_span(&request);
        dispatch(&request, &self.config.allowed_origins, route, |()| {
            self.create_session(&request)
        })
        .instrument(span)
        .await
    }

    async fn create_session(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let user = identity::caller(request, self.config.auth_mode)?;

        let session = self
            .nango
            .create_connect_session(&user)
            .await
            .map_err(|error| {
                log_nango_error(&error);
                ApiError::BadGateway { upstream: "Nango" }
            })?;

        tracing::info!("Nango connect session created");
        let body = json!({
            "token": session.token.expose_secret(),
            "expiresAt": session.expires_at.format(&Rfc3339).unwrap_or_default(),
        });
        Ok(super::json_response(StatusCode::CREATED, &body))
    }
}

/// Logs Nango's status and error code. Nango's body and our key never reach the caller.
fn log_nango_error(error: &NangoError) {
    tracing::error!(
        nango_status = error.status().map(|s| s.as_u16()),
        nango_code = error.code().unwrap_or("-"),
        %error,
        "creating a Nango connect session failed"
    );
}
