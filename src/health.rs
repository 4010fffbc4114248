//! Health: `/healthz` (the process is alive), `/readyz` (storage and Redis
//! reachable), `grpc.health.v1` (SERVING only while storage is reachable),
//! and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::app::AppState;

/// Last probed reachability of the dependencies.
#[derive(Clone, Debug)]
pub struct Health {
    db: Arc<AtomicBool>,
    redis: Arc<AtomicBool>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            db: Arc::new(AtomicBool::new(true)),
            redis: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl Health {
    pub fn database_up(&self) -> bool {
        self.db.load(Ordering::Relaxed)
    }

    pub fn redis_up(&self) -> bool {
        self.redis.load(Ordering::Relaxed)
    }
}

/// The gRPC services whose health is reported (plus "" for the server).
const SERVICES: [&str; 5] = [
    "",
    "messaging.UsersService",
    "messaging.ChatsService",
    "messaging.MessagesService",
    "messaging.EventsService",
];

async fn probe(state: &AppState) -> (bool, bool) {
    let db = tokio::time::timeout(Duration::from_secs(2), state.store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let redis = match &state.redis {
        None => true,
        Some(pool) => tokio::time::timeout(Duration::from_secs(2), async {
            let mut conn = pool.get().await.ok()?;
            deadpool_redis::redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .ok()
        })
        .await
        .ok()
        .flatten()
        .is_some(),
    };
    (db, redis)
}

async fn apply(state: &AppState, reporter: &HealthReporter, db: bool, redis: bool, first: bool) {
    let was = state.health.db.swap(db, Ordering::Relaxed);
    state.health.redis.store(redis, Ordering::Relaxed);
    metrics::gauge!(crate::metrics::DB_UP).set(if db { 1.0 } else { 0.0 });
    metrics::gauge!(crate::metrics::REDIS_UP).set(if redis { 1.0 } else { 0.0 });
    if was != db {
        if db {
            tracing::info!("storage reachable again: SERVING");
        } else {
            tracing::warn!("storage unreachable: NOT_SERVING");
        }
    }
    // Without storage no RPC can do its job; Redis down only slows the fast
    // paths (the database stays the truth), so it does not flip health.
    if was == db && !first {
        return;
    }
    let status = if db {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Probes storage and Redis every `interval` until shutdown and keeps the
/// gRPC health service and `/readyz` up to date.
pub fn spawn_probe(state: AppState, reporter: HealthReporter, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        let mut first = true;
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => {
                    for service in SERVICES {
                        reporter.set_service_status(service, ServingStatus::NotServing).await;
                    }
                    return;
                }
                _ = tick.tick() => {}
            }
            let (db, redis) = probe(&state).await;
            apply(&state, &reporter, db, redis, first).await;
            first = false;
        }
    });
}

/// `/readyz`: 200 when storage (and Redis, when configured) answer now.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (db, redis) = probe(&state).await;
    let body = serde_json::json!({
        "database": if db { "up" } else { "down" },
        "redis": match (&state.redis, redis) {
            (None, _) => "not configured",
            (Some(_), true) => "up",
            (Some(_), false) => "down",
        },
    });
    let code = if db && redis && !state.shutdown.is_cancelled() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

/// `/metrics` in the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Some((size, idle)) = state.store.pool_stats() {
        metrics::gauge!(crate::metrics::DB_POOL, "state" => "open").set(size as f64);
        metrics::gauge!(crate::metrics::DB_POOL, "state" => "idle").set(idle as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
}
