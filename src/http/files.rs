//! The files endpoints on the app's port (browsers cannot stream a gRPC-Web
//! request, so uploads are plain HTTP; native clients may use either):
//!
//! - `POST /v1/files?name=<file name>`, `Authorization: Bearer <jwt>`, the
//!   body is the file (streamed to storage as it arrives). 201 with
//!   `{"file": {id, name, content_type, size, width, height,
//!   has_thumbnail}}`; errors are `{"message": ...}` with 400 (bad name,
//!   empty, broken off), 401, 413 (over the size limit) or 429 (daily
//!   quota).
//! - `GET /v1/files/{id}` and `GET /v1/files/{id}/thumbnail`: with
//!   `Authorization: Bearer` for the uploader and members of a chat with a
//!   message holding the file (everyone else: 404), or with the `exp` and
//!   `sig` of a signed URL from GetFileUrls (for `<img>` tags, which send no
//!   header). `ETag`, `If-None-Match`, single byte ranges, `Cache-Control:
//!   private`, `X-Content-Type-Options: nosniff`, a sandboxing CSP, and
//!   `Content-Disposition: attachment` for everything but raster images.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::domain::AppError;
use crate::grpc::auth::Authenticator;
use crate::services::files::{FileService, Variant, is_safe_image, too_large};
use crate::store::blobs::{file_key, thumbnail_key};

/// How long an upload may send nothing before it is given up.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct FilesState {
    files: FileService,
    auth: Authenticator,
}

pub fn routes(files: FileService, auth: Authenticator) -> Router {
    Router::new()
        .route(
            "/v1/files",
            axum::routing::post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/files/{id}", axum::routing::get(download))
        .route("/v1/files/{id}/thumbnail", axum::routing::get(thumbnail))
        .with_state(FilesState { files, auth })
}

#[derive(serde::Deserialize)]
struct UploadQuery {
    #[serde(default)]
    name: String,
}

#[derive(serde::Deserialize)]
struct SignedQuery {
    exp: Option<i64>,
    sig: Option<String>,
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "message": message.into() });
    (status, axum::Json(body)).into_response()
}

fn error_response(err: AppError) -> Response {
    let status = match &err {
        AppError::Invalid { .. } => StatusCode::BAD_REQUEST,
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::NotFound(_) | AppError::NotFoundAt { .. } => StatusCode::NOT_FOUND,
        AppError::PermissionDenied(_) | AppError::Refused { .. } => StatusCode::FORBIDDEN,
        AppError::ResourceExhausted(m) if m.contains("too large") => StatusCode::PAYLOAD_TOO_LARGE,
        AppError::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
        AppError::Unavailable(e) => {
            tracing::warn!(error = %e, "files: unavailable");
            StatusCode::SERVICE_UNAVAILABLE
        }
        AppError::Internal(e) => {
            tracing::error!(error = ?e, "files: internal error");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    json_error(status, err.to_string())
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

async fn upload(
    State(s): State<FilesState>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = match s.auth.caller_from_header(authorization(&headers)).await {
        Ok(c) => c,
        Err(e) => return error_response(e),
    };
    let max = s.files.limits().max_file_bytes;
    // Refused before a byte is read when the client says how much it sends.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return error_response(too_large(max));
    }
    let stream = body.into_data_stream();
    let idle = futures::stream::unfold(stream, |mut stream| async move {
        match tokio::time::timeout(UPLOAD_IDLE, stream.next()).await {
            Ok(Some(item)) => Some((item.map_err(|e| e.to_string()), stream)),
            Ok(None) => None,
            Err(_) => Some((Err("nothing arrived for 30 s".to_owned()), stream)),
        }
    });
    match s.files.upload(&caller.user_id, &q.name, idle).await {
        Ok(file) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({ "file": file })),
        )
            .into_response(),
        Err(e) => error_response(e),
    }
}

async fn download(
    State(s): State<FilesState>,
    Path(id): Path<String>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
) -> Response {
    serve(s, id, q, headers, Variant::Original).await
}

async fn thumbnail(
    State(s): State<FilesState>,
    Path(id): Path<String>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
) -> Response {
    serve(s, id, q, headers, Variant::Thumbnail).await
}

