//! Talking to the server: connections, users, chats, the send stamp, and
//! the streams.
//!
//! Unary calls use the generated clients of the `tidings` crate. The streams
//! a scenario reads by the thousand decode with "lite" message types that
//! keep only the fields the tool measures (protobuf skips the rest), so the
//! tool spends as little of the shared CPU as it can.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::StreamExt as _;
use tidings_proto::chats_service_client::ChatsServiceClient;
use tidings_proto::messages_service_client::MessagesServiceClient;
use tidings_proto::users_service_client::UsersServiceClient;
use tidings_proto::{
    CreateChatRequest, CreateUserRequest, LoginRequest, SendMessageRequest, SubscribeRequest,
    SubscribeToChatRequest,
};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status, Streaming};

/// The password of every user the tool creates.
pub const PASSWORD: &str = "load-password-1";

/// One HTTP/2 connection. The server allows 200 concurrent streams per
/// connection (hyper's default), so stream-heavy scenarios open one
/// connection per [`STREAMS_PER_CONNECTION`] streams.
pub async fn connect(server: &str, timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(server.to_owned())
        .context("--server must be a URL such as http://127.0.0.1:8080")?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .initial_connection_window_size(16 * 1024 * 1024)
        .initial_stream_window_size(1024 * 1024);
    let deadline = Instant::now() + timeout;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if Instant::now() < deadline => {
                tracing_free_log(&format!("waiting for the server at {server}: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to {server}")),
        }
    }
}

/// Streams the tool puts on one HTTP/2 connection (the server's limit is 200).
pub const STREAMS_PER_CONNECTION: usize = 190;

/// `n` separate connections.
pub async fn connect_many(server: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(connect(server, Duration::from_secs(10)).await?);
    }
    Ok(out)
}

fn tracing_free_log(msg: &str) {
    static LAST: OnceLock<std::sync::Mutex<Option<Instant>>> = OnceLock::new();
    let last = LAST.get_or_init(Default::default);
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
        eprintln!("{msg}");
        *last = Some(Instant::now());
    }
}

/// A user the tool created, with its token.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub auth: AsciiMetadataValue,
    pub token: String,
}

/// A request with the user's bearer token.
pub fn authed<T>(msg: T, user: &User) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", user.auth.clone());
    req
}

/// A prefix that makes this run's names unique on a shared server.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{:08x}",
        (nanos as u64 ^ (std::process::id() as u64) << 32) as u32
    )
}

/// Retries a call the server refused for now (rate limit, overload).
async fn retrying<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut backoff = Duration::from_millis(50);
    for _ in 0..12 {
        match call().await {
            Ok(v) => return Ok(v),
            Err(s) if matches!(s.code(), Code::ResourceExhausted | Code::Unavailable) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(s) => bail!("{what}: {:?} {}", s.code(), s.message()),
        }
    }
    bail!("{what}: still refused after retries")
}

