//! The harness: every test gets its own in-process server on port 0 with its
//! own storage — a temp data dir for the embedded SQLite backend, or a fresh
//! Postgres database plus a private Redis key prefix for the production one —
//! so tests run in parallel against the shared services without seeing each
//! other.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;
use tidings::config::Config;
use tidings::proto::chats_service_client::ChatsServiceClient;
use tidings::proto::messages_service_client::MessagesServiceClient;
use tidings::proto::users_service_client::UsersServiceClient;
use tidings::proto::{
    ChatMessage, CreateChatRequest, CreateUserRequest, CreateUserResponse, ListMessagesRequest,
    ListMessagesResponse, Message, SendMessageRequest, SubscribeToChatRequest,
};
use tidings::startup::{Application, Handles};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

/// The HS256 secret every test server is configured with, so tests can mint
/// their own tokens (expired, short-lived, for other users...).
pub const JWT_SECRET: &str = "tidings-integration-tests-jwt-secret-0123456789";
pub const PASSWORD: &str = "correct horse battery staple";
/// Upper bound for anything a test waits on; never a synchronisation delay.
pub const WAIT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded default: SQLite in the data dir, in-process cache and hub.
    Sqlite,
    /// Production: PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL).
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` of the calling module
/// once per backend, as `name::sqlite` and `name::postgres`.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_services().is_none() {
                    return;
                }
                super::$name($crate::helpers::Backend::Postgres).await;
            }
        }
    )+};
}

pub struct Services {
    pub admin_url: String,
    pub redis_url: String,
}

/// The shared Postgres and Redis, or None (with a notice) when they are not
/// configured. On CI (`CI=true`) a missing service is an error, not a skip.
pub fn postgres_services() -> Option<Services> {
    let admin = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let redis = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty());
    match (admin, redis) {
        (Some(admin_url), Some(redis_url)) => Some(Services {
            admin_url,
            redis_url,
        }),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true but TEST_DATABASE_URL and/or TEST_REDIS_URL is unset: \
                     the Postgres + Redis variant of every test must run on CI"
                );
            }
            eprintln!(
                "skipping the Postgres variant: set TEST_DATABASE_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres) and TEST_REDIS_URL \
                 (e.g. redis://127.0.0.1:6379) to run it"
            );
            None
        }
    }
}

/// `TEST_LOG=1` shows the server's logs of a test run.
fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = std::env::var("TEST_LOG")
                .ok()
                .filter(|v| v.contains('=') || v.contains("debug") || v.contains("trace"))
                .unwrap_or_else(|| "info".into());
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// A Postgres database made for one test, dropped with it.
struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    async fn create(admin_url: &str) -> TestDatabase {
        use sea_orm::ConnectionTrait;
        let name = format!("tidings_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        TestDatabase {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    fn url(&self) -> String {
        database_url(&self.admin_url, &self.name)
    }
}

impl Drop for TestDatabase {
    /// Best effort, on a thread of its own: Drop cannot await, and the test's
    /// runtime may be shutting down.
    fn drop(&mut self) {
        use sea_orm::ConnectionTrait;
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = sea_orm::Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A Redis key prefix owned by one test; its keys are deleted with it.
struct TestRedis {
    url: String,
    prefix: String,
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let url = self.url.clone();
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = rt.block_on(delete_redis_keys(&url, &prefix));
        })
        .join();
    }
}

/// Replaces the database of a Postgres URL, keeping credentials, host and
/// query parameters.
pub fn database_url(admin_url: &str, database: &str) -> String {
    let (scheme, rest) = admin_url
        .split_once("://")
        .expect("TEST_DATABASE_URL looks like postgres://user@host:port/db");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{database}{query}")
}

/// Deletes every key under `prefix` (SCAN + DEL: never FLUSHALL/FLUSHDB on
/// the shared server). Returns how many keys were deleted.
pub async fn delete_redis_keys(url: &str, prefix: &str) -> anyhow::Result<usize> {
    use deadpool_redis::redis;
    let pool =
        deadpool_redis::Config::from_url(url).create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    let mut conn = pool.get().await?;
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: usize = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Storage outliving restarts of the server; dropped after it.
struct Storage {
    _dir: TempDir,
    database: Option<TestDatabase>,
    redis: Option<TestRedis>,
}

#[derive(Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub email: String,
    pub token: String,
}

/// A running server plus typed clients connected to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Where /metrics is served when METRICS_ADDR is set.
    pub metrics_addr: Option<SocketAddr>,
    pub state: Handles,
    pub config: Config,
    pub channel: Channel,
    pub users: UsersServiceClient<Channel>,
    pub chats: ChatsServiceClient<Channel>,
    pub messages: MessagesServiceClient<Channel>,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    storage: Storage,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with a chance to adjust the configuration first.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp data dir");
    let mut config = Config::embedded(dir.path().to_path_buf());
    config.jwt_secret = Some(JWT_SECRET.into());
    config.log_level = "warn".into();
    raise_abuse_limits(&mut config);
    let mut storage = Storage {
        _dir: dir,
        database: None,
        redis: None,
    };
    if backend == Backend::Postgres {
        let services = postgres_services().expect("Postgres variant without services");
        let database = TestDatabase::create(&services.admin_url).await;
        config.database_url = Some(database.url());
        config.redis_url = Some(services.redis_url.clone());
        config.redis_key_prefix = format!("tidings_test_{}:", uuid::Uuid::new_v4().simple());
        storage.database = Some(database);
        storage.redis = Some(TestRedis {
            url: services.redis_url,
            prefix: config.redis_key_prefix.clone(),
        });
    }
    configure(&mut config);

    let running = launch(config.clone()).await;
    TestApp {
        addr: running.addr,
        metrics_addr: running.metrics_addr,
        state: running.state,
        config,
        users: UsersServiceClient::new(running.channel.clone()),
        chats: ChatsServiceClient::new(running.channel.clone()),
        messages: MessagesServiceClient::new(running.channel.clone()),
        channel: running.channel,
        shutdown: running.shutdown,
        server: Some(running.server),
        storage,
    }
}

/// Tests send, sign up and open streams far faster than people do: the
/// abuse limits are moved out of their way (but stay switched on, so their
/// code runs). tests/api/abuse.rs sets low ones on purpose.
pub fn raise_abuse_limits(config: &mut Config) {
    const PLENTY: u32 = 1_000_000;
    config.send_rate = PLENTY;
    config.send_burst = PLENTY;
    config.typing_rate = PLENTY;
    config.typing_burst = PLENTY;
    config.auth_rate = PLENTY;
    config.auth_burst = PLENTY;
    config.room_rate = PLENTY;
    config.room_burst = PLENTY;
    config.lookup_rate = PLENTY;
    config.lookup_burst = PLENTY;
    config.max_streams_per_user = 100_000;
    config.max_connections_per_ip = 0;
}

struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: Handles,
    channel: Channel,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
}

async fn launch(config: Config) -> Running {
    let app = Application::build(config)
        .await
        .expect("Application::build failed");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let state = app.handles();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run());
    let channel = connect(addr).await;
    Running {
        addr,
        metrics_addr,
        state,
        channel,
        shutdown,
        server,
    }
}

/// A new HTTP/2 connection to the server (each one is a separate TCP
/// connection, so requests on different channels really run in parallel).
pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_timeout(WAIT)
        .connect()
        .await
        .expect("connect to the test server")
}

impl TestApp {
    /// The Redis URL and key prefix of this test (Postgres backend only).
    pub fn redis(&self) -> Option<(&str, &str)> {
        self.storage
            .redis
            .as_ref()
            .map(|r| (r.url.as_str(), r.prefix.as_str()))
    }

    /// Stops the server gracefully and waits for it; `run` must return Ok.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(WAIT, server)
                .await
                .expect("server did not stop within the bound after cancel")
                .expect("server task panicked");
            result.expect("Application::run returned an error on shutdown");
        }
    }

    /// Stops this server and builds a new one on the same storage (same data
    /// dir, database and Redis prefix) on a new port; clients are reconnected.
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = launch(self.config.clone()).await;
        self.addr = running.addr;
        self.state = running.state;
        self.users = UsersServiceClient::new(running.channel.clone());
        self.chats = ChatsServiceClient::new(running.channel.clone());
        self.messages = MessagesServiceClient::new(running.channel.clone());
        self.channel = running.channel;
        self.shutdown = running.shutdown;
        self.server = Some(running.server);
    }

    pub async fn try_register(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> Result<CreateUserResponse, Status> {
        self.users
            .clone()
            .create_user(CreateUserRequest {
                username: username.into(),
                email: email.into(),
                password: password.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Registers `name` with email `name@example.com` (lower-cased).
    pub async fn register(&self, name: &str) -> TestUser {
        let email = format!("{}@example.com", name.to_lowercase());
        let resp = self
            .try_register(name, &email, PASSWORD)
            .await
            .unwrap_or_else(|s| panic!("CreateUser {name}: {s:?}"));
        let user = resp.user.expect("CreateUserResponse.user");
        assert!(!resp.token.is_empty(), "CreateUser returned no token");
        TestUser {
            id: user.id,
            username: user.username,
            email: user.email,
            token: resp.token,
        }
    }

    /// The direct chat of `a` with `b`, opened by `a`.
    pub async fn direct_chat(&self, a: &TestUser, b: &TestUser) -> String {
        self.create_chat(
            a,
            CreateChatRequest {
                email: b.email.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("CreateChat (direct)")
    }

    /// A group room named `name` of `owner` and `members` (by id).
    pub async fn group_chat(&self, owner: &TestUser, name: &str, members: &[&TestUser]) -> String {
        self.create_chat(
            owner,
            CreateChatRequest {
                name: name.into(),
                member_ids: members.iter().map(|m| m.id.clone()).collect(),
                is_group: true,
                ..Default::default()
            },
        )
        .await
        .expect("CreateChat (group)")
    }

    pub async fn create_chat(
        &self,
        user: &TestUser,
        req: CreateChatRequest,
    ) -> Result<String, Status> {
        let resp = self
            .chats
            .clone()
            .create_chat(authed(req, &user.token))
            .await?
            .into_inner();
        assert!(!resp.chat_id.is_empty(), "CreateChat returned no chat_id");
        Ok(resp.chat_id)
    }

    pub async fn try_send(
        &self,
        user: &TestUser,
        chat_id: &str,
        content: &str,
        idempotency_key: &str,
    ) -> Result<Message, Status> {
        let resp = self
            .messages
            .clone()
            .send_message(authed(
                SendMessageRequest {
                    chat_id: chat_id.into(),
                    content: content.into(),
                    idempotency_key: idempotency_key.into(),
                    ..Default::default()
                },
                &user.token,
            ))
            .await?
            .into_inner();
        Ok(resp.message.expect("SendMessageResponse.message"))
    }

    pub async fn send(&self, user: &TestUser, chat_id: &str, content: &str) -> Message {
        self.try_send(user, chat_id, content, "")
            .await
            .unwrap_or_else(|s| panic!("SendMessage {content:?}: {s:?}"))
    }

    pub async fn list_messages(
        &self,
        user: &TestUser,
        req: ListMessagesRequest,
    ) -> Result<ListMessagesResponse, Status> {
        self.messages
            .clone()
            .list_messages(authed(req, &user.token))
            .await
            .map(|r| r.into_inner())
    }

    /// Every message of the chat (at most 100), newest first.
    pub async fn all_messages(&self, user: &TestUser, chat_id: &str) -> ListMessagesResponse {
        self.list_messages(
            user,
            ListMessagesRequest {
                chat_id: chat_id.into(),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("ListMessages")
    }

    /// Opens SubscribeToChat and waits for its CONNECTED frame. An error
    /// status, whether it comes as the response or as the first item, is
    /// returned as Err.
    pub async fn try_subscribe(
        &self,
        user: &TestUser,
        chat_id: &str,
        after_seq: i64,
    ) -> Result<Subscription, Status> {
        subscribe_on(&self.messages, &user.token, chat_id, after_seq).await
    }

    pub async fn subscribe(&self, user: &TestUser, chat_id: &str, after_seq: i64) -> Subscription {
        self.try_subscribe(user, chat_id, after_seq)
            .await
            .unwrap_or_else(|s| panic!("SubscribeToChat: {s:?}"))
    }

    /// Waits (bounded) until the hub's subscriber count satisfies `pred`.
    pub async fn wait_subscribers(&self, what: &str, pred: impl FnMut(&usize) -> bool) -> usize {
        let mut rx = self.state.hub.watch_subscribers();
        let result = tokio::time::timeout(WAIT, async {
            let seen = rx.wait_for(pred).await.expect("hub watch closed");
            *seen
        })
        .await;
        match result {
            Ok(n) => n,
            Err(_) => panic!(
                "hub subscriber count never became {what} (now {})",
                self.state.hub.subscriber_count()
            ),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Storage (database, Redis keys, temp dir) is dropped after this.
        self.shutdown.cancel();
    }
}

pub async fn subscribe_on(
    client: &MessagesServiceClient<Channel>,
    token: &str,
    chat_id: &str,
    after_seq: i64,
) -> Result<Subscription, Status> {
    let mut client = client.clone();
    let call = client.subscribe_to_chat(authed(
        SubscribeToChatRequest {
            chat_id: chat_id.into(),
            after_seq,
        },
        token,
    ));
    let stream = tokio::time::timeout(WAIT, call)
        .await
        .expect("SubscribeToChat did not answer in time")?
        .into_inner();
    let mut sub = Subscription { stream };
    match sub.next_item().await? {
        Some(first) => {
            assert_eq!(first.message_id, "connection", "first frame: {first:?}");
            assert_eq!(first.status, "CONNECTED", "first frame: {first:?}");
            Ok(sub)
        }
        None => panic!("SubscribeToChat ended before its CONNECTED frame"),
    }
}

pub struct Subscription {
    pub stream: Streaming<ChatMessage>,
}

impl Subscription {
    /// The next item of the stream (Ok(None) = ended with OK), bounded by WAIT.
    pub async fn next_item(&mut self) -> Result<Option<ChatMessage>, Status> {
        tokio::time::timeout(WAIT, self.stream.message())
            .await
            .expect("no stream item within the bound")
    }

    /// The next message; panics on error, end of stream or timeout.
    pub async fn next(&mut self) -> ChatMessage {
        match self.next_item().await {
            Ok(Some(m)) => m,
            Ok(None) => panic!("stream ended unexpectedly"),
            Err(s) => panic!("stream failed: {s:?}"),
        }
    }

    pub async fn take(&mut self, n: usize) -> Vec<ChatMessage> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }
}

/// `req` with `authorization: Bearer <token>`.
pub fn authed<T>(req: T, token: &str) -> Request<T> {
    with_authorization(req, Some(&format!("Bearer {token}")))
}

/// `req` with the raw `authorization` value given (None: no header).
pub fn with_authorization<T>(req: T, value: Option<&str>) -> Request<T> {
    let mut req = Request::new(req);
    if let Some(value) = value {
        req.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(value).expect("ascii header value"),
        );
    }
    req
}

/// Asserts `result` failed with `code` and, when `field` is not empty, that
/// the message names the field. Returns the status.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    field: &str,
) -> Status {
    match result {
        Ok(v) => panic!("expected {code:?} ({field}), got OK: {v:?}"),
        Err(status) => {
            assert_eq!(
                status.code(),
                code,
                "expected {code:?} ({field}), got {status:?}"
            );
            assert!(
                status.message().contains(field),
                "expected the message to name `{field}`: {status:?}"
            );
            status
        }
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// An HS256 token for `sub` expiring `exp_in` seconds from now, signed with
/// `secret`.
pub fn mint_token(sub: &str, exp_in: i64, secret: &str) -> String {
    let now = now_secs();
    let iat = if exp_in > 0 { now } else { now + exp_in - 3600 };
    let claims = serde_json::json!({ "sub": sub, "iat": iat, "exp": now + exp_in });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode token")
}

/// Decodes and verifies one of the server's tokens with the test secret.
pub fn decode_token(token: &str) -> serde_json::Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub", "iat"]);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .expect("the server's token verifies with the configured secret")
    .claims
}

pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned `alg: none` token for `sub` that would otherwise be valid.
pub fn alg_none_token(sub: &str) -> String {
    let now = now_secs();
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = serde_json::json!({ "sub": sub, "iat": now, "exp": now + 3600 });
    let payload = b64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

/// Timestamp as (seconds, nanos) for ordering comparisons.
pub fn ts(t: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("timestamp set");
    (t.seconds, t.nanos)
}

#[test]
fn database_url_replaces_only_the_database() {
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        database_url("postgres://u:p@h:1/db?sslmode=disable", "x"),
        "postgres://u:p@h:1/x?sslmode=disable"
    );
    assert_eq!(database_url("postgres://u@h", "x"), "postgres://u@h/x");
}
