//! The bearer-token verifier: arbitrary input never panics and never
//! verifies unless it is an HS256 token signed with the server's secret;
//! issued tokens verify to their subject.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tidings::auth::Tokens;
use tidings::domain::AppError;

const SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-0123456789";

static TOKENS: LazyLock<Tokens> =
    LazyLock::new(|| Tokens::new(SECRET, Duration::from_secs(3600)).expect("tokens"));

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    // 1. Whatever arrives after `Bearer `.
    match TOKENS.verify(raw) {
        Ok(v) => {
            // Only possible for a real HS256 token of ours: three parts,
            // header alg HS256, non-empty subject.
            assert_eq!(raw.split('.').count(), 3, "{raw:?}");
            assert!(!v.user_id.is_empty());
            let header = jsonwebtoken::decode_header(raw).expect("header");
            assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
        }
        Err(AppError::Unauthenticated(_)) => {}
        Err(other) => panic!("unexpected error: {other:?}"),
    }
    // 2. The input as a subject: issue, then verify gives it back, and any
    //    one-character change of the token is refused.
    if !raw.is_empty() {
        let (token, _) = TOKENS.issue(raw, 0).expect("issue");
        let v = TOKENS.verify(&token).expect("an issued token verifies");
        assert_eq!(v.user_id, raw);
        let pos = data.len() % token.len();
        let mut bytes = token.into_bytes();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii token");
        // Changing a base64url character can leave the decoded bytes equal
        // only in the unused low bits of the last character of a part;
        // anything else must fail.
        if let Ok(v2) = TOKENS.verify(&tampered) {
            assert_eq!(v2.user_id, raw, "tampered token verified as someone else");
        }
    }
});
