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
/// that is not an id as this server writes them simply does not exist.
pub fn parse_id(field: &'static str, raw: &str) -> AppResult<String> {
    if raw.is_empty() {
        return Err(AppError::invalid(field, "is required"));
    }
    match canonical_id(raw) {
        Some(id) => Ok(id.to_owned()),
        None => Err(AppError::NotFound(match field {
            "message_id" => "message",
            "user_id" => "user",
            _ => "chat",
        })),
    }
}

/// `raw` if it is an id in the one spelling ids have: a UUID, lower-case,
/// hyphenated (`0192e3a0-…`). Upper case, braces, `urn:uuid:` or no
/// hyphens are other spellings of the same UUID, which the uuid crate would
/// accept; they are not ids here, so every id has exactly one form.
pub fn canonical_id(raw: &str) -> Option<&str> {
    let id = uuid::Uuid::try_parse(raw).ok()?;
    (raw.len() == uuid::fmt::Hyphenated::LENGTH
        && id
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            == raw)
        .then_some(raw)
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
    fn ids_have_one_spelling() {
        let id = "0192e3a0-1b2c-7d3e-8f40-0123456789ab";
        assert_eq!(parse_id("chat_id", id).unwrap(), id);
        for other in [
            "0192E3A0-1B2C-7D3E-8F40-0123456789AB",
            "{0192e3a0-1b2c-7d3e-8f40-0123456789ab}",
            "urn:uuid:0192e3a0-1b2c-7d3e-8f40-0123456789ab",
            "0192e3a01b2c7d3e8f400123456789ab",
            " 0192e3a0-1b2c-7d3e-8f40-0123456789ab",
        ] {
            assert!(
                matches!(parse_id("chat_id", other), Err(AppError::NotFound("chat"))),
                "{other}"
            );
        }
        assert!(matches!(
            parse_id("chat_id", ""),
            Err(AppError::Invalid {
                field: "chat_id",
                ..
            })
        ));
    }

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
