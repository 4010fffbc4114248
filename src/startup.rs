//! The composition root: connects storage and Redis, builds every layer in
//! order (store → fan-out → services → streams → the gRPC and HTTP edges),
//! binds the port, and shuts down gracefully. Nothing imports this module
//! but `main.rs` (and the tests, which start servers in-process).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{KnownUsers, Passwords, Tokens, load_secret};
use crate::config::Config;
use crate::fanout::broker::Broker;
use crate::fanout::presence::Presence;
use crate::fanout::{Fanout, Hub};
use crate::grpc::auth::Authenticator;
use crate::health::Health;
use crate::http::serve::ServeOptions;
use crate::idempotency::IdempotencyCache;
use crate::limits::Limits;
use crate::services::blocks::BlockService;
use crate::services::chats::ChatService;
use crate::services::files::{FileLimits, FileService};
use crate::services::messages::MessageService;
use crate::services::users::UserService;
use crate::store::Store;
use crate::store::blobs::Blobs;
use crate::streams::Streams;

/// A built server, bound to its port and not serving yet.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// METRICS_ADDR's listener and what it serves.
    metrics: Option<(TcpListener, Router)>,
    router: Router,
    handles: Handles,
    shutdown: CancellationToken,
    grace: Duration,
    serve: ServeOptions,
}

/// What tests look into while the server runs. Cheap to clone.
#[derive(Clone)]
pub struct Handles {
    pub store: Store,
    pub hub: Hub,
    pub limits: Limits,
    pub files: FileService,
}

impl Application {
    /// Connects to storage (running migrations), prepares the services and
    /// binds the listener. Port 0 picks a free port; see [`local_addr`].
    ///
    /// [`local_addr`]: Application::local_addr
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        // Install the metrics recorder before anything records.
        crate::metrics::handle();
        let embedded = config.database_url.is_none();
        let secret = load_secret(config.jwt_secret.as_deref(), embedded, &config.data_dir)?;
        let tokens = Tokens::new(&secret, config.token_ttl)?;

        let store = Store::connect_with(
            config.database_url.as_deref(),
            &config.data_dir,
            config.db_acquire_timeout,
        )
        .await
        .context("connecting to the database")?;

        let redis = match &config.redis_url {
            Some(url) => Some(connect_redis(url).await?),
            None => None,
        };
        let idempotency = match &redis {
            Some(pool) => IdempotencyCache::redis(
                pool.clone(),
                &config.redis_key_prefix,
                config.idempotency_ttl,
            ),
            None => IdempotencyCache::local(config.idempotency_ttl),
        };

        let shutdown = CancellationToken::new();
        let hub = Hub::with_capacity(config.hub_capacity);
        let fanout = fanout(&config, redis.as_ref(), hub.clone(), &store, &shutdown).await?;
        fanout.spawn_upkeep(shutdown.clone());
        crate::metrics::spawn_upkeep(shutdown.clone());
        let limits = Limits::new(&config);
        limits.spawn_upkeep(shutdown.clone());

        // Hashing leaves one core to the runtime, so a login storm cannot
        // stall message traffic (on one core it gets that core).
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let users = UserService::new(
            store.clone(),
            Passwords::new(workers.saturating_sub(1).max(1)),
            tokens.clone(),
        );
        let blocks = BlockService::new(store.clone(), fanout.clone(), config.auth_cache_ttl);
        blocks.spawn_watcher(shutdown.clone());
        let chats = ChatService::new(store.clone(), fanout.clone(), blocks.clone());
        let blobs = Blobs::open(
            config.file_store_url.as_deref(),
            &config.data_dir,
            &config.file_store_options,
        )?;
        let files = FileService::new(
            store.clone(),
            blobs,
            FileLimits {
                max_file_bytes: config.max_file_bytes,
                daily_bytes: config.upload_bytes_per_day,
                keep_unattached: config.keep_unattached_files,
                url_ttl: config.file_url_ttl,
            },
            config.data_dir.join("uploads"),
            &secret,
        )?;
        files.spawn_sweeper(
            (config.keep_unattached_files / 4)
                .clamp(Duration::from_secs(1), Duration::from_secs(600)),
            shutdown.clone(),
        );
        let messages = MessageService::new(
            store.clone(),
            fanout.clone(),
            idempotency,
            blocks.clone(),
            files.clone(),
            config.send_committers,
        );
        let streams = Streams::new(
            store.clone(),
            fanout,
            chats.clone(),
            blocks.clone(),
            config.heartbeat_interval,
            shutdown.clone(),
        );

