//! GitHub repository names, parsed once from caller input.

use std::fmt;

/// Maximum length of a GitHub account (owner) login.
const MAX_OWNER_LEN: usize = 39;
/// Maximum length of a GitHub repository name.
const MAX_NAME_LEN: usize = 100;

/// A repository as `owner/name`, checked against GitHub's naming rules.
///
/// Owners are 1-39 of `[A-Za-z0-9-]`; old accounts may have leading, trailing
/// or doubled hyphens, so those are accepted. Names are 1-100 of
/// `[A-Za-z0-9._-]`, never `.` or `..`, and a trailing `.git` is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryName {
    owner: String,
    name: String,
}

/// The reason a string is not a GitHub `owner/name`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RepositoryNameError {
    #[error("expected \"owner/name\" with exactly one '/', for example \"octo-org/hello-world\"")]
    NotOwnerSlashName,
    #[error("the owner must be 1 to 39 letters, digits or hyphens")]
    InvalidOwner,
    #[error("the repository name must be 1 to 100 letters, digits, '.', '_' or '-', and not '.' or '..'")]
    InvalidName,
}

impl RepositoryName {
    /// Parses `owner/name`, dropping a trailing `.git` from the name.
    pub fn parse(input: &str) -> Result<Self, RepositoryNameError> {
        let mut parts = input.split('/');
        let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(RepositoryNameError::NotOwnerSlashName);
        };

        let owner_is_valid = (1..=MAX_OWNER_LEN).contains(&owner.len())
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !owner_is_valid {
            return Err(RepositoryNameError::InvalidOwner);
        }

        let name = name.strip_suffix(".git").unwrap_or(name);
        let name_is_valid = (1..=MAX_NAME_LEN).contains(&name.len())
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_is_valid {
            return Err(RepositoryNameError::InvalidName);
        }

        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_valid_names() {
        for (input, expected) in [
            ("octo-org/hello-world", "octo-org/hello-world"),
            ("a/b", "a/b"),
            ("-old--account-/x", "-old--account-/x"),
            ("rust-lang/rust.vim", "rust-lang/rust.vim"),
            ("owner/repo.git", "owner/repo"),
            ("owner/.github", "owner/.github"),
            ("owner/..x", "owner/..x"),
        ] {
            let parsed = RepositoryName::parse(input);
            assert_eq!(
                parsed.map(|r| r.to_string()),
                Ok(expected.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn parse_rejects_invalid_names() {
        use RepositoryNameError::*;
        let long_owner = format!("{}/x", "a".repeat(40));
        let long_name = format!("x/{}", "a".repeat(101));
        for (input, expected) in [
            ("octo-org", NotOwnerSlashName),
            ("octo-org/hello/../../user", NotOwnerSlashName),
            ("../x", InvalidOwner),
            ("a/b?x=1", InvalidName),
            ("", NotOwnerSlashName),
            ("/repo", InvalidOwner),
            ("owner/", InvalidName),
            ("owner/.", InvalidName),
            ("owner/..", InvalidName),
            ("owner/.git", InvalidName),
            ("own_er/repo", InvalidOwner),
            ("owner/re po", InvalidName),
            ("owner/répo", InvalidName),
            (long_owner.as_str(), InvalidOwner),
            (long_name.as_str(), InvalidName),
        ] {
            assert_eq!(RepositoryName::parse(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn parse_accepts_length_limits() {
        let owner = "a".repeat(39);
        let name = "b".repeat(100);
        let parsed = RepositoryName::parse(&format!("{owner}/{name}"));
        assert!(parsed.is_ok());
    }
}