async fn serve(
    s: FilesState,
    id: String,
    q: SignedQuery,
    headers: HeaderMap,
    variant: Variant,
) -> Response {
    let file = match (q.exp, q.sig.as_deref()) {
        (Some(exp), Some(sig)) => {
            if !s.files.verify(&id, variant, exp, sig) {
                return json_error(
                    StatusCode::FORBIDDEN,
                    "this link is not valid or has expired",
                );
            }
            s.files.signed(&id).await
        }
        _ => match s.auth.caller_from_header(authorization(&headers)).await {
            Ok(caller) => s.files.readable(&caller.user_id, &id).await,
            Err(e) => return error_response(e),
        },
    };
    let file = match file {
        Ok(f) => f,
        Err(e) => return error_response(e),
    };
    let a = &file.attachment;
    if variant == Variant::Thumbnail && !a.has_thumbnail {
        return error_response(AppError::NotFound("thumbnail"));
    }
    let (key, etag, size, content_type) = match variant {
        Variant::Original => (
            file_key(&a.id),
            format!("\"{}\"", file.etag),
            u64::try_from(a.size).unwrap_or_default(),
            a.content_type.clone(),
        ),
        Variant::Thumbnail => {
            // Small: read whole, typed by its own bytes.
            let bytes = match s.files.blobs().get_all(&thumbnail_key(&a.id)).await {
                Ok(b) => b,
                Err(e) => return error_response(AppError::Unavailable(e)),
            };
            let mut h = common_headers(
                &format!("\"{}-t\"", file.etag),
                crate::services::files::sniff(&bytes),
                true,
                &a.name,
            );
            if not_modified(&headers, &format!("\"{}-t\"", file.etag)) {
                return (StatusCode::NOT_MODIFIED, h).into_response();
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            return (StatusCode::OK, h, Body::from(bytes)).into_response();
        }
    };
    let inline = is_safe_image(&content_type) && a.width > 0;
    let mut h = common_headers(&etag, &content_type, inline, &a.name);
    if not_modified(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }

    // One byte range, when asked for and still about the same bytes.
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_holds(&headers, &etag));
    let (status, range) = match range {
        None => (StatusCode::OK, None),
        Some(spec) => match http_range_header::parse_range_header(spec)
            .ok()
            .map(|r| r.validate(size))
        {
            Some(Ok(ranges)) if ranges.len() == 1 => {
                let r = ranges[0].clone();
                (StatusCode::PARTIAL_CONTENT, Some(*r.start()..*r.end() + 1))
            }
            // Several ranges: the whole file (allowed, and simpler).
            Some(Ok(_)) => (StatusCode::OK, None),
            Some(Err(_)) => {
                h.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
                );
                return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
            }
            // Unreadable Range header: ignored, as RFC 9110 allows.
            None => (StatusCode::OK, None),
        },
    };
    if size == 0 {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        return (StatusCode::OK, h).into_response();
    }
    let stream = match s.files.blobs().get(&key, range.clone()).await {
        Ok(st) => st,
        Err(e) => return error_response(AppError::Unavailable(e)),
    };
    match &range {
        Some(r) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            h.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start, r.end - 1))
                    .expect("ascii"),
            );
        }
        None => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        }
    }
    metrics::counter!("tidings_file_downloads_total").increment(1);
    (status, h, Body::from_stream(stream)).into_response()
}

/// Characters kept as they are in an RFC 5987 `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`.
pub fn content_disposition(inline: bool, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        utf8_percent_encode(name, ATTR_CHAR)
    )
}

fn common_headers(etag: &str, content_type: &str, inline: bool, name: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let shown = if inline {
        content_type
    } else if content_type.starts_with("text/plain") {
        "text/plain; charset=utf-8"
    } else {
        content_type
    };
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(shown)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Even opened directly, nothing from a file runs as our origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(inline, name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// `If-Range`: a range only when the client's copy is still this one.
fn if_range_holds(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v.trim() == etag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_keep_names_safe() {
        assert_eq!(
            content_disposition(false, "report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        let d = content_disposition(false, "a\"b ü.txt");
        assert!(d.starts_with("attachment; filename=\"a_b _.txt\""), "{d}");
        assert!(d.ends_with("filename*=UTF-8''a%22b%20%C3%BC.txt"), "{d}");
        assert!(content_disposition(true, "p.png").starts_with("inline;"));
    }
}
