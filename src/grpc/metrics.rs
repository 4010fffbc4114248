//! Counts gRPC calls by method and status code, and times unary ones: a
//! middleware on the gRPC routes, inside gRPC-Web translation so it sees
//! real gRPC trailers.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;

use crate::metrics::{CALL_SECONDS, CALLS};

/// Streaming RPCs: their duration is a connection lifetime, not a latency.
fn is_stream(path: &str) -> bool {
    path.ends_with("/SubscribeToChat")
        || path.ends_with("/Subscribe")
        || path.ends_with("/Session")
        || path.ends_with("/Watch")
}

fn code_name(code: &[u8]) -> &'static str {
    match code {
        b"0" => "OK",
        b"1" => "CANCELLED",
        b"2" => "UNKNOWN",
        b"3" => "INVALID_ARGUMENT",
        b"4" => "DEADLINE_EXCEEDED",
        b"5" => "NOT_FOUND",
        b"6" => "ALREADY_EXISTS",
        b"7" => "PERMISSION_DENIED",
        b"8" => "RESOURCE_EXHAUSTED",
        b"9" => "FAILED_PRECONDITION",
        b"10" => "ABORTED",
        b"11" => "OUT_OF_RANGE",
        b"12" => "UNIMPLEMENTED",
        b"13" => "INTERNAL",
        b"14" => "UNAVAILABLE",
        b"15" => "DATA_LOSS",
        b"16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

struct Call {
    method: String,
    start: Instant,
    done: bool,
}

impl Call {
    fn finish(&mut self, code: &'static str) {
        if self.done {
            return;
        }
        self.done = true;
        metrics::counter!(CALLS, "method" => self.method.clone(), "code" => code).increment(1);
        if !is_stream(&self.method) {
            metrics::histogram!(CALL_SECONDS, "method" => self.method.clone())
                .record(self.start.elapsed().as_secs_f64());
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // The body was dropped before its trailers: the client went away.
        self.finish("CANCELLED");
    }
}

/// The middleware (see the module docs).
pub async fn record_grpc(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let method = path.rsplit_once('/').map_or(path, |(_, m)| m).to_owned();
    let mut call = Call {
        method,
        start: Instant::now(),
        done: false,
    };
    let response = next.run(req).await;
    if let Some(code) = response.headers().get("grpc-status") {
        // Trailers-only answer (an error before any message).
        call.finish(code_name(code.as_bytes()));
        return response;
    }
    response.map(|body| Body::new(Recorded { inner: body, call }))
}

pin_project_lite::pin_project! {
    struct Recorded {
        #[pin]
        inner: Body,
        call: Call,
    }
}

impl http_body::Body for Recorded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .map_or("UNKNOWN", |c| code_name(c.as_bytes()));
                    this.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish("UNKNOWN"),
            Poll::Ready(None) => this.call.finish("UNKNOWN"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
