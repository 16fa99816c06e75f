//! Nango connection ids, parsed once from caller input.

use std::fmt;

/// Maximum length Nango accepts for a connection id.
const MAX_CONNECTION_ID_LEN: usize = 255;

/// The id of a Nango connection: 1-255 characters from the set Nango's own
/// API schema allows (letters, digits, space and `,.;:=+~[]|@${}"'\/_-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionId(String);

/// The reason a string is not a Nango connection id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionIdError {
    #[error("must not be empty: send the connection id that Nango returned when the user connected GitHub")]
    Empty,
    #[error("must be at most 255 characters")]
    TooLong,
    #[error("may contain only letters, digits, spaces and ,.;:=+~[]|@${{}}\"'\\/_-")]
    InvalidCharacter,
}

impl ConnectionId {
    pub fn parse(input: &str) -> Result<Self, ConnectionIdError> {
        if input.is_empty() {
            return Err(ConnectionIdError::Empty);
        }
        if input.len() > MAX_CONNECTION_ID_LEN {
            return Err(ConnectionIdError::TooLong);
        }
        if !input.bytes().all(is_allowed_byte) {
            return Err(ConnectionIdError::InvalidCharacter);
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_allowed_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b",.;:=+~[]|@${}\"'\\/_ -".contains(&byte)
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_nango_ids() {
        for input in [
            "conn-1",
            "user@example.com",
            "org/team:42",
            "{\"a\":1}",
            "a b",
        ] {
            assert_eq!(
                ConnectionId::parse(input).map(|c| c.to_string()),
                Ok(input.to_owned())
            );
        }
    }

    #[test]
    fn parse_rejects_invalid_ids() {
        assert_eq!(ConnectionId::parse(""), Err(ConnectionIdError::Empty));
        assert_eq!(
            ConnectionId::parse(&"a".repeat(256)),
            Err(ConnectionIdError::TooLong)
        );
        assert_eq!(
            ConnectionId::parse("a?b"),
            Err(ConnectionIdError::InvalidCharacter)
        );
        assert_eq!(
            ConnectionId::parse("a\nb"),
            Err(ConnectionIdError::InvalidCharacter)
        );
        assert_eq!(
            ConnectionId::parse("é"),
            Err(ConnectionIdError::InvalidCharacter)
        );
        assert!(ConnectionId::parse(&"a".repeat(255)).is_ok());
    }
}
