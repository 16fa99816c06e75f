//! `Idempotency-Key` on `POST /api/analyze-prs`: the same key from the same
//! caller within 24 hours returns the original analysis instead of a new one.

use std::sync::Arc;

use lambda_http::Request;
use time::{Duration, OffsetDateTime};

use super::ApiError;
use crate::access::{AccessStore, IdempotentRequest, KeyReservation};
use crate::domain::{Analysis, UserId};

/// The request header that names a retry-safe request.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// How long a key is remembered.
const KEY_LIFETIME: Duration = Duration::hours(24);
/// Maximum key length, in bytes.
const MAX_KEY_LEN: usize = 255;

/// Reads the optional `Idempotency-Key`: 1-255 visible ASCII characters.
pub fn key(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    let valid =
        !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters, such as a UUID.",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Returns the fields that make two requests the same request.
pub fn fingerprint(analysis: &Analysis) -> String {
    format!("{}\n{}", analysis.connection_id, analysis.repository)
}

/// Reservations of idempotency keys in the access store.
#[derive(Clone)]
pub struct IdempotencyKeys {
    store: Arc<dyn AccessStore>,
}

impl IdempotencyKeys {
    pub fn new(store: Arc<dyn AccessStore>) -> Self {
        Self { store }
    }

    /// Reserves `key` for `analysis`, or returns the request it was first used for.
    pub async fn reserve(
        &self,
        analysis: &Analysis,
        key: &str,
        fingerprint: &str,
    ) -> Result<KeyReservation, ApiError> {
        let request = IdempotentRequest {
            analysis_id: analysis.id.to_string(),
            fingerprint: fingerprint.to_owned(),
        };
        self.store
            .reserve_idempotency_key(
                &analysis.owner,
                key,
                &request,
                KEY_LIFETIME,
                OffsetDateTime::now_utc(),
            )
            .await
            .map_err(|error| {
                tracing::error!(%error, "reserving an idempotency key failed");
                ApiError::ServiceUnavailable {
                    code: "storage_unavailable",
                    message: String::from(
                        "The analysis service could not reach its database; try again in a moment.",
                    ),
                }
            })
    }

    /// Frees a key whose request was rejected, so the caller can retry with it.
    pub async fn release(&self, user: &UserId, key: &str) {
        if let Err(error) = self.store.release_idempotency_key(user, key).await {
            tracing::error!(%error, "releasing an idempotency key failed; it stays reserved for 24 hours");
        }
    }
}
