//! Chat / message / user id arguments and page-size clamping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::domain::{ChatName, clamp_limit, parse_id};
use tidings::domain::AppError;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let limit = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let default = i64::from(data.first().copied().unwrap_or(0) % 100) + 1;
        let got = clamp_limit(limit, default);
        if limit <= 0 {
            assert_eq!(got, default);
        } else {
            assert!((1..=100).contains(&got), "{limit} -> {got}");
            assert_eq!(got, i64::from(limit).min(100));
        }
    }
    // gRPC strings are UTF-8 (prost refuses anything else).
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for field in ["chat_id", "message_id", "user_id"] {
        match parse_id(field, raw) {
            Ok(id) => {
                // Canonical: parses to the same id again, hyphenated lower-case.
                let again = uuid::Uuid::try_parse(&id).expect("canonical id parses");
                assert_eq!(again.to_string(), id);
                assert_eq!(id.len(), 36);
                assert_eq!(parse_id(field, &id).unwrap(), id);
            }
            Err(AppError::Invalid { field: f, .. }) => {
                assert!(raw.is_empty());
                assert_eq!(f, field);
            }
            Err(AppError::NotFound(_)) => assert!(!raw.is_empty()),
            Err(other) => panic!("unexpected error for {raw:?}: {other:?}"),
        }
    }
    match ChatName::parse_optional(raw) {
        Ok(None) => assert!(raw.is_empty()),
        Ok(Some(_)) => {
            let n = raw.chars().count();
            assert!((1..=50).contains(&n));
            assert!(!raw.trim().is_empty());
            assert!(!raw.chars().any(char::is_control));
        }
        Err(AppError::Invalid { field, .. }) => assert_eq!(field, "name"),
        Err(other) => panic!("unexpected error for {raw:?}: {other:?}"),
    }
});
