//! CreateUser / Login input: username, email and password rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::domain::AppError;
use tidings::domain::{Email, Password, Username};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match Username::parse(raw) {
        Ok(_) => {
            assert!((3..=32).contains(&raw.len()));
            assert!(
                raw.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            );
        }
        Err(AppError::Invalid { field, .. }) => assert_eq!(field, "username"),
        Err(other) => panic!("unexpected error: {other:?}"),
    }
    match Email::parse(raw) {
        Ok(email) => {
            let e = email.as_str();
            assert_eq!(e, raw.to_lowercase());
            // The limits hold for what was sent and for the stored form
            // (lower-casing changes some letters' byte length).
            assert!(raw.len() <= 254 && e.len() <= 254);
            let (local, domain) = e.split_once('@').expect("one @");
            assert!(!local.is_empty() && local.len() <= 64);
            assert!(!domain.contains('@') && domain.contains('.'));
            assert!(!raw.chars().any(|c| c.is_whitespace() || c.is_control()));
            // Lower-casing is idempotent: the stored form parses to itself.
            assert_eq!(
                Email::parse(e).map(|x| x.as_str().to_owned()).ok(),
                Some(e.to_owned())
            );
        }
        Err(AppError::Invalid { field, .. }) => assert_eq!(field, "email"),
        Err(other) => panic!("unexpected error: {other:?}"),
    }
    match Password::parse(raw) {
        Ok(_) => assert!((8..=128).contains(&raw.len())),
        Err(AppError::Invalid { field, .. }) => {
            assert_eq!(field, "password");
            assert!(!(8..=128).contains(&raw.len()));
        }
        Err(other) => panic!("unexpected error: {other:?}"),
    }
});
