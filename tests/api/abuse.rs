//! Abuse limits: per-user send and typing rates, the per-address rate of
//! CreateUser/Login, the per-user stream cap, request and header sizes, and
//! the HTTP/1.1 header-read / idle timeout. Each test sets its limit low on
//! purpose (the harness raises them for every other test), shows the refusal,
//! shows that calls under the limit work, and that another user or address
//! is not affected.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use prost::Message as _;
use tidings::proto::events_service_client::EventsServiceClient;
use tidings::proto::users_service_client::UsersServiceClient;
use tidings::proto::{
    AddMembersRequest, ClientFrame, CreateChatRequest, GetMeRequest, ListChatsRequest,
    LoginRequest, SendMessageRequest, SendTypingRequest, SubscribeToChatRequest, client_frame,
    server_frame,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::grpc_web::{GrpcWeb, MESSAGES, Mode, USERS, parse_trailers, take_frames};
use crate::helpers::*;
use crate::ops::{metric_value, scrape};
use crate::realtime::open_events;

both_backends!(
    send_rate_is_per_user_and_shared_by_session_frames,
    typing_has_a_budget_of_its_own,
    auth_rate_is_per_client_address,
    streams_per_user_are_capped_and_freed_when_one_ends,
    rooms_per_user_are_rate_limited,
    e_mail_look_ups_per_user_are_rate_limited,
);

const LIMITED: &str = "tidings_limited_total";

async fn limited(app: &TestApp, limit: &str) -> f64 {
    metric_value(&scrape(app).await, LIMITED, &[("limit", limit)])
}

/// The `retry-after-ms` hint of a refusal.
fn retry_after(status: &tonic::Status) -> Duration {
    let ms: u64 = status
        .metadata()
        .get("retry-after-ms")
        .unwrap_or_else(|| panic!("no retry-after-ms on {status:?}"))
        .to_str()
        .unwrap()
        .parse()
        .expect("retry-after-ms is a number");
    Duration::from_millis(ms)
}

fn assert_limited(status: &tonic::Status, limit: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{limit}:")),
        "the message names the limit {limit:?}: {status:?}"
    );
}

