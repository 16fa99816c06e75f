//! [`AnalysisStore`] on a DynamoDB table keyed by the analysis id (`id`, a string).

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use time::{Duration, OffsetDateTime};

use super::item::{attr, from_item, number, timestamp, to_item, Item};
use super::{AnalysisStore, AttemptOutcome, Claim, StoreError};
use crate::domain::{Analysis, AnalysisError, AnalysisId, AnalysisStatus};

/// Condition shared by every status change: the item exists and is not finished.
const UNFINISHED: &str = "attribute_exists(#id) AND NOT (#status IN (:succeeded, :failed))";

/// Analyses in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbAnalysisStore {
    client: Client,
    table_name: String,
    ttl: Duration,
}

/// The state of an item whose write condition failed.
enum ConditionFailure {
    Missing,
    Finished,
    Leased { until: OffsetDateTime },
    Unleased,
}

impl DynamoDbAnalysisStore {
    pub fn new(client: Client, table_name: impl Into<String>, ttl_days: u32) -> Self {
        Self {
            client,
            table_name: table_name.into(),
            ttl: Duration::days(i64::from(ttl_days)),
        }
    }

    /// Starts an update of an unfinished analysis under `condition`, binding
    /// the names and values that [`UNFINISHED`] uses.
    fn unfinished_update(&self, id: &AnalysisId, condition: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table_name)
            .key(attr::ID, AttributeValue::S(id.to_string()))
            .condition_expression(condition)
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#updatedAt", attr::UPDATED_AT)
            .expression_attribute_values(":succeeded", status_value(AnalysisStatus::Succeeded))
            .expression_attribute_values(":failed", status_value(AnalysisStatus::Failed))
    }

    /// Reads an analysis item with a strongly consistent read.
    async fn read_item(&self, id: &AnalysisId) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .key(attr::ID, AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(output.item)
    }

    /// Reads the item after a failed condition to tell why the write was rejected.
    async fn explain_condition_failure(
        &self,
        id: &AnalysisId,
    ) -> Result<ConditionFailure, StoreError> {
        let Some(item) = self.read_item(id).await? else {
            return Ok(ConditionFailure::Missing);
        };

        let analysis = from_item(&item)?;
        if analysis.status.is_finished() {
            return Ok(ConditionFailure::Finished);
        }
        let lease_expires_at = match item.get(attr::LEASE_EXPIRES_AT) {
            Some(AttributeValue::N(value)) => value.parse::<i64>().ok(),
            _ => None,
        };
        match lease_expires_at.and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok()) {
            Some(until) => Ok(ConditionFailure::Leased { until }),
            None => Ok(ConditionFailure::Unleased),
        }
    }
}

fn backend<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Backend(DisplayErrorContext(&error).to_string())
}

fn status_value(status: AnalysisStatus) -> AttributeValue {
    AttributeValue::S(status.as_str().into())
}

fn is_condition_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// Adds the attributes that describe an attempt's error.
fn with_error(update: UpdateItemFluentBuilder, error: &AnalysisError) -> UpdateItemFluentBuilder {
    update
        .expression_attribute_names("#errorCode", attr::ERROR_CODE)
        .expression_attribute_names("#errorMessage", attr::ERROR_MESSAGE)
        .expression_attribute_values(":code", AttributeValue::S(error.code.as_str().into()))
        .expression_attribute_values(":message", AttributeValue::S(error.message.clone()))
}