        let health = Health::new(store.clone(), redis, shutdown.clone());
        health.spawn_probe(config.health_interval);
        let auth = Authenticator::new(
            tokens,
            KnownUsers::new(store.clone(), config.auth_cache_ttl),
            config.trust_proxy,
        );
        let grpc = crate::grpc::router(crate::grpc::Parts {
            users,
            blocks,
            chats,
            messages,
            files: files.clone(),
            streams,
            auth: auth.clone(),
            limits: limits.clone(),
            health: health.clone(),
            max_request_bytes: config.max_request_bytes,
            reflection: config.reflection,
            request_body_timeout: config.request_body_timeout,
        })?;
        let metrics = match config.metrics_addr {
            Some(at) => {
                let listener = TcpListener::bind(at)
                    .await
                    .with_context(|| format!("binding METRICS_ADDR {at}"))?;
                Some((listener, crate::http::metrics_only(health.clone())))
            }
            None => None,
        };
        let routes = crate::http::routes(health, metrics.is_none())
            .merge(crate::http::files::routes(files.clone(), auth));
        let router = crate::http::app(routes, grpc, &config.cors_origins)?;

        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::serve::tls_acceptor(cert, key)?),
            _ => None,
        };
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {}", config.listen_addr))?;
        let addr = listener.local_addr()?;
        Ok(Application {
            listener,
            addr,
            metrics,
            router,
            handles: Handles {
                store,
                hub,
                limits,
                files,
            },
            shutdown,
            grace: config.shutdown_grace,
            serve: ServeOptions {
                tls,
                keepalive: config.http2_keepalive,
                header_read_timeout: config.header_read_timeout,
                max_header_bytes: config.max_header_bytes,
                max_connections_per_ip: config.max_connections_per_ip,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where /metrics is served when METRICS_ADDR is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn handles(&self) -> Handles {
        self.handles.clone()
    }

    /// Cancel this token to stop the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops accepting,
    /// ends the streams, and waits up to the grace period for in-flight calls.
    pub async fn run(self) -> anyhow::Result<()> {
        let Application {
            listener,
            addr,
            metrics,
            router,
            handles,
            shutdown,
            grace,
            serve,
        } = self;
        let scheme = if serve.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, %scheme, "listening (gRPC, gRPC-Web and web client)");
        if let Some((listener, router)) = metrics {
            let at = listener.local_addr()?;
            tracing::info!(%at, "serving /metrics");
            let token = shutdown.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await;
                if let Err(err) = served {
                    tracing::error!(%err, "the metrics listener failed");
                }
            });
        }
        let token = shutdown.clone();
        let store = handles.store;
        let serve = async move {
            crate::http::serve::serve(listener, router, serve, token.clone())
                .await
                .context("serving")?;
            // Closing the pool waits for every checked-out connection, so it
            // is inside the grace period too: a call stuck in the database
            // (a lock, an unreachable server) must not hold the exit.
            store.close().await;
            anyhow::Ok(())
        };
        let grace_expired = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = serve => result?,
            _ = grace_expired => {
                tracing::warn!(?grace, "shutdown grace period over; dropping remaining connections");
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Fan-out: the local hub, and with Redis the cross-node broker and shared
/// presence (this node's id tells its own events from the others').
async fn fanout(
    config: &Config,
    redis: Option<&deadpool_redis::Pool>,
    hub: Hub,
    store: &Store,
    shutdown: &CancellationToken,
) -> anyhow::Result<Fanout> {
    let (broker, presence) = match (redis, &config.redis_url) {
        (Some(pool), Some(url)) => {
            let node_id = uuid::Uuid::new_v4().simple().to_string();
            let broker = Broker::start(
                url,
                pool.clone(),
                &config.redis_key_prefix,
                node_id.clone(),
                hub.clone(),
                shutdown.clone(),
            )
            .await
            .context("subscribing to Redis for cross-node fan-out")?;
            let presence = Presence::redis(pool.clone(), &config.redis_key_prefix, &node_id);
            (Some(broker), presence)
        }
        _ => (None, Presence::local()),
    };
    Ok(Fanout::new(hub, broker, presence, store.clone()))
}

async fn connect_redis(url: &str) -> anyhow::Result<deadpool_redis::Pool> {
    let pool = deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .context("configuring Redis")?;
    let mut conn = pool.get().await.context("connecting to Redis")?;
    deadpool_redis::redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .context("pinging Redis")?;
    Ok(pool)
}
