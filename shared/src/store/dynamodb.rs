//! [`AnalysisStore`] on a DynamoDB table keyed by the analysis id (`id`, a string).

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use time::{Duration, OffsetDateTime};

use super::item::{attr, from_item, number, timestamp, to_item};
use super::{AnalysisStore, StoreError};
use crate::domain::{Analysis, AnalysisError, AnalysisId, AnalysisResult, AnalysisStatus};

/// Condition shared by every status change: the item exists and is not finished.
const UNFINISHED: &str = "attribute_exists(#id) AND NOT (#status IN (:succeeded, :failed))";

/// Analyses in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbAnalysisStore {
    client: Client,
    table_name: String,
    ttl: Duration,
}

impl DynamoDbAnalysisStore {
    pub fn new(client: Client, table_name: impl Into<String>, ttl_days: u32) -> Self {
        Self {
            client,
            table_name: table_name.into(),
            ttl: Duration::days(i64::from(ttl_days)),
        }
    }

    /// Starts an update of an unfinished analysis, binding the names and values of [`UNFINISHED`].
    fn unfinished_update(&self, id: &AnalysisId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table_name)
            .key(attr::ID, AttributeValue::S(id.to_string()))
            .condition_expression(UNFINISHED)
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_values(
                ":succeeded",
                AttributeValue::S(AnalysisStatus::Succeeded.as_str().into()),
            )
            .expression_attribute_values(
                ":failed",
                AttributeValue::S(AnalysisStatus::Failed.as_str().into()),
            )
    }

    /// Sends a conditional update and explains a failed condition as not found or finished.
    async fn send_unfinished_update(
        &self,
        id: &AnalysisId,
        update: UpdateItemFluentBuilder,
    ) -> Result<Option<Analysis>, StoreError> {
        match update.send().await {
            Ok(output) => output.attributes.as_ref().map(from_item).transpose(),
            Err(error) => {
                let condition_failed = error.as_service_error().is_some_and(|service_error| {
                    service_error.is_conditional_check_failed_exception()
                });
                if !condition_failed {
                    return Err(backend(error));
                }
                match self.get(id).await? {
                    None => Err(StoreError::NotFound(id.clone())),
                    Some(_) => Err(StoreError::AlreadyFinished(id.clone())),
                }
            }
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
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::AlreadyExists(analysis.id.clone()))
            }
            Err(error) => Err(backend(error)),
        }
    }

    async fn get(&self, id: &AnalysisId) -> Result<Option<Analysis>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .key(attr::ID, AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        output.item.as_ref().map(from_item).transpose()
    }

    async fn start_attempt(
        &self,
        id: &AnalysisId,
        now: OffsetDateTime,
    ) -> Result<Analysis, StoreError> {
        let update = self
            .unfinished_update(id)
            .update_expression("SET #status = :running, #updatedAt = :now ADD #attempts :one")
            .expression_attribute_names("#updatedAt", attr::UPDATED_AT)
            .expression_attribute_names("#attempts", attr::ATTEMPTS)
            .expression_attribute_values(":running", status_value(AnalysisStatus::Running))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":one", number(1))
            .return_values(ReturnValue::AllNew);

        self.send_unfinished_update(id, update)
            .await?
            .ok_or_else(|| {
                StoreError::Backend(String::from(
                    "DynamoDB returned no attributes after an update",
                ))
            })
    }

    async fn record_retry(
        &self,
        id: &AnalysisId,
        error: &AnalysisError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let update = self
            .unfinished_update(id)
            .update_expression("SET #status = :retrying, #updatedAt = :now, #errorCode = :code, #errorMessage = :message")
            .expression_attribute_names("#updatedAt", attr::UPDATED_AT)
            .expression_attribute_names("#errorCode", attr::ERROR_CODE)
            .expression_attribute_names("#errorMessage", attr::ERROR_MESSAGE)
            .expression_attribute_values(":retrying", status_value(AnalysisStatus::Retrying))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":code", AttributeValue::S(error.code.as_str().into()))
            .expression_attribute_values(":message", AttributeValue::S(error.message.clone()));
        self.send_unfinished_update(id, update).await.map(drop)
    }

    async fn complete(
        &self,
        id: &AnalysisId,
        result: &AnalysisResult,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut update = self
            .unfinished_update(id)
            .update_expression(
                "SET #status = :succeeded, #updatedAt = :now, #summary = :summary, #prCount = :prCount, \
                 #summarizedPrCount = :summarizedPrCount, #truncated = :truncated, #inputTokens = :inputTokens, \
                 #outputTokens = :outputTokens, #model = :model REMOVE #errorCode, #errorMessage",
            )
            .expression_attribute_names("#updatedAt", attr::UPDATED_AT)
            .expression_attribute_names("#summary", attr::SUMMARY)
            .expression_attribute_names("#prCount", attr::PR_COUNT)
            .expression_attribute_names("#summarizedPrCount", attr::SUMMARIZED_PR_COUNT)
            .expression_attribute_names("#truncated", attr::TRUNCATED)
            .expression_attribute_names("#inputTokens", attr::INPUT_TOKENS)
            .expression_attribute_names("#outputTokens", attr::OUTPUT_TOKENS)
            .expression_attribute_names("#model", attr::MODEL)
            .expression_attribute_names("#errorCode", attr::ERROR_CODE)
            .expression_attribute_names("#errorMessage", attr::ERROR_MESSAGE)
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":summary", AttributeValue::S(result.summary.clone()))
            .expression_attribute_values(":prCount", number(result.pr_count))
            .expression_attribute_values(":summarizedPrCount", number(result.summarized_pr_count))
            .expression_attribute_values(":truncated", AttributeValue::Bool(result.truncated))
            .expression_attribute_values(":inputTokens", number(result.usage.input_tokens))
            .expression_attribute_values(":outputTokens", number(result.usage.output_tokens));
        update = match &result.model {
            Some(model) => {
                update.expression_attribute_values(":model", AttributeValue::S(model.clone()))
            }
            None => update.expression_attribute_values(":model", AttributeValue::Null(true)),
        };
        self.send_unfinished_update(id, update).await.map(drop)
    }

    async fn fail(
        &self,
        id: &AnalysisId,
        error: &AnalysisError,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let update = self
            .unfinished_update(id)
            .update_expression("SET #status = :failedNow, #updatedAt = :now, #errorCode = :code, #errorMessage = :message")
            .expression_attribute_names("#updatedAt", attr::UPDATED_AT)
            .expression_attribute_names("#errorCode", attr::ERROR_CODE)
            .expression_attribute_names("#errorMessage", attr::ERROR_MESSAGE)
            .expression_attribute_values(":failedNow", status_value(AnalysisStatus::Failed))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":code", AttributeValue::S(error.code.as_str().into()))
            .expression_attribute_values(":message", AttributeValue::S(error.message.clone()));
        self.send_unfinished_update(id, update).await.map(drop)
    }
}
