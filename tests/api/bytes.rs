//! Bytes that are not a valid request: invalid UTF-8 in a string field,
//! garbage or truncated protobuf, a grpc-web-text body that is not base64,
//! no body at all. Each is the client's mistake: INVALID_ARGUMENT naming the
//! field where there is one, never INTERNAL, and no type or crate names.

use base64::Engine;
use tonic::Code;

use crate::grpc_web::{GrpcWeb, MESSAGES, Mode, Reply, USERS, frame, percent_decode};
use crate::helpers::*;

both_backends!(
    bad_bytes_over_grpc_web_are_invalid_argument,
    bad_bytes_over_native_grpc_are_invalid_argument,
);

/// Field `number` of type string/bytes holding `bytes`.
fn length_delimited(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

/// What is sent, where, how, and the field the answer must name.
type Case<'a> = (&'a str, &'a str, Vec<u8>, Mode, Option<&'a str>);

const NOT_UTF8: &[u8] = &[b'h', 0xff, 0xfe, b'i'];

/// What is wrong with the answer to one case, if anything.
fn refusal_problem(what: &str, status: i32, message: &str, field: Option<&str>) -> Option<String> {
    if status != Code::InvalidArgument as i32 {
        return Some(format!("{what}: grpc-status {status} {message:?}"));
    }
    if let Some(field) = field
        && !message.starts_with(&format!("{field}: "))
    {
        return Some(format!(
            "{what}: message does not name {field}: {message:?}"
        ));
    }
    ["Request", "prost", "tonic", "Protobuf", "DecodeError", "::"]
        .iter()
        .find(|inner| message.contains(**inner))
        .map(|inner| format!("{what}: message shows internals ({inner}): {message:?}"))
}

async fn bad_bytes_over_grpc_web_are_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = app.register("badbytes").await;
    let web = GrpcWeb::new(&app);
    let create_user = format!("{USERS}/CreateUser");
    let send = format!("{MESSAGES}/SendMessage");
    let b64 = |b: Vec<u8>| {
        base64::engine::general_purpose::STANDARD
            .encode(b)
            .into_bytes()
    };
    let mut content = length_delimited(1, b"00000000-0000-0000-0000-000000000000");
    content.extend(length_delimited(2, NOT_UTF8));
    let cases: Vec<Case<'_>> = vec![
        (
            "invalid UTF-8 in username",
            &create_user,
            frame(&length_delimited(1, NOT_UTF8)),
            Mode::Binary,
            Some("username"),
        ),
        (
            "invalid UTF-8 in content",
            &send,
            frame(&content),
            Mode::Binary,
            Some("content"),
        ),
        (
            "invalid UTF-8 in content, as text",
            &send,
            b64(frame(&content)),
            Mode::Text,
            Some("content"),
        ),
        (
            "garbage protobuf",
            &create_user,
            frame(&[0xff, 0xff, 0xff, 0xff]),
            Mode::Binary,
            None,
        ),
        (
            "a truncated field",
            &create_user,
            frame(&[0x0a, 0x20, b'a', b'b']),
            Mode::Binary,
            None,
        ),
        (
            "a frame shorter than its header says",
            &create_user,
            vec![0, 0, 0, 0, 9, 0x0a],
            Mode::Binary,
            None,
        ),
        (
            "text mode that is not base64",
            &create_user,
            b"!!!! not base64 ????".to_vec(),
            Mode::Text,
            None,
        ),
        (
            "an empty body",
            &create_user,
            Vec::new(),
            Mode::Binary,
            None,
        ),
    ];
    let mut problems = Vec::new();
    for (what, path, body, mode, field) in cases {
        let request = web.request_body(path, body, Some(&me.token), mode);
        let Reply {
            status, message, ..
        } = web.send(path, request, mode).await;
        problems.extend(refusal_problem(what, status, &message, field));
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // Nothing was stored by any of them, and the server still works.
    let chat = app.group_chat(&me, "after bad bytes", &[]).await;
    assert_eq!(app.send(&me, &chat, "still fine").await.seq, 1);
}

async fn bad_bytes_over_native_grpc_are_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = app.register("badbytes_h2").await;
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(WAIT)
        .build()
        .unwrap();
    let mut content = length_delimited(1, b"00000000-0000-0000-0000-000000000000");
    content.extend(length_delimited(2, NOT_UTF8));
    let cases: Vec<(&str, String, Vec<u8>, Option<&str>)> = vec![
        (
            "invalid UTF-8 in content",
            format!("{MESSAGES}/SendMessage"),
            frame(&content),
            Some("content"),
        ),
        (
            "garbage protobuf",
            format!("{USERS}/CreateUser"),
            frame(&[0xff, 0xff, 0xff, 0xff]),
            None,
        ),
    ];
    let mut problems = Vec::new();
    for (what, path, body, field) in cases {
        let resp = http
            .post(format!("http://{}{path}", app.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {}", me.token))
            .body(body)
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let status: i32 = header("grpc-status")
            .parse()
            .unwrap_or_else(|_| panic!("{what}: a trailers-only answer"));
        let message = percent_decode(&header("grpc-message"));
        problems.extend(refusal_problem(what, status, &message, field));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
