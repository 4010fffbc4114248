//! The embedded web client, served with an SPA fallback.
//!
//! build.rs stages the built client (or a small fallback page) in
//! `$OUT_DIR/web`; rust-embed bakes it into the binary, so the one image
//! carries everything.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "$OUT_DIR/web"]
struct Assets;

/// The router's fallback: assets by path, `index.html` for app routes, and a
/// proper gRPC answer for gRPC calls to methods that do not exist.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/grpc") {
        return unimplemented_grpc(content_type);
    }
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    if let Some(response) = asset(path) {
        return response;
    }
    // Paths that name a file but are not one are real 404s; everything else
    // is an app route the client renders.
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return StatusCode::NOT_FOUND.into_response();
    }
    asset("index.html").unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// The page's own files only: no inline script or style, no other origin,
/// no framing (the favicon is a `data:` image).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(path: &str) -> Option<Response> {
    let path = if path.is_empty() { "index.html" } else { path };
    let file = Assets::get(path)?;
    let mime = file.metadata.mimetype();
    // Hashed bundle files never change; the HTML entry point always may.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, mime.to_owned()),
                (header::CACHE_CONTROL, cache.to_owned()),
                (
                    header::CONTENT_SECURITY_POLICY,
                    CONTENT_SECURITY_POLICY.to_owned(),
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                (header::X_FRAME_OPTIONS, "DENY".to_owned()),
                (header::REFERRER_POLICY, "no-referrer".to_owned()),
            ],
            Body::from(file.data.into_owned()),
        )
            .into_response(),
    )
}

fn unimplemented_grpc(content_type: &str) -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert("grpc-status", HeaderValue::from_static("12"));
    headers.insert("grpc-message", HeaderValue::from_static("unknown%20method"));
    response
}
