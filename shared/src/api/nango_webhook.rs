//! The Nango webhook: `POST /api/nango-webhook` records who owns each GitHub
//! connection, and which connections need the user to connect GitHub again.
//!
//! Nango signs every delivery (see [`super::webhook_signature`]) and retries
//! a failed one twice, waiting 20 s for each response. Handling a delivery
//! again leaves the same owner and status, so retries are harmless.

use std::sync::Arc;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tracing::Instrument;

use super::routing::{request_span, segments, Route};
use super::webhook_signature;
use super::{ApiError, MAX_BODY_BYTES};
use crate::access::{AccessStore, AccessStoreError, ConnectionRecord, ConnectionStatus};
use crate::domain::{ConnectionId, UserId};

/// The nango-webhook function's state, built once per cold start.
#[derive(Clone)]
pub struct NangoWebhookApi {
    store: Arc<dyn AccessStore>,
    signing_key: Arc<SecretString>,
    /// The GitHub integration's id in Nango; webhooks of other integrations are ignored.
    integration_id: String,
}

/// The effect of a verified webhook on the access table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    Ignored,
}

impl NangoWebhookApi {
    pub fn new(
        store: Arc<dyn AccessStore>,
        signing_key: SecretString,
        integration_id: impl Into<String>,
    ) -> Self {
        Self {
            store,
            signing_key: Arc::new(signing_key),
            integration_id: integration_id.into(),
        }
    }

    /// Handles one API Gateway request.
    ///
    /// The route has no authorizer and no CORS headers because only Nango's
    /// servers call it. The signature is the only credential.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let route = match segments(request.uri().path()).as_slice() {
            ["api", "nango-webhook"] if request.method() == Method::POST => Route::Handle(()),
            ["api", "nango-webhook"] => Route::WrongMethod { allow: "POST" },
            _ => Route::NotFound,
        };
        let span = request_span(&request);
        async {
            let result = match route {
                Route::Handle(()) => self.receive(&request).await,
                Route::WrongMethod { allow } => Err(ApiError::MethodNotAllowed {
                    method: request.method().clone(),
                    allow,
                }),
                Route::NotFound => Err(ApiError::NotFound { resource: "route" }),
            };
            result.unwrap_or_else(|error| {
                tracing::info!(status = error.status().as_u16(), code = error.code(), %error, "request rejected");
                error.into_response()
            })
        }
        .instrument(span)
        .await
    }

    /// Checks the size and signature of a delivery, then applies it.
    async fn receive(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        // The signature covers these exact bytes, which lambda_http has
        // already decoded when API Gateway sent them base64-encoded.
        let body: &[u8] = match request.body() {
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => &[],
        };
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge {
                max_bytes: MAX_BODY_BYTES,
            });
        }
        if let Err(error) = webhook_signature::verify(&self.signing_key, request.headers(), body) {
            tracing::warn!(%error, "rejected a Nango webhook");
            return Err(ApiError::InvalidSignature);
        }

        let outcome = match Webhook::parse(body)? {
            Webhook::Auth(event) => self.apply_auth(&event).await?,
            Webhook::Ignored { kind, operation } => {
                tracing::info!(
                    webhook_type = %kind,
                    operation = operation.as_deref().unwrap_or("-"),
                    "ignored a Nango webhook of a type or operation this service does not use"
                );
                Outcome::Ignored
            }
        };

        let status = match outcome {
            Outcome::Stored => "ok",
            Outcome::Ignored => "ignored",
        };
        Ok(super::json_response(
            StatusCode::OK,
            &json!({ "status": status }),
        ))
    }

    async fn apply_auth(&self, event: &AuthEvent) -> Result<Outcome, ApiError> {
        tracing::info!(
            webhook_type = "auth",
            operation = event.operation.as_str(),
            success = event.success,
            connection_id = %event.connection_id,
            provider_config_key = %event.provider_config_key,
            "Nango webhook received"
        );
        if event.provider_config_key != self.integration_id {
            tracing::info!(
                expected = %self.integration_id,
                "ignored a webhook of another Nango integration"
            );
            return Ok(Outcome::Ignored);
        }

        let now = OffsetDateTime::now_utc();
        match (event.operation, event.success) {
            (AuthOperation::Creation | AuthOperation::Override, true) => {
                let Some(owner) = event.owner.clone() else {
                    tracing::warn!("the connection names no end user, so it has no owner to store");
                    return Ok(Outcome::Ignored);
                };
                self.put(event, owner, ConnectionStatus::Active, now)
                    .await?;
                tracing::info!("connection owner stored");
                Ok(Outcome::Stored)
            }
            (AuthOperation::Refresh, false) => self.mark_reconnect_required(event, now).await,
            (AuthOperation::Creation | AuthOperation::Override, false) => {
                tracing::info!(
                    "Nango reported a failed authorization, so there is nothing to store"
                );
                Ok(Outcome::Ignored)
            }
            (AuthOperation::Refresh, true) => Ok(Outcome::Ignored),
        }
    }

    /// Marks the connection `reconnect_required`, creating its record when
    /// none exists and the webhook names an owner.
    async fn mark_reconnect_required(
        &self,
        event: &AuthEvent,
        now: OffsetDateTime,
    ) -> Result<Outcome, ApiError> {
        let existed = self
            .store
            .mark_reconnect_required(&self.integration_id, &event.connection_id, now)
            .await
            .map_err(storage_unavailable)?;
        if existed {
            tracing::info!("connection marked reconnect_required");
            return Ok(Outcome::Stored);
        }

        let Some(owner) = event.owner.clone() else {
            tracing::info!(
                "token refresh failed for a connection without a stored record or an owner; nothing to mark"
            );
            return Ok(Outcome::Ignored);
        };
        self.put(event, owner, ConnectionStatus::ReconnectRequired, now)
            .await?;
        tracing::info!("connection stored as reconnect_required");
        Ok(Outcome::Stored)
    }

    async fn put(
        &self,
        event: &AuthEvent,
        owner: UserId,
        status: ConnectionStatus,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        // NOTE: deliveries carry no timestamp that the signature covers, so a
        // delayed or replayed `creation` can overwrite a newer record.
        let record = ConnectionRecord {
            connection_id: event.connection_id.clone(),
            integration_id: self.integration_id.clone(),
            owner,
            status,
        };
        self.store
            .put_connection(&record, now)
            .await
            .map_err(storage_unavailable)
    }
}

