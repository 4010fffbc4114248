//! Counts gRPC calls by method and status code, and times unary ones: a
//! middleware on the gRPC routes, inside gRPC-Web translation so it sees
//! real gRPC trailers.
//!
//! Every label comes from a closed set: `method` is one of the methods the
//! server serves (read from the services' descriptors) or `unknown`, `code`
//! one of the 17 gRPC codes. Anyone may call any path, with or without a
//! token; a label made of the path would let them grow the registry, and
//! `/metrics`, without bound.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;

use crate::metrics::{CALL_SECONDS, CALLS};

/// The label of a path no service serves.
pub const UNKNOWN_METHOD: &str = "unknown";

/// The reflection services' paths (their descriptors are not exported).
const REFLECTION: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// `/package.Service/Method` → `Method`, for every method served.
fn served() -> &'static HashMap<String, &'static str> {
    static SERVED: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    SERVED.get_or_init(|| {
        use prost::Message as _;
        let mut paths: Vec<String> = REFLECTION.iter().map(|p| (*p).to_owned()).collect();
        for set in [
            tidings_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let set = prost_types::FileDescriptorSet::decode(set).expect("a built-in descriptor");
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        paths.push(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        paths
            .into_iter()
            .map(|path| {
                let method = path.rsplit_once('/').map_or("", |(_, m)| m);
                // Leaked once: a fixed, small set of names for the process.
                let method: &'static str = Box::leak(method.to_owned().into_boxed_str());
                (path, method)
            })
            .collect()
    })
}

/// The `method` label of a request path: the method's name when the server
/// serves it, else [`UNKNOWN_METHOD`].
pub fn method_label(path: &str) -> &'static str {
    served().get(path).copied().unwrap_or(UNKNOWN_METHOD)
}

/// Streaming RPCs: their duration is a connection lifetime, not a latency.
fn is_stream(method: &str) -> bool {
    matches!(
        method,
        "SubscribeToChat" | "Subscribe" | "Session" | "Watch" | "ServerReflectionInfo"
    )
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
    method: &'static str,
    start: Instant,
    done: bool,
}

impl Call {
    fn finish(&mut self, code: &'static str) {
        if self.done {
            return;
        }
        self.done = true;
        metrics::counter!(CALLS, "method" => self.method, "code" => code).increment(1);
        if !is_stream(self.method) {
            metrics::histogram!(CALL_SECONDS, "method" => self.method)
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
    let mut call = Call {
        method: method_label(req.uri().path()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_methods_are_named_and_any_other_path_is_unknown() {
        assert_eq!(
            method_label("/messaging.MessagesService/SendMessage"),
            "SendMessage"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Check");
        assert_eq!(
            method_label("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            "ServerReflectionInfo"
        );
        for path in [
            "/messaging.MessagesService/Nope",
            "/messaging.Nope/SendMessage",
            "/x",
            "",
        ] {
            assert_eq!(method_label(path), UNKNOWN_METHOD, "{path}");
        }
    }
}
