//! Requests whose bytes are not a valid message: tonic answers them
//! `INTERNAL` with prost's and tonic's own words (type names included),
//! although the mistake is the client's. This middleware, on the gRPC
//! routes inside gRPC-Web translation, turns those answers into
//! `INVALID_ARGUMENT` that names the field where there is one
//! (`content: not valid UTF-8`), with a `BadRequest` detail like any other
//! validation error. A request body cut off by `grpc::body_timeout` is
//! answered `DEADLINE_EXCEEDED`, and a message over `MAX_REQUEST_BYTES`
//! `RESOURCE_EXHAUSTED` (tonic says `OUT_OF_RANGE`; other gRPC servers do
//! not). Every other status passes untouched.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// What prost's decode errors start with, as tonic passes them on.
const DECODE: &str = "failed to decode Protobuf message: ";
/// tonic's words for a message over `max_decoding_message_size`.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// The middleware (see the module docs).
pub async fn refuse_malformed(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let headers = response.headers();
    let code = headers.get("grpc-status").map(|v| v.as_bytes().to_vec());
    let Some(message) = headers.get("grpc-message").and_then(|v| v.to_str().ok()) else {
        return response;
    };
    let message = percent_encoding::percent_decode_str(message).decode_utf8_lossy();
    if code.as_deref() != Some(b"0") && message.contains(super::body_timeout::TIMED_OUT) {
        return Status::deadline_exceeded(super::body_timeout::TIMED_OUT).into_http::<Body>();
    }
    // tonic answers a message over the decoding limit OUT_OF_RANGE; grpc-go,
    // grpc-java and grpc core answer RESOURCE_EXHAUSTED, which clients expect.
    if code.as_deref() == Some(b"11") && message.starts_with(TOO_LARGE) {
        let limit = message
            .rsplit_once("the limit is: ")
            .map_or("", |(_, limit)| limit.trim_end_matches(" bytes"));
        return Status::resource_exhausted(format!(
            "request too large: a request message takes at most {limit} bytes (MAX_REQUEST_BYTES)"
        ))
        .into_http::<Body>();
    }
    if code.as_deref() != Some(b"13") {
        return response;
    }
    let Some((field, problem)) = malformed(&message) else {
        return response;
    };
    let text = match field {
        Some(field) => format!("{field}: {problem}"),
        None => problem.to_owned(),
    };
    tracing::debug!(original = %message, "malformed request");
    let details = ErrorDetails::with_bad_request_violation(field.unwrap_or("request"), problem);
    Status::with_error_details(Code::InvalidArgument, text, details).into_http::<Body>()
}

/// The field (if it is known) and the problem, when `message` is tonic's
/// account of a request that could not be read.
fn malformed(message: &str) -> Option<(Option<&str>, &'static str)> {
    if let Some(rest) = message.strip_prefix(DECODE) {
        // `Type.field: Type.field: description`, innermost field last.
        let field = rest
            .split(": ")
            .take_while(|part| is_field_path(part))
            .last()
            .and_then(|path| path.rsplit_once('.'))
            .map(|(_, field)| field);
        let problem = if rest.contains("UTF-8") {
            "not valid UTF-8"
        } else {
            "the request is not a valid protobuf message"
        };
        return Some((field, problem));
    }
    let problem = match message {
        "Missing request message." => "the request has no message",
        "Unexpected EOF decoding stream." => "the request ends inside a message",
        // The base64 decoder's errors, for a grpc-web-text body.
        m if m.starts_with("tonic-web: Invalid symbol")
            || m.starts_with("tonic-web: Invalid last symbol")
            || m.starts_with("tonic-web: Invalid padding")
            || m.starts_with("tonic-web: Invalid input length") =>
        {
            "the grpc-web-text body is not valid base64"
        }
        _ => return None,
    };
    Some((None, problem))
}

/// `Type.field`: identifier characters and one or more dots.
fn is_field_path(part: &str) -> bool {
    part.contains('.')
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_name_the_innermost_field_and_nothing_internal() {
        assert_eq!(
            malformed(
                "failed to decode Protobuf message: SendMessageRequest.content: invalid string value: data is not UTF-8 encoded"
            ),
            Some((Some("content"), "not valid UTF-8"))
        );
        assert_eq!(
            malformed(
                "failed to decode Protobuf message: SubscribeRequest.cursors: ChatCursor.chat_id: invalid string value: data is not UTF-8 encoded"
            ),
            Some((Some("chat_id"), "not valid UTF-8"))
        );
        assert_eq!(
            malformed("failed to decode Protobuf message: invalid wire type value: 7"),
            Some((None, "the request is not a valid protobuf message"))
        );
        assert_eq!(
            malformed("tonic-web: Invalid symbol 33, offset 0."),
            Some((None, "the grpc-web-text body is not valid base64"))
        );
        assert_eq!(
            malformed("Missing request message."),
            Some((None, "the request has no message"))
        );
        assert_eq!(malformed("internal error"), None);
    }
}
