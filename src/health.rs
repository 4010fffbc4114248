//! Whether the server can do its job: storage (and Redis, when configured)
//! probed every little while. `/readyz` (`http::health`) and the gRPC
//! health service (`grpc::health`) both report from here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Last probed reachability of the dependencies. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    store: Store,
    redis: Option<deadpool_redis::Pool>,
    db_up: Arc<AtomicBool>,
    redis_up: Arc<AtomicBool>,
    /// Whether RPCs can be served: storage reachable and not shutting down.
    serving: watch::Sender<bool>,
    shutdown: CancellationToken,
}

/// One probe's answer.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub database: bool,
    /// `None`: Redis is not configured.
    pub redis: Option<bool>,
}

impl Probe {
    /// Ready: storage and (when configured) Redis answer.
    pub fn ready(&self) -> bool {
        self.database && self.redis != Some(false)
    }
}

impl Health {
    pub fn new(
        store: Store,
        redis: Option<deadpool_redis::Pool>,
        shutdown: CancellationToken,
    ) -> Health {
        Health {
            store,
            redis,
            db_up: Arc::new(AtomicBool::new(true)),
            redis_up: Arc::new(AtomicBool::new(true)),
            serving: watch::channel(true).0,
            shutdown,
        }
    }

    pub fn database_up(&self) -> bool {
        self.db_up.load(Ordering::Relaxed)
    }

    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Follows whether RPCs can be served (false once storage is
    /// unreachable, and for good after shutdown begins).
    pub fn serving(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// The pool's open and idle connections, for `/metrics`.
    pub fn pool_stats(&self) -> Option<(u32, usize)> {
        self.store.pool_stats()
    }

    /// Asks storage and Redis now (each bounded by 2 s).
    pub async fn probe(&self) -> Probe {
        let database = tokio::time::timeout(Duration::from_secs(2), self.store.ping())
            .await
            .is_ok_and(|r| r.is_ok());
        let redis = match &self.redis {
            None => None,
            Some(pool) => Some(
                tokio::time::timeout(Duration::from_secs(2), async {
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
            ),
        };
        Probe { database, redis }
    }

    fn apply(&self, probe: Probe) {
        let was = self.db_up.swap(probe.database, Ordering::Relaxed);
        let redis = probe.redis.unwrap_or(true);
        self.redis_up.store(redis, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::DB_UP).set(if probe.database { 1.0 } else { 0.0 });
        metrics::gauge!(crate::metrics::REDIS_UP).set(if redis { 1.0 } else { 0.0 });
        if was != probe.database {
            if probe.database {
                tracing::info!("storage reachable again: SERVING");
            } else {
                tracing::warn!("storage unreachable: NOT_SERVING");
            }
        }
        // Without storage no RPC can do its job; Redis down only slows the
        // fast paths (the database stays the truth), so it does not count.
        self.serving.send_if_modified(|serving| {
            let changed = *serving != probe.database;
            *serving = probe.database;
            changed
        });
    }

    /// Probes every `interval` until shutdown, then reports not serving.
    pub fn spawn_probe(&self, interval: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = this.shutdown.cancelled() => {
                        this.serving.send_replace(false);
                        return;
                    }
                    _ = tick.tick() => {}
                }
                let probe = this.probe().await;
                this.apply(probe);
            }
        });
    }
}
