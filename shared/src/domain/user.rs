//! The authenticated caller of the HTTP API.

use std::fmt;

/// Maximum length of a user id, because Nango tag values are limited to 255 characters.
const MAX_USER_ID_LEN: usize = 255;

/// The identity provider's subject (`sub`) of the signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

/// The reason a subject cannot be used as a user id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserIdError {
    #[error("the user id is empty")]
    Empty,
    #[error("the user id is longer than 255 characters")]
    TooLong,
    #[error("the user id contains a control character")]
    ControlCharacter,
}

impl UserId {
    pub fn parse(input: &str) -> Result<Self, UserIdError> {
        if input.trim().is_empty() {
            return Err(UserIdError::Empty);
        }
        if input.chars().count() > MAX_USER_ID_LEN {
            return Err(UserIdError::TooLong);
        }
        if input.chars().any(char::is_control) {
            return Err(UserIdError::ControlCharacter);
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_subject() {
        assert!(UserId::parse("auth0|123").is_ok());
        assert_eq!(UserId::parse(""), Err(UserIdError::Empty));
        assert_eq!(UserId::parse("  "), Err(UserIdError::Empty));
        assert_eq!(UserId::parse(&"é".repeat(256)), Err(UserIdError::TooLong));
        assert!(UserId::parse(&"é".repeat(255)).is_ok());
        assert_eq!(UserId::parse("a\u{0}b"), Err(UserIdError::ControlCharacter));
    }
}
