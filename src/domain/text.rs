//! The text people type: message content, idempotency keys, chat names.
//! Each parses into a value that can only hold what the rules allow.

use super::error::{AppError, AppResult};

/// Message content: 1–4096 characters, not blank, kept byte for byte.
#[derive(Debug, Clone)]
pub struct Content(String);

pub const MAX_CONTENT_CHARS: usize = 4096;

impl Content {
    pub fn parse(raw: String) -> AppResult<Content> {
        if raw.is_empty() {
            return Err(AppError::invalid("content", "is required"));
        }
        // Cheap bound first: more than 4 bytes per character is impossible.
        if raw.len() > MAX_CONTENT_CHARS * 4 || raw.chars().count() > MAX_CONTENT_CHARS {
            return Err(AppError::invalid(
                "content",
                format!("must be at most {MAX_CONTENT_CHARS} characters"),
            ));
        }
        if raw.trim().is_empty() {
            return Err(AppError::invalid("content", "must not be blank"));
        }
        // PostgreSQL text cannot hold NUL; refuse it on every backend alike.
        if raw.contains('\0') {
            return Err(AppError::invalid(
                "content",
                "must not contain NUL characters",
            ));
        }
        Ok(Content(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An idempotency key: up to 128 printable characters; empty means none.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse_optional(raw: String) -> AppResult<Option<IdempotencyKey>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > 128 {
            return Err(AppError::invalid(
                "idempotency_key",
                "must be at most 128 characters",
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "idempotency_key",
                "must not contain control characters",
            ));
        }
        Ok(Some(IdempotencyKey(raw)))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A chat name: 1–50 characters, not blank, no control characters.
#[derive(Debug, Clone)]
pub struct ChatName(String);

impl ChatName {
    /// `Ok(None)` for an empty name (allowed for direct chats only).
    pub fn parse_optional(raw: &str) -> AppResult<Option<ChatName>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > 50 {
            return Err(AppError::invalid("name", "must be at most 50 characters"));
        }
        if raw.trim().is_empty() {
            return Err(AppError::invalid("name", "must not be blank"));
        }
        if raw.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Some(ChatName(raw.to_owned())))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_rules() {
        assert!(Content::parse(String::new()).is_err());
        assert!(Content::parse(" \n\t ".into()).is_err());
        assert!(Content::parse("a\0b".into()).is_err());
        assert!(Content::parse("é".repeat(4096)).is_ok());
        assert!(Content::parse("é".repeat(4097)).is_err());
        let kept = Content::parse("  padded\r\n ".into()).unwrap();
        assert_eq!(kept.as_str(), "  padded\r\n ");
    }

    #[test]
    fn names() {
        assert!(ChatName::parse_optional("").unwrap().is_none());
        assert!(ChatName::parse_optional("Team 🚀").unwrap().is_some());
        assert!(ChatName::parse_optional(&"é".repeat(50)).unwrap().is_some());
        assert!(ChatName::parse_optional(&"é".repeat(51)).is_err());
        assert!(ChatName::parse_optional("   ").is_err());
        assert!(ChatName::parse_optional("a\nb").is_err());
    }
}
