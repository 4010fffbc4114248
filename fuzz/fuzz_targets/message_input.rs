//! SendMessage input: content, idempotency key, and status names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::domain::AppError;
use tidings::domain::text::is_invisible;
use tidings::domain::{Content, IdempotencyKey, MAX_CONTENT_CHARS, Status};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let content_ok = !raw.is_empty()
        && raw.chars().count() <= MAX_CONTENT_CHARS
        && !raw.chars().all(|c| c.is_whitespace() || is_invisible(c))
        && !raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
    match Content::parse(raw.to_owned()) {
        Ok(_) => assert!(content_ok, "accepted content {raw:?}"),
        Err(AppError::Invalid { field, .. }) => {
            assert_eq!(field, "content");
            assert!(!content_ok, "refused content {raw:?}");
        }
        Err(other) => panic!("unexpected error: {other:?}"),
    }

    let key_ok = raw.chars().count() <= 128 && !raw.chars().any(char::is_control);
    match IdempotencyKey::parse_optional(raw.to_owned()) {
        Ok(None) => assert!(raw.is_empty()),
        Ok(Some(_)) => assert!(key_ok && !raw.is_empty(), "accepted key {raw:?}"),
        Err(AppError::Invalid { field, .. }) => {
            assert_eq!(field, "idempotency_key");
            assert!(!key_ok, "refused key {raw:?}");
        }
        Err(other) => panic!("unexpected error: {other:?}"),
    }

    match Status::parse(raw) {
        Ok(s) => assert!(s.as_str().eq_ignore_ascii_case(raw)),
        Err(AppError::Invalid { field, .. }) => assert_eq!(field, "status"),
        Err(other) => panic!("unexpected error: {other:?}"),
    }
});