async fn send_rate_is_per_user_and_shared_by_session_frames(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.send_rate = 1;
        c.send_burst = 3;
    })
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let before = limited(&app, "send").await;

    for i in 0..3 {
        app.try_send(&alice, &chat, &format!("burst {i}"), "")
            .await
            .unwrap_or_else(|s| panic!("message {i} is within the burst: {s:?}"));
    }
    let refused = app
        .try_send(&alice, &chat, "one too many", "")
        .await
        .expect_err("the fourth message in a second is over the limit");
    assert_limited(&refused, "send rate limit");
    let wait = retry_after(&refused);
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(1001),
        "one message per second: retry within a second, not {wait:?}"
    );

    // Bob has a budget of his own.
    app.try_send(&bob, &chat, "bob is not limited", "")
        .await
        .expect("another user is not affected");

    // A `send` frame of the bidirectional session draws on the same budget:
    // refused as an error frame, the session stays open.
    let (tx, rx) = tokio::sync::mpsc::channel::<ClientFrame>(4);
    tx.send(ClientFrame {
        r#ref: "s1".into(),
        kind: Some(client_frame::Kind::Send(SendMessageRequest {
            chat_id: chat.clone(),
            content: "over the session".into(),
            idempotency_key: String::new(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut session = EventsServiceClient::new(app.channel.clone())
        .session(authed(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            &alice.token,
        ))
        .await
        .expect("Session opens")
        .into_inner();
    let error = loop {
        let frame = tokio::time::timeout(WAIT, session.message())
            .await
            .expect("a session frame in time")
            .expect("session ok")
            .expect("session open");
        match frame.kind {
            Some(server_frame::Kind::Error(e)) if e.r#ref == "s1" => break e,
            Some(server_frame::Kind::Ack(a)) if a.r#ref == "s1" => {
                panic!("the session send got past the rate limit: {a:?}")
            }
            _ => continue,
        }
    };
    assert_eq!(error.code, Code::ResourceExhausted as i32, "{error:?}");
    assert!(error.message.starts_with("send rate limit:"), "{error:?}");
    drop(tx);
    drop(session);

    let stored = app.all_messages(&bob, &chat).await;
    assert_eq!(
        stored.total, 4,
        "three of alice's, one of bob's: {stored:?}"
    );
    assert!(
        limited(&app, "send").await - before >= 2.0,
        "refusals are counted"
    );

    // Waiting as told is enough.
    tokio::time::sleep(wait).await;
    app.try_send(&alice, &chat, "after the hinted wait", "")
        .await
        .expect("the budget refills");
}

async fn typing_has_a_budget_of_its_own(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.typing_rate = 1;
        c.typing_burst = 2;
        c.send_rate = 1;
        c.send_burst = 1;
    })
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let typing = |user: &TestUser, on: bool| {
        let mut client = app.messages.clone();
        let req = authed(
            SendTypingRequest {
                chat_id: chat.clone(),
                typing: on,
            },
            &user.token,
        );
        async move { client.send_typing(req).await }
    };

    typing(&alice, true).await.expect("first typing update");
    typing(&alice, false).await.expect("second typing update");
    let refused = typing(&alice, true)
        .await
        .expect_err("the third in a second is over the limit");
    assert_limited(&refused, "typing rate limit");
    assert!(retry_after(&refused) > Duration::ZERO);

    // Typing spent nothing of the message budget, and bob is unaffected.
    app.try_send(&alice, &chat, "typing did not use this up", "")
        .await
        .expect("messages have their own budget");
    typing(&bob, true)
        .await
        .expect("another user is not affected");
}

/// A channel whose connection comes from `local` (any 127.x address works on
/// Linux loopback), so the server sees another client address.
async fn connect_from(local: IpAddr, addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(local, 0))?;
            let stream = socket.connect(addr).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }))
        .await
        .expect("connect from another loopback address")
}

fn login(email: &str, password: &str) -> LoginRequest {
    LoginRequest {
        email: email.into(),
        password: password.into(),
    }
}

fn room_with(members: &[&TestUser], emails: &[String]) -> CreateChatRequest {
    CreateChatRequest {
        name: "spam".into(),
        member_ids: members.iter().map(|m| m.id.clone()).collect(),
        member_emails: emails.to_vec(),
        is_group: true,
        ..Default::default()
    }
}

async fn rooms_per_user_are_rate_limited(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.room_rate = 1; // per minute
        c.room_burst = 3;
    })
    .await;
    let (spammer, victim, other) = (
        app.register("spammer").await,
        app.register("victim").await,
        app.register("other").await,
    );
    let mut chats = app.chats.clone();
    let mut rooms = Vec::new();
    for _ in 0..2 {
        let r = chats
            .create_chat(authed(room_with(&[&victim], &[]), &spammer.token))
            .await
            .expect("within the burst");
        rooms.push(r.into_inner().chat_id);
    }
    // AddMembers shares the budget.
    chats
        .add_members(authed(
            AddMembersRequest {
                chat_id: rooms[0].clone(),
                member_ids: vec![other.id.clone()],
                ..Default::default()
            },
            &spammer.token,
        ))
        .await
        .expect("the third call of the burst");
    let refused = chats
        .create_chat(authed(room_with(&[&victim], &[]), &spammer.token))
        .await
        .expect_err("a fourth room is over the limit");
    assert_limited(&refused, "room rate limit");
    let wait = retry_after(&refused);
    assert!(wait > Duration::from_secs(30), "one per minute: {wait:?}");
    let refused = chats
        .add_members(authed(
            AddMembersRequest {
                chat_id: rooms[1].clone(),
                member_ids: vec![other.id.clone()],
                ..Default::default()
            },
            &spammer.token,
        ))
        .await
        .expect_err("AddMembers too");
    assert_limited(&refused, "room rate limit");
    // The victim got only the rooms that were allowed, and another user
    // still has a budget of its own.
    let listed = chats
        .list_chats(authed(ListChatsRequest::default(), &victim.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total, 2);
    chats
        .create_chat(authed(room_with(&[&victim], &[]), &other.token))
        .await
        .expect("another user is not affected");
}

