//! Nango API client: connect sessions and connections with fresh credentials.

use std::collections::HashMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{build_http_client, TransportError};
use crate::config::NangoConfig;
use crate::domain::{ConnectionId, UserId};

/// Characters left as they are in a path segment; everything else, `/` included, is encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A Nango connect session: its token opens the Connect UI for 30 minutes.
#[derive(Debug)]
pub struct ConnectSession {
    pub token: SecretString,
    pub expires_at: OffsetDateTime,
}

/// A connection as returned by `GET /connections/{id}`.
#[derive(Debug)]
pub struct Connection {
    pub connection_id: String,
    pub provider_config_key: String,
    pub tags: HashMap<String, String>,
    /// `end_user.id`, set on connections made the older way.
    pub end_user_id: Option<String>,
    pub credentials: Credentials,
}

/// A connection's credentials, reduced to what calling GitHub needs.
#[derive(Debug)]
pub enum Credentials {
    /// A token usable as a GitHub bearer token (`OAUTH2`, `APP` or `API_KEY`).
    Token(SecretString),
    /// Credentials of another type, named here, that carry no GitHub token.
    Unsupported(String),
}

/// A failed Nango call.
#[derive(Debug, thiserror::Error)]
pub enum NangoError {
    #[error("Nango request failed: {0}")]
    Transport(#[from] TransportError),
    #[error("Nango returned {status} with error code {code:?}: {message}")]
    Rejected {
        status: StatusCode,
        code: String,
        message: String,
        retry_after_seconds: Option<u64>,
    },
    #[error("Nango returned {status} with a body that could not be read: {reason}")]
    InvalidResponse { status: StatusCode, reason: String },
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct SessionBody {
    data: SessionData,
}

#[derive(Deserialize)]
struct SessionData {
    token: String,
    #[serde(with = "time::serde::iso8601")]
    expires_at: OffsetDateTime,
}

#[derive(Deserialize)]
struct ConnectionBody {
    connection_id: String,
    provider_config_key: String,
    #[serde(default)]
    tags: HashMap<String, String>,
    #[serde(default)]
    end_user: Option<EndUser>,
    #[serde(default)]
    credentials: Value,
}

#[derive(Deserialize)]
struct EndUser {
    id: String,
}

/// A client of one Nango environment, authenticated with its secret key.
#[derive(Debug, Clone)]
pub struct NangoClient {
    http: reqwest::Client,
    config: NangoConfig,
}

impl NangoClient {
    pub fn new(config: NangoConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: build_http_client(config.timeouts)?,
            config,
        })
    }

    /// Returns the total timeout of one call.
    pub fn timeout(&self) -> std::time::Duration {
        self.config.timeouts.total
    }

    pub fn integration_id(&self) -> &str {
        &self.config.integration_id
    }

    /// Creates a connect session whose connections are tagged with `end_user_id`
    /// and limited to the configured integration.
    pub async fn create_connect_session(
        &self,
        user: &UserId,
    ) -> Result<ConnectSession, NangoError> {
        let url = self.url(&["connect", "sessions"]);
        let body = json!({
            "tags": { "end_user_id": user.as_str() },
            "allowed_integrations": [self.config.integration_id],
        });

        let response = self
            .http
            .post(url)
            .bearer_auth(self.config.secret_key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(TransportError::from)?;

        let status = response.status();
        if status != StatusCode::CREATED && status != StatusCode::OK {
            return Err(rejection(response).await);
        }

        let bytes = response.bytes().await.map_err(TransportError::from)?;
        let session: SessionBody =
            serde_json::from_slice(&bytes).map_err(|error| NangoError::InvalidResponse {
                status,
                reason: error.to_string(),
            })?;
        Ok(ConnectSession {
            token: SecretString::from(session.data.token),
            expires_at: session.data.expires_at,
        })
    }

    /// Reads a connection of the configured integration. Nango refreshes an
    /// access token that is about to expire before it responds.
    pub async fn get_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<Connection, NangoError> {
        self.fetch_connection(connection_id, false).await
    }

    /// Reads a connection after making Nango refresh its token, for a token
    /// that GitHub rejected although Nango reported it valid.
    pub async fn get_connection_with_new_token(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<Connection, NangoError> {
        self.fetch_connection(connection_id, true).await
    }

    async fn fetch_connection(
        &self,
        connection_id: &ConnectionId,
        force_refresh: bool,
    ) -> Result<Connection, NangoError> {
        let mut url = self.url(&["connections"]);
        url.set_path(&format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            utf8_percent_encode(connection_id.as_str(), PATH_SEGMENT)
        ));
        url.query_pairs_mut()
            .append_pair("provider_config_key", &self.config.integration_id);
        if force_refresh {
            url.query_pairs_mut().append_pair("force_refresh", "true");
        }

        let response = self
            .http
            .get(url)
            .bearer_auth(self.config.secret_key.expose_secret())
            .send()
            .await
            .map_err(TransportError::from)?;

        let status = response.status();
        if status != StatusCode::OK {
            return Err(rejection(response).await);
        }

        let bytes = response.bytes().await.map_err(TransportError::from)?;
        let body: ConnectionBody =
            serde_json::from_slice(&bytes).map_err(|error| NangoError::InvalidResponse {
                status,
                reason: error.to_string(),
            })?;
        Ok(Connection {
            connection_id: body.connection_id,
            provider_config_key: body.provider_config_key,
            tags: body.tags,
            end_user_id: body.end_user.map(|user| user.id),
            credentials: Credentials::from_json(&body.credentials),
        })
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.config.base_url.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}/{}", segments.join("/")));
        url
    }
}

