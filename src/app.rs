//! The application: connects storage, builds the one router that serves
//! native gRPC, gRPC-Web and the web client, binds, and shuts down gracefully.

use std::net::SocketAddr;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::{KnownUsers, Passwords, Tokens, load_secret};
use crate::chats::ChatService;
use crate::config::Config;
use crate::grpc;
use crate::idempotency::IdempotencyCache;
use crate::messages::MessageService;
use crate::proto::chats_service_server::ChatsServiceServer;
use crate::proto::streaming::events_service_server::EventsServiceServer;
use crate::proto::streaming::messages_service_server::MessagesServiceServer;
use crate::proto::users_service_server::UsersServiceServer;
use crate::realtime::broker::Broker;
use crate::realtime::presence::Presence;
use crate::realtime::{Hub, Realtime};
use crate::store::Store;
use crate::users::UserService;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hub: Hub,
    pub realtime: Realtime,
    /// This process's id among the nodes sharing Redis.
    pub node_id: String,
    pub heartbeat: Duration,
    pub tokens: Tokens,
    /// Which token subjects still exist (cached for `AUTH_CACHE_TTL`).
    pub known_users: KnownUsers,
    pub users: UserService,
    pub chats: ChatService,
    pub messages: MessageService,
    pub redis: Option<deadpool_redis::Pool>,
    /// Cancelled on shutdown; every stream watches it.
    pub shutdown: CancellationToken,
    /// Storage / Redis reachability as last probed.
    pub health: crate::health::Health,
    /// Abuse limits (rates, stream caps).
    pub limits: crate::limits::Limits,
}

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    state: AppState,
    grace: Duration,
    serve: crate::server::ServeOptions,
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

        let hub = Hub::with_capacity(config.hub_capacity);
        let shutdown = CancellationToken::new();
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        let (broker, presence) = match (&redis, &config.redis_url) {
            (Some(pool), Some(url)) => {
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
        let realtime = Realtime::new(hub.clone(), broker, presence, store.clone());
        realtime.spawn_upkeep(shutdown.clone());
        crate::metrics::spawn_upkeep(shutdown.clone());
        let limits = crate::limits::Limits::new(&config);
        limits.spawn_upkeep(shutdown.clone());
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let known_users = KnownUsers::new(store.clone(), config.auth_cache_ttl);
        let state = AppState {
            // Hashing leaves one core to the runtime, so a login storm
            // cannot stall message traffic (on one core it gets that core).
            users: UserService::new(
                store.clone(),
                Passwords::new(workers.saturating_sub(1).max(1)),
                tokens.clone(),
            ),
            chats: ChatService::new(store.clone(), realtime.clone()),
            messages: MessageService::new(
                store.clone(),
                realtime.clone(),
                idempotency,
                config.send_committers,
            ),
            store,
            hub,
            realtime,
            node_id,
            heartbeat: config.heartbeat_interval,
            known_users,
            tokens,
            health: crate::health::Health::default(),
            redis,
            shutdown,
            limits,
        };

        let (router, reporter) = router(&state, &config).await?;
        crate::health::spawn_probe(state.clone(), reporter, config.health_interval);
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::server::tls_acceptor(cert, key)?),
            _ => None,
        };
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {}", config.listen_addr))?;
        let addr = listener.local_addr()?;
        Ok(Application {
            listener,
            addr,
            router,
            state,
            grace: config.shutdown_grace,
            serve: crate::server::ServeOptions {
                tls,
                keepalive: config.http2_keepalive,
                header_read_timeout: config.header_read_timeout,
                max_header_bytes: config.max_header_bytes,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Cancel this token to stop the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops accepting,
    /// ends the streams, and waits up to the grace period for in-flight calls.
    pub async fn run(self) -> anyhow::Result<()> {
        let Application {
            listener,
            addr,
            router,
            state,
            grace,
            serve,
        } = self;
        let scheme = if serve.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, %scheme, "listening (gRPC, gRPC-Web and web client)");
        let token = state.shutdown.clone();
        let store = state.store.clone();
        let serve = async move {
            crate::server::serve(listener, router, serve, token.clone())
                .await
                .context("serving")?;
            // Closing the pool waits for every checked-out connection, so it
            // is inside the grace period too: a call stuck in the database
            // (a lock, an unreachable server) must not hold the exit.
            store.close().await;
            anyhow::Ok(())
        };
        let token = state.shutdown.clone();
        let grace_expired = async {
            token.cancelled().await;
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

/// One router for everything on the port. Layer order matters (PITFALLS.md):
/// gRPC-Web translation wraps only the gRPC routes, so plain HTTP/1.1 page
/// loads are not refused as bad gRPC-Web; CORS sits outside everything so a
/// preflight never reaches a service.
async fn router(
    state: &AppState,
    config: &Config,
) -> anyhow::Result<(Router, tonic_health::server::HealthReporter)> {
    let limit = config.max_request_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<UsersServiceServer<grpc::users::Users>>()
        .await;
    health
        .set_serving::<ChatsServiceServer<grpc::chats::Chats>>()
        .await;
    health
        .set_serving::<MessagesServiceServer<grpc::messages::Messages>>()
        .await;
    health
        .set_serving::<EventsServiceServer<grpc::events::Events>>()
        .await;

    let grpc = tonic::service::Routes::new(
        UsersServiceServer::new(grpc::users::Users(state.clone())).max_decoding_message_size(limit),
    )
    .add_service(
        ChatsServiceServer::new(grpc::chats::Chats(state.clone())).max_decoding_message_size(limit),
    )
    .add_service(
        MessagesServiceServer::new(grpc::messages::Messages(state.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        EventsServiceServer::new(grpc::events::Events(state.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(health_service)
    .add_service(
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?,
    )
    .add_service(
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?,
    )
    .into_axum_router()
    // Inside gRPC-Web translation, so it sees real gRPC trailers.
    .layer(axum::middleware::from_fn(crate::metrics::record_grpc))
    .layer(tonic_web::GrpcWebLayer::new());

    let request_id = HeaderName::from_static("x-request-id");
    let mut app = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(crate::health::readyz))
        .route("/metrics", axum::routing::get(crate::health::metrics))
        .with_state(state.clone())
        .merge(grpc)
        // Replaces the gRPC router's fallback: unknown gRPC methods still get
        // UNIMPLEMENTED (see web::fallback), everything else the web client.
        .fallback(crate::web::fallback)
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    if let Some(cors) = cors(&config.cors_origins)? {
        app = app.layer(cors);
    }
    Ok((app, health))
}

fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).with_context(|| format!("CORS origin {o:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let h = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                h("x-grpc-web"),
                h("x-user-agent"),
                h("grpc-timeout"),
                h("x-request-id"),
            ])
            .expose_headers([
                h("grpc-status"),
                h("grpc-message"),
                h("grpc-status-details-bin"),
                h("x-request-id"),
                h(crate::limits::RETRY_AFTER),
            ])
            .max_age(Duration::from_secs(24 * 3600)),
    ))
}
