//! Prometheus metrics: what is recorded and the `/metrics` exposition.
//!
//! The `metrics` facade is process-global; the recorder is installed once
//! and every server in the process (tests start several) reports into it.

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
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CALLS: &str = "tidings_grpc_calls_total";
pub const CALL_SECONDS: &str = "tidings_grpc_call_duration_seconds";
pub const OPEN_STREAMS: &str = "tidings_open_streams";
pub const DELIVERIES: &str = "tidings_deliveries_total";
pub const DELIVERY_LAG: &str = "tidings_delivery_lag_seconds";
pub const GAP_FILLS: &str = "tidings_gap_fills_total";
pub const STREAM_LAGS: &str = "tidings_stream_lags_total";
pub const MESSAGES: &str = "tidings_messages_stored_total";
pub const SEND_BATCH: &str = "tidings_send_batch_size";
/// Sends handed to the committer and not answered yet (queued or being stored).
pub const SENDS_PENDING: &str = "tidings_sends_pending";
pub const DB_UP: &str = "tidings_database_up";
pub const REDIS_UP: &str = "tidings_redis_up";
pub const DB_POOL: &str = "tidings_database_pool_connections";
/// Calls and connections refused by an abuse limit, by `limit`.
pub const LIMITED: &str = "tidings_limited_total";

/// The process's Prometheus handle (installing the recorder on first use).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let seconds = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .expect("valid buckets");
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (an embedding program's): keep
            // a private one so /metrics still answers.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds histogram samples into their buckets every [`UPKEEP`] until
/// shutdown. The recorder keeps every sample it has not folded yet, and
/// only upkeep or a scrape of /metrics folds them: without this, a server
/// nobody scraped grew by every delivery's latency sample (the soak run's
/// RSS climbed ~10 MiB a minute; docs/RELIABILITY.md).
pub fn spawn_upkeep(shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => handle().run_upkeep(),
            }
        }
    });
}

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

/// Middleware on the gRPC routes (inside gRPC-Web translation, so it sees
/// real trailers): counts calls by method and status code, times unary ones.
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

/// Counts an open stream for as long as it lives.
pub struct StreamGauge(&'static str);

impl StreamGauge {
    pub fn open(kind: &'static str) -> StreamGauge {
        metrics::gauge!(OPEN_STREAMS, "kind" => kind).increment(1.0);
        StreamGauge(kind)
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_STREAMS, "kind" => self.0).decrement(1.0);
    }
}

/// A stream's handles for [`DELIVERIES`] and [`DELIVERY_LAG`], looked up
/// once when the stream opens instead of in the registry per delivery.
pub struct Deliveries {
    count: metrics::Counter,
    lag: metrics::Histogram,
}

impl Deliveries {
    pub fn new() -> Deliveries {
        Deliveries {
            count: metrics::counter!(DELIVERIES),
            lag: metrics::histogram!(DELIVERY_LAG),
        }
    }

    /// A message reached the stream; `created_at` (µs) gives the fan-out
    /// lag of a live delivery.
    pub fn record(&self, created_at_micros: i64, live: bool) {
        self.count.increment(1);
        if live {
            let lag = (crate::store::now_micros() - created_at_micros).max(0) as f64 / 1e6;
            self.lag.record(lag);
        }
    }
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries::new()
    }
}
