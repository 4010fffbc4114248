//! `/metrics` in the Prometheus text format.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::health::Health;

pub async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    if let Some((size, idle)) = health.pool_stats() {
        metrics::gauge!(crate::metrics::DB_POOL, "state" => "open").set(size as f64);
        metrics::gauge!(crate::metrics::DB_POOL, "state" => "idle").set(idle as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
}
