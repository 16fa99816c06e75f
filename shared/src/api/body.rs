//! Reading a JSON request body: media type, size, then a JSON object.

use lambda_http::http::header;
use lambda_http::{Body, Request};
use serde_json::{Map, Value};

use super::ApiError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Returns the body as a JSON object after checking its media type and size.
///
/// The media type must be `application/json` in any case, parameters such as
/// `charset` allowed. `lambda_http` has already decoded a base64-encoded body.
pub fn json_object(request: &Request) -> Result<Map<String, Value>, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }

    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            max_bytes: MAX_BODY_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidRequest {
            field: None,
            message: String::from("The request body is empty: send a JSON object."),
        });
    }

    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::InvalidRequest {
            field: None,
            message: String::from("The request body must be a JSON object."),
        }),
        Err(error) => Err(ApiError::InvalidRequest {
            field: None,
            message: format!("The request body is not valid JSON ({error}): send a JSON object."),
        }),
    }
}

/// Returns the string field `name`, or a 400 that names the field and the fix.
pub fn required_string<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    expected: &str,
) -> Result<&'a str, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Err(ApiError::invalid_field(
            name,
            format!("{name} is missing: expected {expected}."),
        )),
        Some(Value::String(value)) => Ok(value),
        Some(other) => Err(ApiError::invalid_field(
            name,
            format!(
                "{name} must be a string, not {}: expected {expected}.",
                json_type(other)
            ),
        )),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
