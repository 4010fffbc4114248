//! `/healthz` (the process is alive) and `/readyz` (storage and Redis
//! reachable now, and not shutting down).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::health::Health;

pub async fn healthz() -> &'static str {
    "ok"
}

/// `/readyz`: 200 when storage (and Redis, when configured) answer now.
pub async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let probe = health.probe().await;
    let body = serde_json::json!({
        "database": if probe.database { "up" } else { "down" },
        "redis": match probe.redis {
            None => "not configured",
            Some(true) => "up",
            Some(false) => "down",
        },
    });
    let code = if probe.ready() && !health.shutting_down() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}