/// Creates `n` users named `<prefix>_<i>`, `concurrency` at a time (password
/// hashing is deliberately slow on the server, so users are made once per
/// run and reused).
pub async fn create_users(
    channels: &[Channel],
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<User>> {
    let started = Instant::now();
    let results: Vec<anyhow::Result<User>> = futures::stream::iter(0..n)
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            let username = format!("{prefix}_{i}");
            async move {
                let email = format!("{username}@load.test");
                let client = UsersServiceClient::new(channel);
                let req = CreateUserRequest {
                    username: username.clone(),
                    email: email.clone(),
                    password: PASSWORD.into(),
                };
                let resp = retrying("CreateUser", || {
                    let (mut client, req) = (client.clone(), req.clone());
                    async move { client.create_user(req).await }
                })
                .await?
                .into_inner();
                let user = resp.user.context("CreateUser answered without a user")?;
                Ok(User {
                    id: user.id,
                    email,
                    auth: MetadataValue::try_from(format!("Bearer {}", resp.token))?,
                    token: resp.token,
                })
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let users = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "created {n} users in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(users)
}

/// Logs a user in; returns how long it took.
pub async fn login(channel: Channel, email: &str) -> Result<Duration, Status> {
    let started = Instant::now();
    UsersServiceClient::new(channel)
        .login(LoginRequest {
            email: email.to_owned(),
            password: PASSWORD.into(),
        })
        .await?;
    Ok(started.elapsed())
}

/// A group room of `owner` and `members`.
pub async fn create_group(
    channel: Channel,
    owner: &User,
    members: &[&User],
    name: &str,
) -> anyhow::Result<String> {
    let client = ChatsServiceClient::new(channel);
    let req = CreateChatRequest {
        name: name.to_owned(),
        member_ids: members.iter().map(|m| m.id.clone()).collect(),
        is_group: true,
        ..Default::default()
    };
    let resp = retrying("CreateChat", || {
        let (mut client, req) = (client.clone(), authed(req.clone(), owner));
        async move { client.create_chat(req).await }
    })
    .await?;
    Ok(resp.into_inner().chat_id)
}

/// The direct chat between `a` and `b`.
pub async fn direct_chat(channel: Channel, a: &User, b: &User) -> anyhow::Result<String> {
    let client = ChatsServiceClient::new(channel);
    let req = CreateChatRequest {
        email: b.email.clone(),
        ..Default::default()
    };
    let resp = retrying("CreateChat", || {
        let (mut client, req) = (client.clone(), authed(req.clone(), a));
        async move { client.create_chat(req).await }
    })
    .await?;
    Ok(resp.into_inner().chat_id)
}

/// Sends one message.
pub async fn send(
    client: &mut MessagesServiceClient<Channel>,
    user: &User,
    chat_id: &str,
    content: String,
    key: String,
) -> Result<i64, Status> {
    let resp = client
        .send_message(authed(
            SendMessageRequest {
                chat_id: chat_id.to_owned(),
                content,
                idempotency_key: key,
                ..Default::default()
            },
            user,
        ))
        .await?;
    Ok(resp.into_inner().message.map_or(0, |m| m.seq))
}

// ---------------------------------------------------------------------------
// The send stamp: every measured message carries the moment it was sent.
// ---------------------------------------------------------------------------

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Nanoseconds since the tool started (monotonic, shared by every task).
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Nanoseconds since the tool started, of an instant.
pub fn ns_of(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_nanos() as u64
}

/// A message body carrying its send time and a tag, padded to a chat-like
/// length: `t<hex nanos>.<tag> ...`.
pub fn stamp(sent_ns: u64, tag: u32) -> String {
    format!("t{sent_ns:x}.{tag} load test message, padded to a typical chat line length")
}

/// The send time and tag of a stamped message body.
pub fn parse_stamp(content: &[u8]) -> Option<(u64, u32)> {
    let rest = content.strip_prefix(b"t")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let ns = u64::from_str_radix(std::str::from_utf8(&rest[..dot]).ok()?, 16).ok()?;
    let tail = &rest[dot + 1..];
    let end = tail
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(tail.len());
    let tag = std::str::from_utf8(&tail[..end]).ok()?.parse().ok()?;
    Some((ns, tag))
}

// ---------------------------------------------------------------------------
// Lite stream messages: the wire types of the contract, cut down to what the
// tool reads. Fields not declared here are skipped by the decoder.
// ---------------------------------------------------------------------------

/// `messaging.ChatMessage`: content (5) and seq (8). The first frame
/// ("connection", CONNECTED) has seq 0.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LiteChatMessage {
    #[prost(bytes = "bytes", tag = "5")]
    pub content: Bytes,
    #[prost(int64, tag = "8")]
    pub seq: i64,
}

/// `messaging.Message`: content (4) and seq (7).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LiteMessage {
    #[prost(bytes = "bytes", tag = "4")]
    pub content: Bytes,
    #[prost(int64, tag = "7")]
    pub seq: i64,
}

/// Any message whose fields the tool does not read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Opaque {}

/// `messaging.Event`: only `connected` (1) and `message` (2) of the oneof.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LiteEvent {
    #[prost(message, optional, tag = "1")]
    pub connected: Option<Opaque>,
    #[prost(message, optional, tag = "2")]
    pub message: Option<LiteMessage>,
}

