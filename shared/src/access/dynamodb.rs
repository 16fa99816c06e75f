//! [`AccessStore`] on a DynamoDB table keyed by `pk` (a string).
//!
//! Items: `connection#<integration>#<connection id>` with the owner and
//! status, and `quota#<user>#<hour>` with the analyses counted in that hour
//! (Unix hour number). Every item carries `expiresAt` for DynamoDB's TTL.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::{
    AccessStore, AccessStoreError, ConnectionRecord, ConnectionStatus, IdempotentRequest,
    KeyReservation, QuotaDecision,
};
use crate::domain::{ConnectionId, UserId};

const SECONDS_PER_HOUR: i64 = 3_600;

/// Connection owners and quotas in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbAccessStore {
    client: Client,
    table_name: String,
    ttl: Duration,
}

impl DynamoDbAccessStore {
    pub fn new(client: Client, table_name: impl Into<String>, ttl_days: u32) -> Self {
        Self {
            client,
            table_name: table_name.into(),
            ttl: Duration::days(i64::from(ttl_days)),
        }
    }
}

fn connection_key(integration_id: &str, connection_id: &ConnectionId) -> AttributeValue {
    AttributeValue::S(format!("connection#{integration_id}#{connection_id}"))
}

fn idempotency_key(user: &UserId, key: &str) -> AttributeValue {
    AttributeValue::S(format!("idempotency#{user}#{key}"))
}

fn backend<E, R>(error: SdkError<E, R>) -> AccessStoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    AccessStoreError::Backend(DisplayErrorContext(&error).to_string())
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

fn record_from_item(
    integration_id: &str,
    connection_id: &ConnectionId,
    item: &HashMap<String, AttributeValue>,
) -> Result<ConnectionRecord, AccessStoreError> {
    let malformed = |reason: &str| AccessStoreError::Malformed {
        key: format!("connection#{integration_id}#{connection_id}"),
        reason: reason.to_owned(),
    };
    let owner = text(item, "ownerId")
        .and_then(|v| UserId::parse(v).ok())
        .ok_or_else(|| malformed("ownerId is missing or invalid"))?;
    let status = match text(item, "status") {
        Some("active") => ConnectionStatus::Active,
        Some("reconnect_required") => ConnectionStatus::ReconnectRequired,
        _ => return Err(malformed("status is missing or unknown")),
    };
    Ok(ConnectionRecord {
        connection_id: connection_id.clone(),
        integration_id: integration_id.to_owned(),
        owner,
        status,
    })
}

#[async_trait]
impl AccessStore for DynamoDbAccessStore {
    async fn get_connection(
        &self,
        integration_id: &str,
        connection_id: &ConnectionId,
    ) -> Result<Option<ConnectionRecord>, AccessStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .key("pk", connection_key(integration_id, connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        output
            .item
            .as_ref()
            .map(|item| record_from_item(integration_id, connection_id, item))
            .transpose()
    }

    async fn put_connection(
        &self,
        record: &ConnectionRecord,
        now: OffsetDateTime,
    ) -> Result<(), AccessStoreError> {
        let expires_at = (now + self.ttl).unix_timestamp();
        self.client
            .put_item()
            .table_name(&self.table_name)
            .item(
                "pk",
                connection_key(&record.integration_id, &record.connection_id),
            )
            .item("ownerId", AttributeValue::S(record.owner.to_string()))
            .item(
                "status",
                AttributeValue::S(record.status.as_str().to_owned()),
            )
            .item(
                "updatedAt",
                AttributeValue::S(now.format(&Rfc3339).unwrap_or_default()),
            )
            .item("expiresAt", AttributeValue::N(expires_at.to_string()))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn mark_reconnect_required(
        &self,
        integration_id: &str,
        connection_id: &ConnectionId,
        now: OffsetDateTime,
    ) -> Result<bool, AccessStoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .key("pk", connection_key(integration_id, connection_id))
            .update_expression("SET #status = :status, #updatedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#updatedAt", "updatedAt")
            .expression_attribute_values(
                ":status",
                AttributeValue::S(ConnectionStatus::ReconnectRequired.as_str().into()),
            )
            .expression_attribute_values(
                ":now",
                AttributeValue::S(now.format(&Rfc3339).unwrap_or_default()),
            )
            .send()
            .await;

        match result {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(backend(error)),
        }
    }

    async fn reserve_idempotency_key(
        &self,
        user: &UserId,
        key: &str,
        request: &IdempotentRequest,
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<KeyReservation, AccessStoreError> {
        let pk = idempotency_key(user, key);
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .item("pk", pk.clone())
            .item("analysisId", AttributeValue::S(request.analysis_id.clone()))
            .item(
                "fingerprint",
                AttributeValue::S(request.fingerprint.clone()),
            )
            .item(
                "expiresAt",
                AttributeValue::N((now + lifetime).unix_timestamp().to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR #expiresAt < :now")
            .expression_attribute_names("#expiresAt", "expiresAt")
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.unix_timestamp().to_string()),
            )
            .send()
            .await;

        match result {
            Ok(_) => Ok(KeyReservation::Reserved),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let output = self
                    .client
                    .get_item()
                    .table_name(&self.table_name)
                    .key("pk", pk)
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(backend)?;
                let item = output.item.unwrap_or_default();
                match (text(&item, "analysisId"), text(&item, "fingerprint")) {
                    (Some(analysis_id), Some(fingerprint)) => {
                        Ok(KeyReservation::Used(IdempotentRequest {
                            analysis_id: analysis_id.to_owned(),
                            fingerprint: fingerprint.to_owned(),
                        }))
                    }
                    _ => Err(AccessStoreError::Malformed {
                        key: format!("idempotency#{user}#{key}"),
                        reason: String::from("analysisId or fingerprint is missing"),
                    }),
                }
            }
            Err(error) => Err(backend(error)),
        }
    }

    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &str,
    ) -> Result<(), AccessStoreError> {
        self.client
            .delete_item()
            .table_name(&self.table_name)
            .key("pk", idempotency_key(user, key))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn take_analysis_quota(
        &self,
        user: &UserId,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<QuotaDecision, AccessStoreError> {
        let hour = now.unix_timestamp().div_euclid(SECONDS_PER_HOUR);
        let hour_ends_at = (hour + 1) * SECONDS_PER_HOUR;
        // Quota items are kept one extra hour past their window, then TTL deletes them.
        let expires_at = hour_ends_at + SECONDS_PER_HOUR;

        let result = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .key("pk", AttributeValue::S(format!("quota#{user}#{hour}")))
            .update_expression("ADD #count :one SET #expiresAt = :expiresAt")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "analysisCount")
            .expression_attribute_names("#expiresAt", "expiresAt")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(":expiresAt", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;

        match result {
            Ok(_) => Ok(QuotaDecision::Allowed),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let retry_after_seconds = u64::try_from(hour_ends_at - now.unix_timestamp())
                    .unwrap_or(1)
                    .max(1);
                Ok(QuotaDecision::Exceeded {
                    retry_after_seconds,
                })
            }
            Err(error) => Err(backend(error)),
        }
    }
}
