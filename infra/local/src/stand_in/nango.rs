//! Nango: `POST /connect/sessions` and `GET /connections/{id}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};

use super::{header_text, random_hex, StandIn};

/// Nango's timestamp form: ISO 8601 in UTC with milliseconds and `Z`.
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// How long a connect session token lives.
const SESSION_LIFETIME: Duration = Duration::minutes(30);
/// How long the access token of a connection is reported as valid.
const ACCESS_TOKEN_LIFETIME: Duration = Duration::hours(1);

/// Body fields of `POST /connect/sessions` that the stand-in accepts. Others
/// get `invalid_body`, as Nango rejects unknown fields.
const SESSION_FIELDS: [&str; 3] = ["tags", "end_user", "allowed_integrations"];

/// A Nango error response: `{"error":{"code","message"}}`.
struct NangoError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl NangoError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }
}

impl IntoResponse for NangoError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

/// Checks `Authorization: Bearer <secret key>`.
fn authorize(stand_in: &StandIn, headers: &HeaderMap) -> Result<(), NangoError> {
    let Some(value) = header_text(headers, "authorization") else {
        return Err(NangoError::new(
            StatusCode::UNAUTHORIZED,
            "missing_auth_header",
            "Authentication failed. The request is missing the Authorization header.",
        ));
    };
    let Some(key) = value.strip_prefix("Bearer ") else {
        return Err(NangoError::new(
            StatusCode::UNAUTHORIZED,
            "malformed_auth_header",
            "Authentication failed. The Authorization header is not \"Bearer <secret key>\".",
        ));
    };
    if key.trim() != stand_in.settings.nango_secret_key {
        return Err(NangoError::new(
            StatusCode::UNAUTHORIZED,
            "unknown_account",
            "Authentication failed. The secret key is not the stand-in's STAND_IN_NANGO_SECRET_KEY.",
        ));
    }
    Ok(())
}

fn timestamp(at: OffsetDateTime) -> String {
    match at.format(TIMESTAMP) {
        Ok(text) => text,
        Err(error) => {
            tracing::error!(%error, "formatting a timestamp failed; sending an empty one");
            String::new()
        }
    }
}

/// `POST /connect/sessions`: returns 201 with a token, a connect link and an expiry.
pub(super) async fn create_connect_session(
    State(stand_in): State<Arc<StandIn>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match connect_session(&stand_in, &headers, &body) {
        Ok(body) => (StatusCode::CREATED, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn connect_session(
    stand_in: &StandIn,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, NangoError> {
    authorize(stand_in, headers)?;

    let object: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(NangoError::invalid_body("The body must be a JSON object.")),
        Err(error) => {
            return Err(NangoError::invalid_body(format!(
                "The body is not valid JSON: {error}."
            )))
        }
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !SESSION_FIELDS.contains(&key.as_str()))
    {
        return Err(NangoError::invalid_body(format!(
            "Unrecognized key in the body: {unknown:?}."
        )));
    }

    let end_user_id = object
        .get("tags")
        .and_then(|tags| tags.get("end_user_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    if end_user_id.is_none() {
        return Err(NangoError::invalid_body(
            "tags.end_user_id is required: a non-empty string naming the end user.",
        ));
    }
    if let Some(integrations) = object.get("allowed_integrations") {
        check_allowed_integrations(stand_in, integrations)?;
    }

    let token = format!("nango_connect_session_{}", random_hex(64));
    let connect_link = format!("{}/connect?session_token={token}", stand_in.base_url);
    let expires_at = timestamp(OffsetDateTime::now_utc() + SESSION_LIFETIME);
    Ok(json!({
        "data": { "token": token, "connect_link": connect_link, "expires_at": expires_at }
    }))
}

fn check_allowed_integrations(stand_in: &StandIn, integrations: &Value) -> Result<(), NangoError> {
    let Some(list) = integrations.as_array() else {
        return Err(NangoError::invalid_body(
            "allowed_integrations must be an array of integration ids.",
        ));
    };
    for integration in list {
        if integration.as_str() != Some(stand_in.settings.integration_id.as_str()) {
            return Err(NangoError::invalid_body(format!(
                "allowed_integrations contains {integration}, which is not an integration of this environment (expected {:?}).",
                stand_in.settings.integration_id
            )));
        }
    }
    Ok(())
}

/// `GET /connections/{id}` and its older alias `/connection/{id}`: a connection
/// of the configured integration, holding the stand-in's GitHub token.
///
/// The router has already percent-decoded `connection_id`.
pub(super) async fn get_connection(
    State(stand_in): State<Arc<StandIn>>,
    Path(connection_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = authorize(&stand_in, &headers) {
        return error.into_response();
    }

    let integration_id = &stand_in.settings.integration_id;
    let provider_config_key = query
        .get("provider_config_key")
        .map(String::as_str)
        .unwrap_or("");
    if provider_config_key != integration_id {
        return NangoError::new(
            StatusCode::BAD_REQUEST,
            "unknown_provider_config",
            format!("There is no integration {provider_config_key:?} in this environment; the stand-in knows only {integration_id:?}."),
        )
        .into_response();
    }

    let expires_at = timestamp(OffsetDateTime::now_utc() + ACCESS_TOKEN_LIFETIME);
    let body = json!({
        "connection_id": connection_id,
        "provider_config_key": integration_id,
        "provider": "github",
        "tags": { "end_user_id": stand_in.settings.end_user_id },
        "end_user": null,
        "credentials": {
            "type": "OAUTH2",
            "access_token": stand_in.settings.github_token,
            "expires_at": expires_at,
            "raw": {}
        }
    });
    (StatusCode::OK, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_has_millis_and_z() {
        let at = OffsetDateTime::from_unix_timestamp(1_786_000_000).expect("valid time");
        assert_eq!(timestamp(at), "2026-08-06T07:06:40.000Z");
    }
}