/// Logs a failed store call and returns the 503 that makes Nango retry the delivery.
fn storage_unavailable(error: AccessStoreError) -> ApiError {
    tracing::error!(%error, "storing a Nango webhook's connection record failed");
    ApiError::ServiceUnavailable {
        code: "storage_unavailable",
        message: String::from("The connection record could not be stored. Retry the delivery."),
    }
}

// ------------------------------------------------------------------ parsing

/// A verified delivery, reduced to what this service uses.
#[derive(Debug)]
enum Webhook {
    Auth(AuthEvent),
    /// Another type, or an `auth` operation other than creation, override or refresh.
    Ignored {
        kind: String,
        operation: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthOperation {
    /// A user connected GitHub through the Connect UI.
    Creation,
    /// A user authorized an existing connection again.
    Override,
    /// Nango refreshed, or failed to refresh, the connection's token.
    Refresh,
}

impl AuthOperation {
    fn parse(operation: &str) -> Option<Self> {
        match operation {
            "creation" => Some(Self::Creation),
            "override" => Some(Self::Override),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Creation => "creation",
            Self::Override => "override",
            Self::Refresh => "refresh",
        }
    }
}

/// An `auth` webhook, such as `{"type":"auth","operation":"creation","success":true,
/// "connectionId":"…","providerConfigKey":"github","tags":{"end_user_id":"…"}}`.
#[derive(Debug)]
struct AuthEvent {
    operation: AuthOperation,
    success: bool,
    connection_id: ConnectionId,
    provider_config_key: String,
    /// The end user the connection was made for, if the webhook names one.
    owner: Option<UserId>,
}

impl Webhook {
    /// Parses a delivery's body, or returns 400 naming the missing or invalid field.
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let object = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => object,
            Ok(_) => {
                return Err(ApiError::InvalidRequest {
                    field: None,
                    message: String::from("The webhook body must be a JSON object."),
                })
            }
            Err(error) => {
                return Err(ApiError::InvalidRequest {
                    field: None,
                    message: format!("The webhook body is not valid JSON ({error})."),
                })
            }
        };

        let kind = string_field(&object, "type")?;
        if kind != "auth" {
            return Ok(Self::Ignored {
                kind: kind.to_owned(),
                operation: object
                    .get("operation")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        let operation_text = string_field(&object, "operation")?;
        let Some(operation) = AuthOperation::parse(operation_text) else {
            return Ok(Self::Ignored {
                kind: kind.to_owned(),
                operation: Some(operation_text.to_owned()),
            });
        };

        let success = match object.get("success") {
            Some(Value::Bool(success)) => *success,
            _ => {
                return Err(ApiError::invalid_field(
                    "success",
                    "success is missing or not a boolean.",
                ))
            }
        };
        let connection_id =
            ConnectionId::parse(string_field(&object, "connectionId")?).map_err(|error| {
                ApiError::invalid_field("connectionId", format!("connectionId {error}."))
            })?;
        let provider_config_key = string_field(&object, "providerConfigKey")?.to_owned();

        Ok(Self::Auth(AuthEvent {
            operation,
            success,
            connection_id,
            provider_config_key,
            owner: owner(&object),
        }))
    }
}

fn string_field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    object
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_field(name, format!("{name} is missing or not a string.")))
}

/// Returns the connection's end user: `tags.end_user_id`, else `endUser.endUserId`,
/// else `end_user.id`.
///
/// The first of these that is present decides, so an invalid tag is not
/// replaced by another field naming someone else.
fn owner(object: &Map<String, Value>) -> Option<UserId> {
    let candidates = [
        object.get("tags").and_then(|tags| tags.get("end_user_id")),
        object.get("endUser").and_then(|user| user.get("endUserId")),
        object.get("end_user").and_then(|user| user.get("id")),
    ];
    let value = candidates.into_iter().flatten().find(|v| !v.is_null())?;
    match value.as_str().map(UserId::parse) {
        Some(Ok(owner)) => Some(owner),
        Some(Err(error)) => {
            tracing::warn!(%error, "the webhook's end user id is invalid");
            None
        }
        None => {
            tracing::warn!("the webhook's end user id is not a string");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<Webhook, ApiError> {
        Webhook::parse(value.to_string().as_bytes())
    }

    fn auth(value: Value) -> AuthEvent {
        match parse(value) {
            Ok(Webhook::Auth(event)) => event,
            other => panic!("expected an auth event, got {other:?}"),
        }
    }

    fn creation_with(extra: Value) -> Value {
        let mut body = json!({
            "from": "nango",
            "type": "auth",
            "operation": "creation",
            "success": true,
            "connectionId": "conn-1",
            "providerConfigKey": "github",
        });
        for (key, value) in extra.as_object().expect("an object") {
            body[key] = value.clone();
        }
        body
    }

    #[test]
    fn parse_reads_creation() {
        let event = auth(creation_with(json!({"tags": {"end_user_id": "u_123"}})));
        assert_eq!(event.operation, AuthOperation::Creation);
        assert!(event.success);
        assert_eq!(event.connection_id.as_str(), "conn-1");
        assert_eq!(event.provider_config_key, "github");
        assert_eq!(event.owner.as_ref().map(UserId::as_str), Some("u_123"));
    }

    #[test]
    fn owner_falls_back_in_order() {
        let from_end_user = auth(creation_with(json!({"endUser": {"endUserId": "u_2"}})));
        assert_eq!(
            from_end_user.owner.map(|o| o.to_string()),
            Some("u_2".into())
        );

        let from_old_field = auth(creation_with(json!({"end_user": {"id": "u_3"}})));
        assert_eq!(
            from_old_field.owner.map(|o| o.to_string()),
            Some("u_3".into())
        );

        let tag_first = auth(creation_with(json!({
            "tags": {"end_user_id": "u_1"},
            "endUser": {"endUserId": "u_2"},
        })));
        assert_eq!(tag_first.owner.map(|o| o.to_string()), Some("u_1".into()));
    }

    #[test]
    fn owner_invalid_tag_is_none() {
        let empty_tag = auth(creation_with(json!({
            "tags": {"end_user_id": ""},
            "endUser": {"endUserId": "u_2"},
        })));
        assert!(empty_tag.owner.is_none());

        let number_tag = auth(creation_with(json!({"tags": {"end_user_id": 7}})));
        assert!(number_tag.owner.is_none());

        let no_owner = auth(creation_with(json!({"tags": {}})));
        assert!(no_owner.owner.is_none());
    }

    #[test]
    fn parse_ignores_unknown_kinds() {
        let sync = parse(json!({"type": "sync", "operation": "incremental"}));
        assert!(matches!(sync, Ok(Webhook::Ignored { .. })));

        let deletion = parse(creation_with(json!({"operation": "deletion"})));
        assert!(matches!(deletion, Ok(Webhook::Ignored { .. })));
    }

    #[test]
    fn parse_names_invalid_field() {
        let cases = [
            (json!({"operation": "creation"}), "type"),
            (json!({"type": "auth"}), "operation"),
            (creation_with(json!({"success": "yes"})), "success"),
            (creation_with(json!({"connectionId": null})), "connectionId"),
            (
                creation_with(json!({"connectionId": "a?b"})),
                "connectionId",
            ),
            (
                creation_with(json!({"providerConfigKey": 1})),
                "providerConfigKey",
            ),
        ];
        for (body, field) in cases {
            match parse(body) {
                Err(ApiError::InvalidRequest {
                    field: Some(name), ..
                }) => {
                    assert_eq!(name, field)
                }
                other => panic!("expected a 400 naming {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn parse_rejects_non_objects() {
        for body in [&b"[]"[..], b"\"auth\"", b"{\"type\":", b"", b"\xff"] {
            assert!(
                matches!(
                    Webhook::parse(body),
                    Err(ApiError::InvalidRequest { field: None, .. })
                ),
                "body {body:?}"
            );
        }
    }
}
