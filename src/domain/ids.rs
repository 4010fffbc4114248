//! Ids, times and page sizes: the small conventions every layer shares.

use super::error::{AppError, AppResult};

/// A new time-ordered id (UUIDv7, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Microseconds since the Unix epoch: how every timestamp is stored.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// Checks a chat/message/user id argument: empty is a client error; anything
/// that cannot be an id simply does not exist.
pub fn parse_id(field: &'static str, raw: &str) -> AppResult<String> {
    if raw.is_empty() {
        return Err(AppError::invalid(field, "is required"));
    }
    match uuid::Uuid::try_parse(raw) {
        Ok(id) => Ok(id.to_string()),
        Err(_) => Err(AppError::NotFound(match field {
            "message_id" => "message",
            "user_id" => "user",
            _ => "chat",
        })),
    }
}

/// Page sizes: 0 or negative means the default; otherwise clamped to 1..=100.
pub fn clamp_limit(limit: i32, default: i64) -> i64 {
    if limit <= 0 {
        default
    } else {
        i64::from(limit).min(100)
    }
}

/// The key that makes a direct chat between two people unique, whichever of
/// them opens it.
pub fn direct_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}:{b}")
    } else {
        format!("{b}:{a}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(clamp_limit(0, 20), 20);
        assert_eq!(clamp_limit(-5, 50), 50);
        assert_eq!(clamp_limit(1, 20), 1);
        assert_eq!(clamp_limit(101, 20), 100);
        assert_eq!(clamp_limit(i32::MAX, 20), 100);
    }

    #[test]
    fn direct_keys_do_not_depend_on_who_opens() {
        assert_eq!(direct_key("a", "b"), direct_key("b", "a"));
        assert_ne!(direct_key("a", "b"), direct_key("a", "c"));
    }
}
