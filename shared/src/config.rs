//! Configuration read once from environment variables at cold start.
//!
//! Every base URL, limit and timeout can be set, so the same binaries run
//! against real AWS and upstreams, the local stack, or a test's mocks.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::domain::PromptLimits;

/// A configuration value that is missing or cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error(
        "AUTH_MODE=dev trusts an unverified header and is refused inside AWS Lambda; \
         use AUTH_MODE=jwt, or set ALLOW_DEV_AUTH_IN_AWS=true for a test deployment"
    )]
    DevAuthInAws,
    #[error("invalid environment variable {name}={value:?}: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// The source of configuration values: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    overrides: Option<HashMap<String, String>>,
}

impl Environment {
    pub fn process() -> Self {
        Self { overrides: None }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let map = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            overrides: Some(map),
        }
    }

    /// Returns the value of `name`, treating an empty value as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.overrides {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    pub fn parsed_or<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
                name,
                value,
                expected,
            }),
        }
    }

    pub fn url_or(&self, name: &'static str, default: &str) -> Result<Url, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        match Url::parse(&value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
            _ => Err(ConfigError::Invalid {
                name,
                value,
                expected: "an http or https URL",
            }),
        }
    }

    pub fn millis_or(&self, name: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parsed_or(name, default_ms, "a whole number of milliseconds")?;
        if ms == 0 {
            return Err(ConfigError::Invalid {
                name,
                value: "0".into(),
                expected: "a positive number of milliseconds",
            });
        }
        Ok(Duration::from_millis(ms))
    }
}

/// Connect and total timeouts of one upstream's HTTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    pub connect: Duration,
    pub total: Duration,
}

/// Settings of the Nango API client.
#[derive(Debug, Clone)]
pub struct NangoConfig {
    pub base_url: Url,
    pub secret_key: SecretString,
    /// The id of the GitHub integration in Nango (its provider config key).
    pub integration_id: String,
    pub timeouts: HttpTimeouts,
}

impl NangoConfig {
    /// Reads `NANGO_BASE_URL`, `NANGO_INTEGRATION_ID`, `NANGO_CONNECT_TIMEOUT_MS` and
    /// `NANGO_TIMEOUT_MS`; the secret key is resolved separately (see [`crate::secrets`]).
    pub fn from_env(env: &Environment, secret_key: SecretString) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: env.url_or("NANGO_BASE_URL", "https://api.nango.dev")?,
            secret_key,
            integration_id: env
                .get("NANGO_INTEGRATION_ID")
                .unwrap_or_else(|| "github".into()),
            timeouts: HttpTimeouts {
                connect: env.millis_or("NANGO_CONNECT_TIMEOUT_MS", 2_000)?,
                total: env.millis_or("NANGO_TIMEOUT_MS", 5_000)?,
            },
        })
    }
}

/// Settings of the GitHub REST client.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub api_url: Url,
    /// Open pull requests read at most per analysis.
    pub max_pull_requests: usize,
    pub timeouts: HttpTimeouts,
}

impl GithubConfig {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let max_pull_requests =
            env.parsed_or("MAX_PULL_REQUESTS", 200, "a whole number from 1 to 1000")?;
        if !(1..=1000).contains(&max_pull_requests) {
            return Err(ConfigError::Invalid {
                name: "MAX_PULL_REQUESTS",
                value: max_pull_requests.to_string(),
                expected: "a whole number from 1 to 1000",
            });
        }
        Ok(Self {
            api_url: env.url_or("GITHUB_API_URL", "https://api.github.com")?,
            max_pull_requests,
            timeouts: HttpTimeouts {
                connect: env.millis_or("GITHUB_CONNECT_TIMEOUT_MS", 2_000)?,
                total: env.millis_or("GITHUB_TIMEOUT_MS", 10_000)?,
            },
        })
    }
}

/// Settings of the Anthropic Messages API client.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    pub base_url: Url,
    pub api_key: SecretString,
    pub model: String,
    pub max_tokens: u32,
    pub timeouts: HttpTimeouts,
}

