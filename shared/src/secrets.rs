//! Secret values (API keys) resolved at cold start.
//!
//! Deployed functions name an SSM Parameter Store `SecureString` in
//! `<NAME>_PARAMETER`; local runs may set `<NAME>` directly. Values are held
//! as [`SecretString`], whose `Debug` output is redacted.

use aws_sdk_ssm::error::DisplayErrorContext;
use secrecy::SecretString;

use crate::config::Environment;

/// A secret that could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("set {name} or {name}_PARAMETER (the name of an SSM SecureString parameter)")]
    Missing { name: &'static str },
    #[error("reading SSM parameter {parameter} for {name} failed: {reason}")]
    Ssm {
        name: &'static str,
        parameter: String,
        reason: String,
    },
}

/// Resolves secret `name` from the environment, else from the SSM parameter named in `<name>_PARAMETER`.
pub async fn resolve_secret(
    env: &Environment,
    ssm: impl FnOnce() -> aws_sdk_ssm::Client,
    name: &'static str,
) -> Result<SecretString, SecretError> {
    if let Some(value) = env.get(name) {
        return Ok(SecretString::from(value));
    }

    let parameter_variable = format!("{name}_PARAMETER");
    let Some(parameter) = env.get(&parameter_variable) else {
        return Err(SecretError::Missing { name });
    };

    let output = ssm()
        .get_parameter()
        .name(&parameter)
        .with_decryption(true)
        .send()
        .await
        .map_err(|error| SecretError::Ssm {
            name,
            parameter: parameter.clone(),
            reason: DisplayErrorContext(&error).to_string(),
        })?;

    match output.parameter.and_then(|p| p.value) {
        Some(value) if !value.is_empty() => Ok(SecretString::from(value)),
        _ => Err(SecretError::Ssm {
            name,
            parameter,
            reason: String::from("the parameter has no value"),
        }),
    }
}
