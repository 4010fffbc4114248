//! The connection to the server: one lazily connected channel (it reconnects
//! by itself on the next call after a failure), a bearer-token interceptor,
//! and the generated clients of `tidings_proto`.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tidings_proto::chats_service_client::ChatsServiceClient;
use tidings_proto::events_service_client::EventsServiceClient;
use tidings_proto::files_service_client::FilesServiceClient;
use tidings_proto::messages_service_client::MessagesServiceClient;
use tidings_proto::users_service_client::UsersServiceClient;
use tidings_proto::{RefreshTokenRequest, User};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::error::CliError;
use crate::store::{Session, Store};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Each call waits at most this long to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings find a dead connection under an idle stream (a laptop that
/// slept, a NAT that forgot us) long before TCP would.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every command starts from: the config dir and the `--server` flag.
pub struct Context {
    pub store: Store,
    server: Option<String>,
}

impl Context {
    pub fn new(
        server: Option<String>,
        config_dir: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Self> {
        Ok(Context {
            store: Store::open(config_dir)?,
            server,
        })
    }

    /// `--server` / TIDINGS_SERVER, else the saved session's, else the default.
    pub fn server(&self, session: Option<&Session>) -> String {
        self.server
            .clone()
            .or_else(|| session.map(|s| s.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned())
    }

    /// A channel for the calls that need no token (register, log in).
    pub fn anonymous(&self) -> anyhow::Result<(String, UsersServiceClient<Channel>)> {
        let server = self.server(self.store.session()?.as_ref());
        let channel = channel(&server)?;
        Ok((server, UsersServiceClient::new(channel)))
    }

    /// The clients, authenticated as the saved session. A token past three
    /// quarters of its life is exchanged for a fresh one first.
    pub async fn login(&self) -> anyhow::Result<Api> {
        let session = self.store.session()?.ok_or(CliError::NotLoggedIn)?;
        let server = self.server(Some(&session));
        let mut api = Api::new(channel(&server)?, server, session)?;
        if api.session.expires_at <= now() {
            return Err(CliError::SessionExpired {
                username: api.session.username,
            }
            .into());
        }
        if api.refresh_at() <= tokio::time::Instant::now() {
            // The old token is still valid: if the server cannot be asked
            // now, the command goes on with it (and `send` retries as usual).
            let _ = api.refresh(&self.store).await;
        }
        Ok(api)
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// The authenticated clients of one session.
pub struct Api {
    pub server: String,
    pub session: Session,
    channel: Channel,
    pub users: UsersServiceClient<Authed>,
    pub chats: ChatsServiceClient<Authed>,
    pub messages: MessagesServiceClient<Authed>,
    pub events: EventsServiceClient<Authed>,
    pub files: FilesServiceClient<Authed>,
}

impl Api {
    fn new(channel: Channel, server: String, session: Session) -> anyhow::Result<Api> {
        let bearer = Bearer(
            format!("Bearer {}", session.token)
                .parse()
                .context("the saved token is not valid metadata; log in again")?,
        );
        Ok(Api {
            users: UsersServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            chats: ChatsServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            messages: MessagesServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            events: EventsServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            files: FilesServiceClient::with_interceptor(channel.clone(), bearer),
            channel,
            server,
            session,
        })
    }

    /// When the token should be exchanged: at three quarters of its life.
    /// Long-running streams reopen with the new token then, before the
    /// server closes them for an expired one.
    pub fn refresh_at(&self) -> tokio::time::Instant {
        let Session {
            issued_at,
            expires_at,
            ..
        } = self.session;
        let due = issued_at + (expires_at - issued_at).max(0) * 3 / 4;
        let wait = u64::try_from(due - now()).unwrap_or(0);
        tokio::time::Instant::now() + Duration::from_secs(wait)
    }

    /// Exchanges the token for a fresh one and saves it.
    pub async fn refresh(&mut self, store: &Store) -> anyhow::Result<()> {
        let reply = call(self.users.refresh_token(RefreshTokenRequest {})).await?;
        let mut session = self.session.clone();
        session.token = reply.token;
        session.issued_at = now();
        session.expires_at = reply.expires_at.map_or(session.expires_at, |t| t.seconds);
        store.save_session(&session)?;
        *self = Api::new(self.channel.clone(), self.server.clone(), session)?;
        Ok(())
    }
}

/// The session to save after CreateUser or Login.
pub fn new_session(
    server: String,
    user: Option<User>,
    token: String,
    expires_at: Option<prost_types::Timestamp>,
) -> anyhow::Result<Session> {
    let user = user.context("the server answered without a user")?;
    let issued_at = now();
    Ok(Session {
        server,
        user_id: user.id,
        username: user.username,
        email: user.email,
        token,
        issued_at,
        // An old server sends no expiry: assume the usual day.
        expires_at: expires_at.map_or(issued_at + 24 * 3600, |t| t.seconds),
    })
}

/// A channel that connects on first use and again after any failure.
pub fn channel(server: &str) -> anyhow::Result<Channel> {
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    if url.starts_with("https://") {
        anyhow::bail!(
            "{url}: this build of tidings-chat speaks plain HTTP/2 only; use an http:// URL"
        );
    }
    let endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("{url} is not a valid server URL"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// Awaits a unary call, turning its status into a [`CliError`].
pub async fn call<T>(
    response: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<T, CliError> {
    response
        .await
        .map(Response::into_inner)
        .map_err(CliError::from)
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