impl AnthropicConfig {
    pub fn from_env(env: &Environment, api_key: SecretString) -> Result<Self, ConfigError> {
        let max_tokens = env.parsed_or(
            "CLAUDE_MAX_TOKENS",
            2_048u32,
            "a whole number of tokens from 1 to 64000",
        )?;
        if !(1..=64_000).contains(&max_tokens) {
            return Err(ConfigError::Invalid {
                name: "CLAUDE_MAX_TOKENS",
                value: max_tokens.to_string(),
                expected: "a whole number of tokens from 1 to 64000",
            });
        }
        Ok(Self {
            base_url: env.url_or("ANTHROPIC_BASE_URL", "https://api.anthropic.com")?,
            api_key,
            model: env
                .get("CLAUDE_MODEL")
                .unwrap_or_else(|| "claude-opus-4-6".into()),
            max_tokens,
            timeouts: HttpTimeouts {
                connect: env.millis_or("ANTHROPIC_CONNECT_TIMEOUT_MS", 3_000)?,
                total: env.millis_or("ANTHROPIC_TIMEOUT_MS", 120_000)?,
            },
        })
    }
}

/// Settings of the worker that are not a client's.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    pub prompt_limits: PromptLimits,
    /// Deliveries of one message before its analysis is marked failed. Set it
    /// to the queue's `maxReceiveCount`, so no analysis stays `retrying` after
    /// its message has gone to the dead-letter queue.
    pub max_attempts: u32,
    pub retry: crate::worker::RetryPolicy,
}

impl WorkerConfig {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let attempts = env.parsed_or("MAX_ATTEMPTS", 5, "a whole number from 1 to 1000")?;
        if !(1..=1000).contains(&attempts) {
            return Err(ConfigError::Invalid {
                name: "MAX_ATTEMPTS",
                value: attempts.to_string(),
                expected: "a whole number from 1 to 1000",
            });
        }
        Ok(Self {
            prompt_limits: PromptLimits {
                max_body_chars: env.parsed_or(
                    "PR_BODY_MAX_CHARS",
                    2_000,
                    "a whole number of characters",
                )?,
                max_data_chars: env.parsed_or(
                    "PROMPT_MAX_CHARS",
                    400_000,
                    "a whole number of characters",
                )?,
            },
            max_attempts: attempts,
            retry: crate::worker::RetryPolicy::default(),
        })
    }
}

/// The source of the caller's identity in the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The `sub` claim that API Gateway's JWT authorizer verified.
    Jwt,
    /// The `x-user-id` header, unverified: for local runs only.
    Dev,
}

/// Settings of the HTTP API functions.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub auth_mode: AuthMode,
    /// Origins allowed by CORS, compared exactly (scheme, host and port).
    pub allowed_origins: Vec<String>,
}

impl ApiConfig {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let auth_mode = match env.get("AUTH_MODE").as_deref() {
            None | Some("jwt") => AuthMode::Jwt,
            Some("dev") => AuthMode::Dev,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "AUTH_MODE",
                    value: other.into(),
                    expected: "jwt or dev",
                })
            }
        };
        // Real Lambda sets AWS_LAMBDA_INITIALIZATION_TYPE; `cargo lambda watch` does not.
        let inside_aws = env.get("AWS_LAMBDA_INITIALIZATION_TYPE").is_some();
        let dev_allowed = env.get("ALLOW_DEV_AUTH_IN_AWS").as_deref() == Some("true");
        if auth_mode == AuthMode::Dev && inside_aws && !dev_allowed {
            return Err(ConfigError::DevAuthInAws);
        }

        let allowed_origins = env
            .get("ALLOWED_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            auth_mode,
            allowed_origins,
        })
    }
    /// Logs a start-up warning when callers are identified by an unverified header.
    pub fn warn_if_dev_mode(&self) {
        if self.auth_mode == AuthMode::Dev {
            tracing::warn!(
                "AUTH_MODE=dev: callers are identified by the unverified x-user-id header; never deploy this setting"
            );
        }
    }
}

/// Settings of the DynamoDB table and the SQS queue.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub table_name: String,
    pub queue_url: String,
    /// Days after which DynamoDB's TTL deletes an analysis.
    pub analysis_ttl_days: u32,
}

impl StorageConfig {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required("ANALYSES_TABLE")?,
            queue_url: env.get("ANALYSIS_QUEUE_URL").unwrap_or_default(),
            analysis_ttl_days: env.parsed_or("ANALYSIS_TTL_DAYS", 30, "a whole number of days")?,
        })
    }
}