async fn e_mail_look_ups_per_user_are_rate_limited(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.lookup_rate = 1; // per minute
        c.lookup_burst = 5;
    })
    .await;
    let (prober, known) = (app.register("prober").await, app.register("known").await);
    let mut chats = app.chats.clone();
    let unknown: Vec<String> = (0..4).map(|i| format!("guess{i}@example.com")).collect();
    let miss = chats
        .create_chat(authed(room_with(&[], &unknown), &prober.token))
        .await
        .expect_err("no such people");
    assert_eq!(miss.code(), Code::NotFound, "{miss:?}");
    // Four looked up; the fifth (a direct chat by e-mail) is the last.
    chats
        .create_chat(authed(
            CreateChatRequest {
                email: known.email.clone(),
                ..Default::default()
            },
            &prober.token,
        ))
        .await
        .expect("the fifth look-up of the burst");
    let refused = chats
        .create_chat(authed(
            CreateChatRequest {
                email: "guess9@example.com".into(),
                ..Default::default()
            },
            &prober.token,
        ))
        .await
        .expect_err("a sixth look-up is over the limit");
    assert_limited(&refused, "lookup rate limit");
    assert!(retry_after(&refused) > Duration::from_secs(30));
    // More addresses in one call than the burst can ever allow: no retry hint.
    let many: Vec<String> = (0..6).map(|i| format!("many{i}@example.com")).collect();
    let too_many = chats
        .create_chat(authed(room_with(&[], &many), &known.token))
        .await
        .expect_err("more than the burst at once");
    assert_limited(&too_many, "lookup rate limit");
    assert!(too_many.metadata().get("retry-after-ms").is_none());
    // By id, no look-up by e-mail happens: still allowed.
    chats
        .create_chat(authed(room_with(&[&known], &[]), &prober.token))
        .await
        .expect("rooms by member id are not look-ups");
}

async fn auth_rate_is_per_client_address(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.auth_rate = 1; // per minute
        c.auth_burst = 3;
    })
    .await;
    let before = limited(&app, "auth").await;
    let alice = app.register("alice").await; // 1
    let mut users = app.users.clone();
    users
        .login(login(&alice.email, PASSWORD))
        .await
        .expect("a login within the budget"); // 2
    let wrong = users
        .login(login(&alice.email, "not the password"))
        .await
        .expect_err("wrong password"); // 3: failures count too
    assert_eq!(wrong.code(), Code::Unauthenticated);

    let refused = users
        .login(login(&alice.email, PASSWORD))
        .await
        .expect_err("the fourth is over the limit");
    assert_limited(&refused, "auth rate limit");
    let wait = retry_after(&refused);
    assert!(
        wait > Duration::from_secs(30) && wait <= Duration::from_secs(61),
        "one per minute: {wait:?}"
    );
    let signup = app
        .try_register("mallory", "mallory@example.com", PASSWORD)
        .await
        .expect_err("CreateUser shares the budget");
    assert_limited(&signup, "auth rate limit");

    // X-Forwarded-For is not trusted by default: it changes nothing.
    let mut spoofed = tonic::Request::new(login(&alice.email, PASSWORD));
    spoofed
        .metadata_mut()
        .insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    let spoofed = users.login(spoofed).await.expect_err("still limited");
    assert_limited(&spoofed, "auth rate limit");

    // gRPC-Web over HTTP/1.1 comes from the same address: limited too.
    let web = GrpcWeb::new(&app)
        .call(
            &format!("{USERS}/Login"),
            &login(&alice.email, PASSWORD),
            None,
            Mode::Binary,
        )
        .await;
    assert_eq!(web.status, Code::ResourceExhausted as i32, "{web:?}");

    // Another client address has a budget of its own.
    let other = connect_from([127, 0, 0, 2].into(), app.addr).await;
    UsersServiceClient::new(other)
        .login(login(&alice.email, PASSWORD))
        .await
        .expect("another address is not affected");
    assert!(limited(&app, "auth").await - before >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rate_keys_on_x_forwarded_for_behind_a_trusted_proxy() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.auth_rate = 1;
        c.auth_burst = 1;
        c.trust_proxy = true;
    })
    .await;
    let via = |client: &str| {
        let mut req = tonic::Request::new(login("nobody@example.com", PASSWORD));
        req.metadata_mut().insert(
            "x-forwarded-for",
            format!("{client}, 198.51.100.1").parse().unwrap(),
        );
        req
    };
    let mut users = app.users.clone();
    // The proxy appended 198.51.100.1: that is the client, whatever the
    // client itself claimed before it.
    let first = users.login(via("1.1.1.1")).await.expect_err("no such user");
    assert_eq!(first.code(), Code::Unauthenticated);
    let second = users.login(via("2.2.2.2")).await.expect_err("limited");
    assert_limited(&second, "auth rate limit");

    let mut other = tonic::Request::new(login("nobody@example.com", PASSWORD));
    other
        .metadata_mut()
        .insert("x-forwarded-for", "198.51.100.2".parse().unwrap());
    let other = users.login(other).await.expect_err("no such user");
    assert_eq!(
        other.code(),
        Code::Unauthenticated,
        "another forwarded client is not affected"
    );
}

