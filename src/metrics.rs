//! Prometheus metrics: the names of what is recorded, the recorder, and the
//! handles streams keep. (`/metrics` is served by `http::metrics`; calls are
//! counted by `grpc::metrics`.)
//!
//! The `metrics` facade is process-global; the recorder is installed once
//! and every server in the process (tests start several) reports into it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::now_micros;

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
            let lag = (now_micros() - created_at_micros).max(0) as f64 / 1e6;
            self.lag.record(lag);
        }
    }
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries::new()
    }
}