impl Connection {
    /// Returns the connection's owner: `tags.end_user_id`, else the older `end_user.id`.
    pub fn owner(&self) -> Option<&str> {
        self.tags
            .get("end_user_id")
            .or(self.end_user_id.as_ref())
            .map(String::as_str)
    }
}

impl Credentials {
    fn from_json(credentials: &Value) -> Self {
        let kind = credentials
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("none");
        let token = match kind {
            "OAUTH2" | "APP" => credentials.get("access_token"),
            "API_KEY" => credentials.get("apiKey"),
            _ => None,
        };
        match token.and_then(Value::as_str) {
            Some(token) if !token.is_empty() => Self::Token(SecretString::from(token.to_owned())),
            _ => Self::Unsupported(kind.to_owned()),
        }
    }
}

async fn rejection(response: reqwest::Response) -> NangoError {
    let status = response.status();
    let retry_after_seconds =
        super::header_str(response.headers(), "retry-after").and_then(|v| v.trim().parse().ok());
    let body = response.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => (
            error.code.unwrap_or_default(),
            error.message.unwrap_or_default(),
        ),
        Err(_) => (String::new(), String::new()),
    };
    NangoError::Rejected {
        status,
        code,
        message,
        retry_after_seconds,
    }
}

impl NangoError {
    /// Returns the HTTP status of Nango's response, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Rejected { status, .. } | Self::InvalidResponse { status, .. } => Some(*status),
            Self::Transport(_) => None,
        }
    }

    /// Nango's error code, if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Rejected { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_take_token_by_type() {
        let oauth = json!({"type": "OAUTH2", "access_token": "gho_1", "raw": {}});
        assert!(
            matches!(Credentials::from_json(&oauth), Credentials::Token(t) if t.expose_secret() == "gho_1")
        );
        let app = json!({"type": "APP", "access_token": "ghs_1"});
        assert!(
            matches!(Credentials::from_json(&app), Credentials::Token(t) if t.expose_secret() == "ghs_1")
        );
        let api_key = json!({"type": "API_KEY", "apiKey": "ghp_1"});
        assert!(
            matches!(Credentials::from_json(&api_key), Credentials::Token(t) if t.expose_secret() == "ghp_1")
        );
    }

    #[test]
    fn credentials_name_unsupported_type() {
        let custom = json!({"type": "CUSTOM", "app": {}, "user": {}});
        assert!(
            matches!(Credentials::from_json(&custom), Credentials::Unsupported(kind) if kind == "CUSTOM")
        );
        assert!(
            matches!(Credentials::from_json(&json!({})), Credentials::Unsupported(kind) if kind == "none")
        );
        let empty_token = json!({"type": "OAUTH2", "access_token": ""});
        assert!(
            matches!(Credentials::from_json(&empty_token), Credentials::Unsupported(kind) if kind == "OAUTH2")
        );
    }
}