#[async_trait]
impl AnalysisStore for DynamoDbAnalysisStore {
    async fn create(&self, analysis: &Analysis) -> Result<(), StoreError> {
        let expires_at = analysis.created_at + self.ttl;
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(to_item(analysis, expires_at)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .send()
            .await;

        match result {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => {
                Err(StoreError::AlreadyExists(analysis.id.clone()))
            }
            Err(error) => Err(backend(error)),
        }
    }

    async fn get(&self, id: &AnalysisId) -> Result<Option<Analysis>, StoreError> {
        self.read_item(id)
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn claim(
        &self,
        id: &AnalysisId,
        lease: Duration,
        now: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let lease_token = uuid::Uuid::new_v4().to_string();
        let condition = format!("{UNFINISHED} AND (attribute_not_exists(#leaseExpiresAt) OR #leaseExpiresAt < :nowSeconds)");
        let result = self
            .unfinished_update(id, &condition)
            .update_expression(
                "SET #status = :running, #updatedAt = :now, #leaseExpiresAt = :leaseExpiresAt, \
                 #leaseToken = :leaseToken ADD #attempts :one",
            )
            .expression_attribute_names("#leaseExpiresAt", attr::LEASE_EXPIRES_AT)
            .expression_attribute_names("#leaseToken", attr::LEASE_TOKEN)
            .expression_attribute_names("#attempts", attr::ATTEMPTS)
            .expression_attribute_values(":running", status_value(AnalysisStatus::Running))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":nowSeconds", number(now.unix_timestamp()))
            .expression_attribute_values(":leaseExpiresAt", number((now + lease).unix_timestamp()))
            .expression_attribute_values(":leaseToken", AttributeValue::S(lease_token.clone()))
            .expression_attribute_values(":one", number(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;

        match result {
            Ok(output) => {
                let attributes = output.attributes.ok_or_else(|| {
                    StoreError::Backend(String::from(
                        "DynamoDB returned no attributes after a claim",
                    ))
                })?;
                Ok(Claim {
                    analysis: from_item(&attributes)?,
                    lease_token,
                })
            }
            Err(error) if is_condition_failure(&error) => {
                match self.explain_condition_failure(id).await? {
                    ConditionFailure::Missing => Err(StoreError::NotFound(id.clone())),
                    ConditionFailure::Finished => Err(StoreError::AlreadyFinished(id.clone())),
                    ConditionFailure::Leased { until } => Err(StoreError::Leased {
                        id: id.clone(),
                        until,
                    }),
                    // The lease expired between the write and the read: a retry can claim it.
                    ConditionFailure::Unleased => Err(StoreError::Leased {
                        id: id.clone(),
                        until: now,
                    }),
                }
            }
            Err(error) => Err(backend(error)),
        }
    }

    async fn record_outcome(
        &self,
        id: &AnalysisId,
        lease_token: &str,
        outcome: AttemptOutcome<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let condition = format!("{UNFINISHED} AND #leaseToken = :leaseToken");
        let update = self
            .unfinished_update(id, &condition)
            .expression_attribute_names("#leaseToken", attr::LEASE_TOKEN)
            .expression_attribute_names("#leaseExpiresAt", attr::LEASE_EXPIRES_AT)
            .expression_attribute_values(":leaseToken", AttributeValue::S(lease_token.to_owned()))
            .expression_attribute_values(":now", timestamp(now));

        let update = match outcome {
            AttemptOutcome::Succeeded(result) => {
                let model = match &result.model {
                    Some(model) => AttributeValue::S(model.clone()),
                    None => AttributeValue::Null(true),
                };
                update
                    .update_expression(
                        "SET #status = :succeededNow, #updatedAt = :now, #summary = :summary, #prCount = :prCount, \
                         #summarizedPrCount = :summarizedPrCount, #truncated = :truncated, \
                         #inputTokens = :inputTokens, #outputTokens = :outputTokens, #model = :model \
                         REMOVE #errorCode, #errorMessage, #leaseToken, #leaseExpiresAt, #nextAttemptAt",
                    )
                    .expression_attribute_names("#summary", attr::SUMMARY)
                    .expression_attribute_names("#prCount", attr::PR_COUNT)
                    .expression_attribute_names("#summarizedPrCount", attr::SUMMARIZED_PR_COUNT)
                    .expression_attribute_names("#truncated", attr::TRUNCATED)
                    .expression_attribute_names("#inputTokens", attr::INPUT_TOKENS)
                    .expression_attribute_names("#outputTokens", attr::OUTPUT_TOKENS)
                    .expression_attribute_names("#model", attr::MODEL)
                    .expression_attribute_names("#errorCode", attr::ERROR_CODE)
                    .expression_attribute_names("#errorMessage", attr::ERROR_MESSAGE)
                    .expression_attribute_names("#nextAttemptAt", attr::NEXT_ATTEMPT_AT)
                    .expression_attribute_values(":succeededNow", status_value(AnalysisStatus::Succeeded))
                    .expression_attribute_values(":summary", AttributeValue::S(result.summary.clone()))
                    .expression_attribute_values(":prCount", number(result.pr_count))
                    .expression_attribute_values(":summarizedPrCount", number(result.summarized_pr_count))
                    .expression_attribute_values(":truncated", AttributeValue::Bool(result.truncated))
                    .expression_attribute_values(":inputTokens", number(result.usage.input_tokens))
                    .expression_attribute_values(":outputTokens", number(result.usage.output_tokens))
                    .expression_attribute_values(":model", model)
            }
            AttemptOutcome::Failed(error) => with_error(update, error)
                .update_expression(
                    "SET #status = :failedNow, #updatedAt = :now, #errorCode = :code, #errorMessage = :message \
                     REMOVE #leaseToken, #leaseExpiresAt, #nextAttemptAt",
                )
                .expression_attribute_names("#nextAttemptAt", attr::NEXT_ATTEMPT_AT)
                .expression_attribute_values(":failedNow", status_value(AnalysisStatus::Failed)),
            AttemptOutcome::Retrying { error, next_attempt_at } => with_error(update, error)
                .update_expression(
                    "SET #status = :retrying, #updatedAt = :now, #errorCode = :code, #errorMessage = :message, \
                     #nextAttemptAt = :nextAttemptAt REMOVE #leaseToken, #leaseExpiresAt",
                )
                .expression_attribute_names("#nextAttemptAt", attr::NEXT_ATTEMPT_AT)
                .expression_attribute_values(":retrying", status_value(AnalysisStatus::Retrying))
                .expression_attribute_values(":nextAttemptAt", timestamp(next_attempt_at)),
        };

        match update.send().await {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => {
                match self.explain_condition_failure(id).await? {
                    ConditionFailure::Missing => Err(StoreError::NotFound(id.clone())),
                    ConditionFailure::Finished => Err(StoreError::AlreadyFinished(id.clone())),
                    ConditionFailure::Leased { .. } | ConditionFailure::Unleased => {
                        Err(StoreError::LeaseLost(id.clone()))
                    }
                }
            }
            Err(error) => Err(backend(error)),
        }
    }

    async fn fail_unclaimed(
        &self,
        id: &AnalysisId,
        error: &AnalysisError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let condition = format!("{UNFINISHED} AND attribute_not_exists(#leaseToken)");
        let update = with_error(self.unfinished_update(id, &condition), error)
            .update_expression("SET #status = :failedNow, #updatedAt = :now, #errorCode = :code, #errorMessage = :message")
            .expression_attribute_names("#leaseToken", attr::LEASE_TOKEN)
            .expression_attribute_values(":failedNow", status_value(AnalysisStatus::Failed))
            .expression_attribute_values(":now", timestamp(now));

        match update.send().await {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => {
                match self.explain_condition_failure(id).await? {
                    ConditionFailure::Missing => Err(StoreError::NotFound(id.clone())),
                    ConditionFailure::Finished => Err(StoreError::AlreadyFinished(id.clone())),
                    ConditionFailure::Leased { until } => Err(StoreError::Leased {
                        id: id.clone(),
                        until,
                    }),
                    ConditionFailure::Unleased => Err(StoreError::LeaseLost(id.clone())),
                }
            }
            Err(error) => Err(backend(error)),
        }
    }
}