async fn open_streams(app: &TestApp, user: &TestUser) -> usize {
    app.state.limits.open_streams(&user.id)
}

async fn streams_per_user_are_capped_and_freed_when_one_ends(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.max_streams_per_user = 2).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let before = limited(&app, "streams").await;

    let events = open_events(&app.channel, &alice, &[])
        .await
        .expect("stream 1");
    let _chat_stream = app.subscribe(&alice, &chat, 0).await; // stream 2
    assert_eq!(open_streams(&app, &alice).await, 2);

    let refused = open_events(&app.channel, &alice, &[])
        .await
        .err()
        .expect("a third Subscribe is over the cap");
    assert_limited(&refused, "streams limit");
    let refused = app
        .try_subscribe(&alice, &chat, 0)
        .await
        .err()
        .expect("a third SubscribeToChat is over the cap");
    assert_limited(&refused, "streams limit");
    let (_tx, rx) = tokio::sync::mpsc::channel::<ClientFrame>(1);
    let refused = EventsServiceClient::new(app.channel.clone())
        .session(authed(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            &alice.token,
        ))
        .await
        .expect_err("a Session is over the cap too");
    assert_limited(&refused, "streams limit");
    assert_eq!(open_streams(&app, &alice).await, 2, "refusals hold no slot");

    // Bob's streams are his own.
    let _bob_events = open_events(&app.channel, &bob, &[])
        .await
        .expect("another user is not affected");

    // Closing a stream frees its slot (once the server sees it go).
    drop(events);
    let deadline = Instant::now() + WAIT;
    while open_streams(&app, &alice).await != 1 {
        assert!(
            Instant::now() < deadline,
            "the slot of a closed stream was never freed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _again = open_events(&app.channel, &alice, &[])
        .await
        .expect("a new stream fits after one closed");
    assert!(limited(&app, "streams").await - before >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_natively_and_over_grpc_web() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_request_bytes = 8 * 1024).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let big = "😀".repeat(4096); // 16 KiB

    let native = app
        .try_send(&alice, &chat, &big, "")
        .await
        .expect_err("over MAX_REQUEST_BYTES");
    // What grpc-go, grpc-java and grpc core answer (tonic's own would be
    // OUT_OF_RANGE), naming the limit.
    assert_eq!(native.code(), Code::ResourceExhausted, "{native:?}");
    assert!(
        native.message().contains("8192 bytes"),
        "names the limit: {native:?}"
    );

    let web = GrpcWeb::new(&app);
    let send = |content: &str| SendMessageRequest {
        chat_id: chat.clone(),
        content: content.into(),
        idempotency_key: String::new(),
        ..Default::default()
    };
    let path = format!("{MESSAGES}/SendMessage");
    let refused = web
        .call(&path, &send(&big), Some(&alice.token), Mode::Binary)
        .await;
    assert_eq!(
        refused.status,
        Code::ResourceExhausted as i32,
        "{refused:?}"
    );
    assert_eq!(
        app.all_messages(&bob, &chat).await.total,
        0,
        "nothing stored"
    );

    let fits = "x".repeat(4000);
    app.try_send(&alice, &chat, &fits, "")
        .await
        .expect("native, under the cap");
    let ok = web
        .call(&path, &send(&fits), Some(&alice.token), Mode::Binary)
        .await;
    assert_eq!(ok.status, 0, "gRPC-Web, under the cap: {ok:?}");
}

/// Writes `request` on a fresh connection and reads until the server closes
/// it or `bound` passes; returns what was read and when the read ended.
async fn exchange(addr: SocketAddr, request: &[u8], bound: Duration) -> (String, Duration) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within {bound:?}; read {:?}",
        String::from_utf8_lossy(&out)
    );
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_header_bytes = 16 * 1024).await;
    let alice = app.register("alice").await;
    let padded = |size: usize| {
        let mut req = authed(GetMeRequest {}, &alice.token);
        req.metadata_mut()
            .insert("x-padding", "p".repeat(size).parse().unwrap());
        req
    };
    let mut users = app.users.clone();
    users
        .get_me(padded(1024))
        .await
        .expect("HTTP/2, headers under the limit");
    let refused = users
        .get_me(padded(32 * 1024))
        .await
        .expect_err("HTTP/2, headers over the limit");
    assert_ne!(refused.code(), Code::Ok);
    // The connection is still good for the next call.
    let mut users = UsersServiceClient::new(connect(app.addr).await);
    users.get_me(padded(1024)).await.expect("still served");

    let get = |padding: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Padding: {}\r\n\r\n",
            "p".repeat(padding)
        )
    };
    let (ok, _) = exchange(app.addr, get(1024).as_bytes(), WAIT).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok:?}");
    let (refused, _) = exchange(app.addr, get(32 * 1024).as_bytes(), WAIT).await;
    assert!(refused.starts_with("HTTP/1.1 431"), "{refused:?}");
}

const TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_silent_http1_connections_are_closed() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.header_read_timeout = TIMEOUT).await;
    let bound = TIMEOUT * 10;
    let before = limited(&app, "silent_connection").await;

    // Headers that never finish.
    let (_, after) = exchange(app.addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\n", bound).await;
    assert!(after >= TIMEOUT - Duration::from_millis(50), "{after:?}");

    // Nothing at all.
    let (read, after) = exchange(app.addr, b"", bound).await;
    assert!(read.is_empty(), "{read:?}");
    assert!(after >= TIMEOUT - Duration::from_millis(50), "{after:?}");
    assert!(limited(&app, "silent_connection").await - before >= 1.0);

    // A complete request in time is served; the keep-alive connection is
    // then closed once idle for the timeout.
    let (read, after) =
        exchange(app.addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", bound).await;
    assert!(read.starts_with("HTTP/1.1 200"), "{read:?}");
    assert!(read.ends_with("ok"), "{read:?}");
    assert!(after >= TIMEOUT - Duration::from_millis(50), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_never_arrives_ends_the_call_and_the_connection() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.request_body_timeout = TIMEOUT).await;
    let alice = app.register("alice").await;
    let bound = TIMEOUT * 10;
    let before = limited(&app, "body_timeout").await;
    // gRPC-Web over HTTP/1.1: complete headers, 3 of the 20 bytes promised.
    let head = format!(
        "POST {USERS}/GetMe HTTP/1.1\r\nHost: t\r\nContent-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\nAuthorization: Bearer {}\r\nContent-Length: 20\r\n\r\n\0\0\0",
        alice.token
    );
    let (read, after) = exchange(app.addr, head.as_bytes(), bound).await;
    assert!(after >= TIMEOUT - Duration::from_millis(50), "{after:?}");
    assert!(read.starts_with("HTTP/1.1 200"), "{read:?}");
    assert!(
        read.contains("grpc-status: 4"),
        "DEADLINE_EXCEEDED: {read:?}"
    );
    assert!(read.contains("did%20not%20arrive"), "{read:?}");

    // Native gRPC over HTTP/2: a body that never ends.
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(bound)
        .build()
        .unwrap();
    let never = futures::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    let resp = http
        .post(format!("http://{}{USERS}/GetMe", app.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", alice.token))
        .body(reqwest::Body::wrap_stream(never))
        .send()
        .await
        .expect("an answer, not a hang");
    let status = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(status, "4", "{:?}", resp.headers());
    assert!(limited(&app, "body_timeout").await - before >= 2.0);

    // A body that arrives in time is served as ever.
    UsersServiceClient::new(app.channel.clone())
        .get_me(authed(GetMeRequest {}, &alice.token))
        .await
        .expect("a prompt call");
}

/// A connection from `local` that asks for /healthz; with `keep`, it
/// stays open after the answer. Whether the answer was a 200.
async fn healthz_from(local: IpAddr, addr: SocketAddr, keep: bool) -> (bool, TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let connection = if keep { "keep-alive" } else { "close" };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n");
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return (false, tcp);
    }
    // The whole answer is small: read until it is in, or the server closes.
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(WAIT, async {
        while !out.ends_with(b"ok") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (out.starts_with(b"HTTP/1.1 200"), tcp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_client_address_are_capped() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_connections_per_ip = 3).await;
    let before = limited(&app, "connections").await;
    // 127.0.0.3 (the harness's channel is on 127.0.0.1) fills its three.
    let client: IpAddr = [127, 0, 0, 3].into();
    let mut held = Vec::new();
    for _ in 0..3 {
        let (served, tcp) = healthz_from(client, app.addr, true).await;
        assert!(served, "a connection under the cap is served");
        held.push(tcp);
    }
    let (served, _) = healthz_from(client, app.addr, false).await;
    assert!(!served, "a fourth connection is closed");
    assert!(limited(&app, "connections").await - before >= 1.0);
    // Another address has its own allowance.
    assert!(healthz_from([127, 0, 0, 4].into(), app.addr, false).await.0);
    // Closing one frees its place (the server notices the close itself:
    // polled, with WAIT as the bound).
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    while !healthz_from(client, app.addr, false).await.0 {
        assert!(
            Instant::now() < deadline,
            "the freed place was not given back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_stream_outlives_the_header_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.header_read_timeout = TIMEOUT).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat = app.direct_chat(&alice, &bob).await;
    let mut resp = GrpcWeb::new(&app)
        .request(
            &format!("{MESSAGES}/SubscribeToChat"),
            &SubscribeToChatRequest {
                chat_id: chat.clone(),
                after_seq: 0,
            },
            Some(&bob.token),
            Mode::Binary,
        )
        .send()
        .await
        .expect("SubscribeToChat over gRPC-Web");
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut read_frames = async |resp: &mut reqwest::Response, n: usize| {
        while frames.len() < n {
            let chunk = tokio::time::timeout(WAIT, resp.chunk())
                .await
                .expect("a frame within the bound")
                .expect("body chunk")
                .expect("the stream stays open");
            buf.extend_from_slice(&chunk);
            for (flag, payload) in take_frames(&mut buf) {
                assert_eq!(flag & 0x80, 0, "ended: {:?}", parse_trailers(&payload));
                frames.push(tidings::proto::ChatMessage::decode(payload).unwrap());
            }
        }
        frames.clone()
    };
    read_frames(&mut resp, 1).await; // CONNECTED

    // Quiet for three header timeouts: a response in progress is not idle.
    tokio::time::sleep(TIMEOUT * 3).await;
    let sent = app.send(&alice, &chat, "still there?").await;
    let got = read_frames(&mut resp, 2).await;
    assert_eq!(got[1].message_id, sent.id);
}
