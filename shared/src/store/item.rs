//! Conversion between [`Analysis`] and DynamoDB items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{
    Analysis, AnalysisError, AnalysisId, AnalysisResult, AnalysisStatus, ConnectionId,
    RepositoryName, TokenUsage, UserId,
};

pub(super) type Item = HashMap<String, AttributeValue>;

/// Attribute names of an analysis item.
pub(super) mod attr {
    pub const ID: &str = "id";
    pub const OWNER_ID: &str = "ownerId";
    pub const REPO: &str = "repo";
    pub const CONNECTION_ID: &str = "connectionId";
    pub const STATUS: &str = "status";
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "updatedAt";
    pub const ATTEMPTS: &str = "attempts";
    pub const SUMMARY: &str = "summary";
    pub const PR_COUNT: &str = "prCount";
    pub const SUMMARIZED_PR_COUNT: &str = "summarizedPrCount";
    pub const TRUNCATED: &str = "truncated";
    pub const MODEL: &str = "model";
    pub const INPUT_TOKENS: &str = "inputTokens";
    pub const OUTPUT_TOKENS: &str = "outputTokens";
    pub const ERROR_CODE: &str = "errorCode";
    pub const ERROR_MESSAGE: &str = "errorMessage";
    /// Earliest time of the next attempt of a `retrying` analysis (RFC 3339).
    pub const NEXT_ATTEMPT_AT: &str = "nextAttemptAt";
    /// Unix seconds until which a worker attempt has the analysis to itself.
    pub const LEASE_EXPIRES_AT: &str = "leaseExpiresAt";
    /// Random token of the attempt that holds the lease.
    pub const LEASE_TOKEN: &str = "leaseToken";
    /// Unix seconds after which DynamoDB's TTL deletes the item.
    pub const EXPIRES_AT: &str = "expiresAt";
}

pub(super) fn timestamp(at: OffsetDateTime) -> AttributeValue {
    AttributeValue::S(at.format(&Rfc3339).unwrap_or_default())
}

pub(super) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn to_item(analysis: &Analysis, expires_at: OffsetDateTime) -> Item {
    let mut item = Item::new();
    item.insert(attr::ID.into(), AttributeValue::S(analysis.id.to_string()));
    item.insert(
        attr::OWNER_ID.into(),
        AttributeValue::S(analysis.owner.to_string()),
    );
    item.insert(
        attr::REPO.into(),
        AttributeValue::S(analysis.repository.to_string()),
    );
    item.insert(
        attr::CONNECTION_ID.into(),
        AttributeValue::S(analysis.connection_id.to_string()),
    );
    item.insert(
        attr::STATUS.into(),
        AttributeValue::S(analysis.status.as_str().into()),
    );
    item.insert(attr::CREATED_AT.into(), timestamp(analysis.created_at));
    item.insert(attr::UPDATED_AT.into(), timestamp(analysis.updated_at));
    item.insert(attr::ATTEMPTS.into(), number(analysis.attempts));
    item.insert(attr::EXPIRES_AT.into(), number(expires_at.unix_timestamp()));
    item
}

pub(super) fn from_item(item: &Item) -> Result<Analysis, StoreError> {
    let reader = Reader {
        item,
        id: string(item, attr::ID).unwrap_or("?"),
    };

    let id = AnalysisId::parse(reader.required_string(attr::ID)?)
        .ok_or_else(|| reader.malformed(attr::ID))?;
    let owner = UserId::parse(reader.required_string(attr::OWNER_ID)?)
        .map_err(|_| reader.malformed(attr::OWNER_ID))?;
    let repository = RepositoryName::parse(reader.required_string(attr::REPO)?)
        .map_err(|_| reader.malformed(attr::REPO))?;
    let connection_id = ConnectionId::parse(reader.required_string(attr::CONNECTION_ID)?)
        .map_err(|_| reader.malformed(attr::CONNECTION_ID))?;
    let status: AnalysisStatus = reader
        .required_string(attr::STATUS)?
        .parse()
        .map_err(|_| reader.malformed(attr::STATUS))?;

    let result = match string(item, attr::SUMMARY) {
        Some(summary) => Some(AnalysisResult {
            summary: summary.to_owned(),
            pr_count: reader.number(attr::PR_COUNT)?.unwrap_or(0),
            summarized_pr_count: reader.number(attr::SUMMARIZED_PR_COUNT)?.unwrap_or(0),
            truncated: matches!(item.get(attr::TRUNCATED), Some(AttributeValue::Bool(true))),
            model: string(item, attr::MODEL).map(str::to_owned),
            usage: TokenUsage {
                input_tokens: reader.number(attr::INPUT_TOKENS)?.unwrap_or(0),
                output_tokens: reader.number(attr::OUTPUT_TOKENS)?.unwrap_or(0),
            },
        }),
        None => None,
    };

    let error = match string(item, attr::ERROR_CODE) {
        Some(code) => Some(AnalysisError {
            code: code
                .parse()
                .map_err(|_| reader.malformed(attr::ERROR_CODE))?,
            message: string(item, attr::ERROR_MESSAGE)
                .unwrap_or_default()
                .to_owned(),
        }),
        None => None,
    };

    Ok(Analysis {
        id,
        owner,
        repository,
        connection_id,
        status,
        created_at: reader.timestamp(attr::CREATED_AT)?,
        updated_at: reader.timestamp(attr::UPDATED_AT)?,
        attempts: reader.number(attr::ATTEMPTS)?.unwrap_or(0),
        next_attempt_at: match string(item, attr::NEXT_ATTEMPT_AT) {
            Some(_) => Some(reader.timestamp(attr::NEXT_ATTEMPT_AT)?),
            None => None,
        },
        result,
        error,
    })
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

struct Reader<'a> {
    item: &'a Item,
    id: &'a str,
}

impl Reader<'_> {
    fn malformed(&self, name: &str) -> StoreError {
        StoreError::Malformed {
            id: self.id.to_owned(),
            reason: format!("attribute {name} is missing or invalid"),
        }
    }

    fn required_string(&self, name: &str) -> Result<&str, StoreError> {
        string(self.item, name).ok_or_else(|| self.malformed(name))
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(value)) => {
                value.parse().map(Some).map_err(|_| self.malformed(name))
            }
            Some(_) => Err(self.malformed(name)),
        }
    }

    fn timestamp(&self, name: &str) -> Result<OffsetDateTime, StoreError> {
        OffsetDateTime::parse(self.required_string(name)?, &Rfc3339)
            .map_err(|_| self.malformed(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_analysis_round_trips() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
        let analysis = Analysis::new(
            UserId::parse("user-1").expect("valid"),
            RepositoryName::parse("octo-org/hello").expect("valid"),
            ConnectionId::parse("conn-1").expect("valid"),
            now,
        );
        let item = to_item(&analysis, now);
        assert_eq!(from_item(&item).expect("readable"), analysis);
    }

    #[test]
    fn missing_attribute_is_malformed() {
        let mut item = Item::new();
        item.insert(
            attr::ID.into(),
            AttributeValue::S(AnalysisId::generate().to_string()),
        );
        let error = from_item(&item).expect_err("owner missing");
        assert!(error.to_string().contains(attr::OWNER_ID));
    }
}