async fn server_streaming<Req, Resp>(
    channel: Channel,
    path: &'static str,
    request: Request<Req>,
) -> Result<Streaming<Resp>, Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let path = http::uri::PathAndQuery::from_static(path);
    Ok(grpc
        .server_streaming(request, path, codec)
        .await?
        .into_inner())
}

/// `EventsService.Subscribe`: the user's stream of every chat, live.
pub async fn subscribe_user(channel: Channel, user: &User) -> Result<Streaming<LiteEvent>, Status> {
    server_streaming(
        channel,
        "/messaging.EventsService/Subscribe",
        authed(SubscribeRequest::default(), user),
    )
    .await
}

/// `MessagesService.SubscribeToChat`: one chat's messages, live.
pub async fn subscribe_chat(
    channel: Channel,
    user: &User,
    chat_id: &str,
) -> Result<Streaming<LiteChatMessage>, Status> {
    server_streaming(
        channel,
        "/messaging.MessagesService/SubscribeToChat",
        authed(
            SubscribeToChatRequest {
                chat_id: chat_id.to_owned(),
                after_seq: 0,
            },
            user,
        ),
    )
    .await
}

/// What a subscriber saw in one frame.
pub enum Seen {
    Connected,
    /// A message and its send stamp (None if it was not stamped).
    Message(Option<(u64, u32)>),
    Other,
}

impl LiteEvent {
    pub fn seen(&self) -> Seen {
        if self.connected.is_some() {
            Seen::Connected
        } else if let Some(m) = &self.message {
            Seen::Message(parse_stamp(&m.content))
        } else {
            Seen::Other
        }
    }
}

impl LiteChatMessage {
    pub fn seen(&self) -> Seen {
        if self.seq == 0 {
            Seen::Connected
        } else {
            Seen::Message(parse_stamp(&self.content))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn stamp_round_trips() {
        let s = stamp(0x1234_5678_9abc, 7);
        assert_eq!(parse_stamp(s.as_bytes()), Some((0x1234_5678_9abc, 7)));
        assert_eq!(parse_stamp(b"hello"), None);
        assert_eq!(parse_stamp(b"t12.x"), None);
    }

    #[test]
    fn lite_event_reads_the_contract_wire_format() {
        use tidings_proto::{Connected, Event, Heartbeat, Message, event::Kind};
        let msg = Event {
            kind: Some(Kind::Message(Message {
                id: "m".into(),
                chat_id: "c".into(),
                content: stamp(42, 1),
                seq: 3,
                username: "u".into(),
                ..Default::default()
            })),
        };
        let lite = LiteEvent::decode(msg.encode_to_vec().as_slice()).unwrap();
        assert!(matches!(lite.seen(), Seen::Message(Some((42, 1)))));
        assert_eq!(lite.message.unwrap().seq, 3);

        let connected = Event {
            kind: Some(Kind::Connected(Connected {
                user_id: "u".into(),
                server_time: None,
            })),
        };
        let lite = LiteEvent::decode(connected.encode_to_vec().as_slice()).unwrap();
        assert!(matches!(lite.seen(), Seen::Connected));

        let beat = Event {
            kind: Some(Kind::Heartbeat(Heartbeat { server_time: None })),
        };
        let lite = LiteEvent::decode(beat.encode_to_vec().as_slice()).unwrap();
        assert!(matches!(lite.seen(), Seen::Other));
    }

    #[test]
    fn lite_chat_message_reads_the_contract_wire_format() {
        use tidings_proto::ChatMessage;
        let first = ChatMessage {
            message_id: "connection".into(),
            status: "CONNECTED".into(),
            ..Default::default()
        };
        let lite = LiteChatMessage::decode(first.encode_to_vec().as_slice()).unwrap();
        assert!(matches!(lite.seen(), Seen::Connected));
        let m = ChatMessage {
            message_id: "m".into(),
            content: stamp(9, 0),
            seq: 1,
            ..Default::default()
        };
        let lite = LiteChatMessage::decode(m.encode_to_vec().as_slice()).unwrap();
        assert!(matches!(lite.seen(), Seen::Message(Some((9, 0)))));
    }
}