/// Settings of the access table: connection owners and hourly quotas.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub table_name: String,
    /// New analyses a user may request per clock hour.
    pub max_analyses_per_hour: u32,
    /// Days after which DynamoDB's TTL deletes an ownership record.
    pub ttl_days: u32,
}

impl AccessConfig {
    /// Reads `ACCESS_TABLE`, `MAX_ANALYSES_PER_HOUR` (default 30) and `ANALYSIS_TTL_DAYS` (default 30).
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let max_analyses_per_hour = env.parsed_or(
            "MAX_ANALYSES_PER_HOUR",
            30,
            "a whole number from 1 to 10000",
        )?;
        if !(1..=10_000).contains(&max_analyses_per_hour) {
            return Err(ConfigError::Invalid {
                name: "MAX_ANALYSES_PER_HOUR",
                value: max_analyses_per_hour.to_string(),
                expected: "a whole number from 1 to 10000",
            });
        }
        Ok(Self {
            table_name: env.required("ACCESS_TABLE")?,
            max_analyses_per_hour,
            ttl_days: env.parsed_or("ANALYSIS_TTL_DAYS", 30, "a whole number of days")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_unset() {
        let env = Environment::from_pairs([]);
        let github = GithubConfig::from_env(&env).expect("defaults are valid");
        assert_eq!(github.max_pull_requests, 200);
        assert_eq!(github.api_url.as_str(), "https://api.github.com/");
        let anthropic =
            AnthropicConfig::from_env(&env, SecretString::from("k")).expect("defaults are valid");
        assert_eq!(anthropic.model, "claude-opus-4-6");
    }

    #[test]
    fn invalid_values_name_variable() {
        let env =
            Environment::from_pairs([("MAX_PULL_REQUESTS", "many"), ("GITHUB_API_URL", "ftp://x")]);
        let error = GithubConfig::from_env(&env).expect_err("invalid");
        assert!(matches!(
            error,
            ConfigError::Invalid {
                name: "MAX_PULL_REQUESTS",
                ..
            }
        ));
        let env = Environment::from_pairs([("GITHUB_API_URL", "ftp://x")]);
        let error = GithubConfig::from_env(&env).expect_err("invalid");
        assert!(matches!(
            error,
            ConfigError::Invalid {
                name: "GITHUB_API_URL",
                ..
            }
        ));
        let env = Environment::from_pairs([("AUTH_MODE", "none")]);
        assert!(ApiConfig::from_env(&env).is_err());
    }

    #[test]
    fn dev_auth_refused_inside_aws() {
        let in_lambda = Environment::from_pairs([
            ("AUTH_MODE", "dev"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ]);
        let overridden = Environment::from_pairs([
            ("AUTH_MODE", "dev"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            ("ALLOW_DEV_AUTH_IN_AWS", "true"),
        ]);
        let local = Environment::from_pairs([
            ("AUTH_MODE", "dev"),
            ("AWS_LAMBDA_FUNCTION_NAME", "analyze-api"),
        ]);
        let jwt_in_lambda =
            Environment::from_pairs([("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")]);

        assert_eq!(
            ApiConfig::from_env(&in_lambda).err(),
            Some(ConfigError::DevAuthInAws)
        );
        assert_eq!(
            ApiConfig::from_env(&overridden).map(|c| c.auth_mode).ok(),
            Some(AuthMode::Dev)
        );
        assert_eq!(
            ApiConfig::from_env(&local).map(|c| c.auth_mode).ok(),
            Some(AuthMode::Dev)
        );
        assert_eq!(
            ApiConfig::from_env(&jwt_in_lambda)
                .map(|c| c.auth_mode)
                .ok(),
            Some(AuthMode::Jwt)
        );
    }

    #[test]
    fn allowed_origins_are_split() {
        let env = Environment::from_pairs([(
            "ALLOWED_ORIGINS",
            "https://a.example, http://localhost:5173/ ,",
        )]);
        let api = ApiConfig::from_env(&env).expect("valid");
        assert_eq!(
            api.allowed_origins,
            vec!["https://a.example", "http://localhost:5173"]
        );
        assert_eq!(api.auth_mode, AuthMode::Jwt);
    }
}
