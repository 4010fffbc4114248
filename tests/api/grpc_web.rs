//! The browser's view: gRPC-Web over HTTP/1.1 (binary and text), the web
//! client's pages, /healthz and CORS — all on the gRPC port.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use prost::Message as _;
use reqwest::header::CONTENT_TYPE;
use tidings::proto::{
    ChatMessage, CreateChatRequest, CreateChatResponse, CreateUserRequest, CreateUserResponse,
    GetChatRequest, GetChatResponse, GetMeRequest, GetMeResponse, ListChatsRequest,
    ListChatsResponse, ListMessagesRequest, ListMessagesResponse, LoginRequest, LoginResponse,
    SendMessageRequest, SendMessageResponse, SubscribeToChatRequest, UpdateMessageStatusRequest,
    UpdateMessageStatusResponse,
};

use crate::helpers::{Backend, PASSWORD, TestApp, WAIT, spawn_app, spawn_app_with};

both_backends!(
    http_surface_healthz_and_web_client,
    unary_flow_over_grpc_web_http1,
    errors_over_grpc_web_carry_status_and_field,
    grpc_web_text_mode,
    server_streaming_over_grpc_web_http1,
    cors_preflight_and_exposed_headers,
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Binary,
    Text,
}

impl Mode {
    fn content_type(self) -> &'static str {
        match self {
            Mode::Binary => "application/grpc-web+proto",
            Mode::Text => "application/grpc-web-text+proto",
        }
    }
}

/// A minimal gRPC-Web client over HTTP/1.1, as a browser would speak it.
pub(crate) struct GrpcWeb {
    http: reqwest::Client,
    base: String,
}

/// What came back: the data frames and the final status, from the trailers
/// frame or, for a trailers-only answer, from the headers.
#[derive(Debug)]
pub(crate) struct Reply {
    pub frames: Vec<Bytes>,
    pub status: i32,
    pub message: String,
    /// `grpc-status-details-bin`, decoded (a `google.rpc.Status`).
    pub details: Option<Vec<u8>>,
}

impl Reply {
    pub fn ok<T: prost::Message + Default>(self, what: &str) -> T {
        assert_eq!(
            self.status, 0,
            "{what}: grpc-status {} {:?}",
            self.status, self.message
        );
        assert_eq!(self.frames.len(), 1, "{what}: one message frame");
        T::decode(self.frames[0].clone()).expect("decode response")
    }
}

pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(0);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits complete frames off the front of `buf`: (flag, payload).
pub(crate) fn take_frames(buf: &mut BytesMut) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while buf.len() >= 5 {
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            break;
        }
        let flag = buf[0];
        buf.advance(5);
        out.push((flag, buf.split_to(len).freeze()));
    }
    out
}

pub(crate) fn parse_trailers(block: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(block)
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes grpc-web-text: concatenated base64 segments, each padded.
fn decode_text(body: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::new();
    for quad in clean.chunks(4) {
        out.extend(
            base64::engine::general_purpose::STANDARD
                .decode(quad)
                .expect("grpc-web-text body is base64"),
        );
    }
    out
}

impl GrpcWeb {
    pub fn new(app: &TestApp) -> GrpcWeb {
        GrpcWeb {
            http: reqwest::Client::builder()
                .http1_only()
                .timeout(WAIT)
                .build()
                .expect("reqwest client"),
            base: format!("http://{}", app.addr),
        }
    }

    pub fn request(
        &self,
        path: &str,
        req: &impl prost::Message,
        token: Option<&str>,
        mode: Mode,
    ) -> reqwest::RequestBuilder {
        let body = frame(&req.encode_to_vec());
        let body = match mode {
            Mode::Binary => body,
            Mode::Text => base64::engine::general_purpose::STANDARD
                .encode(body)
                .into_bytes(),
        };
        self.request_body(path, body, token, mode)
    }

    /// A request with exactly `body` (framed and encoded by the caller).
    pub fn request_body(
        &self,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
        mode: Mode,
    ) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, mode.content_type())
            .header("accept", mode.content_type())
            .header("x-grpc-web", "1")
            .header("x-user-agent", "tidings-tests")
            .body(body);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder
    }

    pub async fn call(
        &self,
        path: &str,
        req: &impl prost::Message,
        token: Option<&str>,
        mode: Mode,
    ) -> Reply {
        self.send(path, self.request(path, req, token, mode), mode)
            .await
    }

    /// Sends `request` (from [`GrpcWeb::request_body`]) and reads the reply.
    pub async fn send(&self, path: &str, request: reqwest::RequestBuilder, mode: Mode) -> Reply {
        let resp = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(
            resp.version(),
            reqwest::Version::HTTP_11,
            "{path} over HTTP/1.1"
        );
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::OK,
            "{path}: HTTP status"
        );
        let headers = resp.headers().clone();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let expected = match mode {
            Mode::Binary => "application/grpc-web",
            Mode::Text => "application/grpc-web-text",
        };
        assert!(
            content_type.starts_with(expected)
                && (mode == Mode::Text || !content_type.contains("-text")),
            "{path}: content-type {content_type:?}"
        );
        let body = resp.bytes().await.expect("response body");
        let body = match mode {
            Mode::Binary => body.to_vec(),
            Mode::Text => decode_text(&body),
        };
        let mut buf = BytesMut::from(&body[..]);
        let mut frames = Vec::new();
        let mut trailers = HashMap::new();
        for (flag, payload) in take_frames(&mut buf) {
            if flag & 0x80 != 0 {
                trailers = parse_trailers(&payload);
            } else {
                assert!(trailers.is_empty(), "a data frame after the trailers");
                frames.push(payload);
            }
        }
        assert!(buf.is_empty(), "{path}: trailing partial frame");
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let status = trailers
            .get("grpc-status")
            .cloned()
            .or_else(|| header("grpc-status"))
            .unwrap_or_else(|| panic!("{path}: no grpc-status in trailers or headers"));
        let message = trailers
            .get("grpc-message")
            .cloned()
            .or_else(|| header("grpc-message"))
            .unwrap_or_default();
        let details = trailers
            .get("grpc-status-details-bin")
            .cloned()
            .or_else(|| header("grpc-status-details-bin"))
            .map(|b64| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(b64.trim_end_matches('='))
                    .expect("grpc-status-details-bin is base64")
            });
        Reply {
            frames,
            status: status.parse().expect("numeric grpc-status"),
            message: percent_decode(&message),
            details,
        }
    }
}

pub(crate) const USERS: &str = "/messaging.UsersService";
pub(crate) const CHATS: &str = "/messaging.ChatsService";
pub(crate) const MESSAGES: &str = "/messaging.MessagesService";

async fn http_surface_healthz_and_web_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = reqwest::Client::builder()
        .http1_only()
        .timeout(WAIT)
        .build()
        .unwrap();
    let base = format!("http://{}", app.addr);

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_11);
    assert_eq!(health.status(), 200, "/healthz");

    for path in ["/", "/index.html", "/chats/some-chat-id", "/no/such/page"] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path} serves the web client");
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/html"),
            "GET {path}: {content_type}"
        );
        // A strict CSP (the page's own files, no inline script, no
        // framing) and the other browser hardening headers.
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "GET {path}: CSP {csp:?}");
        }
        assert!(!csp.contains("unsafe"), "GET {path}: CSP {csp:?}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "no-referrer");
        let body = resp.text().await.unwrap().to_ascii_lowercase();
        assert!(body.contains("<html"), "GET {path} is the HTML page");
    }
    // A missing file is a real 404, not the page.
    let missing = http.get(format!("{base}/missing.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404, "GET /missing.js");
}

async fn unary_flow_over_grpc_web_http1(backend: Backend) {
    let app = spawn_app(backend).await;
    let web = GrpcWeb::new(&app);
    let b = Mode::Binary;

    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let created: CreateUserResponse = web
            .call(
                &format!("{USERS}/CreateUser"),
                &CreateUserRequest {
                    username: name.into(),
                    email: format!("{name}@example.com"),
                    password: PASSWORD.into(),
                },
                None,
                b,
            )
            .await
            .ok("CreateUser");
        assert_eq!(created.user.as_ref().unwrap().username, name);
        tokens.push((created.user.unwrap().id, created.token));
    }
    let (bob_id, bob_token) = tokens.pop().unwrap();
    let (alice_id, _) = tokens.pop().unwrap();

    let login: LoginResponse = web
        .call(
            &format!("{USERS}/Login"),
            &LoginRequest {
                email: "alice@example.com".into(),
                password: PASSWORD.into(),
            },
            None,
            b,
        )
        .await
        .ok("Login");
    assert_eq!(login.user.unwrap().id, alice_id);
    let alice = login.token;
    let me: GetMeResponse = web
        .call(&format!("{USERS}/GetMe"), &GetMeRequest {}, Some(&alice), b)
        .await
        .ok("GetMe");
    assert_eq!(me.user.unwrap().id, alice_id);

    let chat: CreateChatResponse = web
        .call(
            &format!("{CHATS}/CreateChat"),
            &CreateChatRequest {
                email: "bob@example.com".into(),
                ..Default::default()
            },
            Some(&alice),
            b,
        )
        .await
        .ok("CreateChat");
    let chat_id = chat.chat_id;

    let send = SendMessageRequest {
        chat_id: chat_id.clone(),
        content: "hello over HTTP/1.1 ✓".into(),
        idempotency_key: "web-key".into(),
        ..Default::default()
    };
    let first: SendMessageResponse = web
        .call(&format!("{MESSAGES}/SendMessage"), &send, Some(&alice), b)
        .await
        .ok("SendMessage");
    let first = first.message.unwrap();
    assert_eq!((first.seq, first.status.as_str()), (1, "SENT"));
    let retry: SendMessageResponse = web
        .call(&format!("{MESSAGES}/SendMessage"), &send, Some(&alice), b)
        .await
        .ok("SendMessage retry");
    assert_eq!(
        retry.message.unwrap().id,
        first.id,
        "the retry is the same message"
    );

    let chats: ListChatsResponse = web
        .call(
            &format!("{CHATS}/ListChats"),
            &ListChatsRequest::default(),
            Some(&bob_token),
            b,
        )
        .await
        .ok("ListChats");
    assert_eq!(chats.total, 1);
    assert_eq!(chats.chats[0].id, chat_id);
    assert_eq!(chats.chats[0].last_message.as_ref().unwrap().id, first.id);

    let list = ListMessagesRequest {
        chat_id: chat_id.clone(),
        ..Default::default()
    };
    let listed: ListMessagesResponse = web
        .call(
            &format!("{MESSAGES}/ListMessages"),
            &list,
            Some(&bob_token),
            b,
        )
        .await
        .ok("ListMessages");
    assert_eq!(listed.total, 1);
    assert_eq!(listed.messages[0].content, "hello over HTTP/1.1 ✓");
    assert_eq!(listed.messages[0].user_id, alice_id);

    let updated: UpdateMessageStatusResponse = web
        .call(
            &format!("{MESSAGES}/UpdateMessageStatus"),
            &UpdateMessageStatusRequest {
                message_id: first.id.clone(),
                status: "read".into(),
            },
            Some(&bob_token),
            b,
        )
        .await
        .ok("UpdateMessageStatus");
    assert_eq!(
        (updated.message_id.as_str(), updated.status.as_str()),
        (first.id.as_str(), "READ")
    );
    let listed: ListMessagesResponse = web
        .call(&format!("{MESSAGES}/ListMessages"), &list, Some(&alice), b)
        .await
        .ok("ListMessages");
    assert_eq!(listed.messages[0].status, "READ");

    let chat: GetChatResponse = web
        .call(
            &format!("{CHATS}/GetChat"),
            &GetChatRequest { chat_id },
            Some(&alice),
            b,
        )
        .await
        .ok("GetChat");
    let members: Vec<_> = chat
        .chat
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(members.contains(&bob_id) && members.contains(&alice_id));
}

async fn errors_over_grpc_web_carry_status_and_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let web = GrpcWeb::new(&app);
    let alice = app.register("alice").await;

    let bad_user = web
        .call(
            &format!("{USERS}/CreateUser"),
            &CreateUserRequest {
                username: "x".into(),
                email: "x@example.com".into(),
                password: PASSWORD.into(),
            },
            None,
            Mode::Binary,
        )
        .await;
    assert_eq!(bad_user.status, 3, "INVALID_ARGUMENT: {bad_user:?}");
    assert!(bad_user.message.contains("username"), "{bad_user:?}");
    assert!(bad_user.frames.is_empty());

    let wrong_password = web
        .call(
            &format!("{USERS}/Login"),
            &LoginRequest {
                email: "alice@example.com".into(),
                password: "wrong password".into(),
            },
            None,
            Mode::Binary,
        )
        .await;
    assert_eq!(
        wrong_password.status, 16,
        "UNAUTHENTICATED: {wrong_password:?}"
    );

    let no_token = web
        .call(
            &format!("{CHATS}/ListChats"),
            &ListChatsRequest::default(),
            None,
            Mode::Binary,
        )
        .await;
    assert_eq!(no_token.status, 16, "UNAUTHENTICATED: {no_token:?}");

    let unknown = web
        .call(
            &format!("{CHATS}/GetChat"),
            &GetChatRequest {
                chat_id: uuid::Uuid::new_v4().to_string(),
            },
            Some(&alice.token),
            Mode::Binary,
        )
        .await;
    assert_eq!(unknown.status, 5, "NOT_FOUND: {unknown:?}");

    let no_such_method = web
        .call(
            &format!("{USERS}/NoSuchMethod"),
            &GetMeRequest {},
            None,
            Mode::Binary,
        )
        .await;
    assert_eq!(
        no_such_method.status, 12,
        "UNIMPLEMENTED: {no_such_method:?}"
    );
}

async fn grpc_web_text_mode(backend: Backend) {
    let app = spawn_app(backend).await;
    let web = GrpcWeb::new(&app);
    let created: CreateUserResponse = web
        .call(
            &format!("{USERS}/CreateUser"),
            &CreateUserRequest {
                username: "texty".into(),
                email: "Texty@Example.com".into(),
                password: PASSWORD.into(),
            },
            None,
            Mode::Text,
        )
        .await
        .ok("CreateUser (text)");
    let user = created.user.unwrap();
    assert_eq!(user.email, "texty@example.com");
    let me: GetMeResponse = web
        .call(
            &format!("{USERS}/GetMe"),
            &GetMeRequest {},
            Some(&created.token),
            Mode::Text,
        )
        .await
        .ok("GetMe (text)");
    assert_eq!(me.user.unwrap().id, user.id);
    let bad = web
        .call(
            &format!("{USERS}/Login"),
            &LoginRequest {
                email: "texty@example.com".into(),
                password: String::new(),
            },
            None,
            Mode::Text,
        )
        .await;
    assert_eq!(bad.status, 3, "{bad:?}");
    assert!(bad.message.contains("password"), "{bad:?}");
}

async fn server_streaming_over_grpc_web_http1(backend: Backend) {
    let app = spawn_app(backend).await;
    let web = GrpcWeb::new(&app);
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let chat_id = app.direct_chat(&alice, &bob).await;

    let mut resp = web
        .request(
            &format!("{MESSAGES}/SubscribeToChat"),
            &SubscribeToChatRequest {
                chat_id: chat_id.clone(),
                after_seq: 0,
            },
            Some(&bob.token),
            Mode::Binary,
        )
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .expect("SubscribeToChat over gRPC-Web");
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);

    // Reads the body chunk by chunk until `n` more message frames arrived.
    let mut buf = BytesMut::new();
    let mut next_frames = async |resp: &mut reqwest::Response, n: usize| {
        let mut out = Vec::new();
        while out.len() < n {
            for (flag, payload) in take_frames(&mut buf) {
                assert_eq!(
                    flag & 0x80,
                    0,
                    "stream ended: {:?}",
                    parse_trailers(&payload)
                );
                out.push(ChatMessage::decode(payload).expect("ChatMessage frame"));
            }
            if out.len() >= n {
                break;
            }
            let chunk = tokio::time::timeout(WAIT, resp.chunk())
                .await
                .expect("a frame within the bound")
                .expect("body chunk")
                .expect("the stream stays open");
            buf.extend_from_slice(&chunk);
        }
        out
    };

    let connected = next_frames(&mut resp, 1).await;
    assert_eq!(connected[0].message_id, "connection");
    assert_eq!(connected[0].status, "CONNECTED");
    app.wait_subscribers("1", |n| *n == 1).await;

    let m1 = app
        .send(&alice, &chat_id, "streamed to the browser 🌍")
        .await;
    let m2 = app.send(&alice, &chat_id, "and another").await;
    let frames = next_frames(&mut resp, 2).await;
    assert_eq!(frames[0].message_id, m1.id);
    assert_eq!(frames[0].content, "streamed to the browser 🌍");
    assert_eq!(frames[0].username, "alice");
    assert_eq!(frames[0].seq, 1);
    assert_eq!(frames[1].message_id, m2.id);

    // The browser going away (the HTTP/1.1 connection closes) releases the
    // subscription.
    drop(resp);
    drop(web);
    app.wait_subscribers("0 after the browser left", |n| *n == 0)
        .await;
}

async fn cors_preflight_and_exposed_headers(backend: Backend) {
    let origin = "http://chat.example.test";
    let app = spawn_app_with(backend, |c| c.cors_origins = vec![origin.into()]).await;
    let web = GrpcWeb::new(&app);
    let url = format!("http://{}{USERS}/Login", app.addr);

    let preflight = web
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(
        preflight.status().is_success(),
        "preflight: {}",
        preflight.status()
    );
    let allow_origin = preflight
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        allow_origin == origin || allow_origin == "*",
        "allow-origin {allow_origin:?}"
    );
    let allow_headers = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["content-type", "x-grpc-web", "authorization"] {
        assert!(
            allow_headers.contains(h) || allow_headers == "*",
            "preflight allows {h}: {allow_headers:?}"
        );
    }

    // The real call exposes grpc-status / grpc-message to the page script.
    let resp = web
        .request(
            &format!("{USERS}/Login"),
            &LoginRequest {
                email: "nobody@example.com".into(),
                password: PASSWORD.into(),
            },
            None,
            Mode::Binary,
        )
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    let expose = resp
        .headers()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["grpc-status", "grpc-message"] {
        assert!(
            expose.contains(h) || expose == "*",
            "exposes {h}: {expose:?}"
        );
    }

    // Another origin is not let in.
    let other = web
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://evil.example.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    let allowed = other
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        allowed != "http://evil.example.test" && allowed != "*",
        "a foreign origin is not allowed: {allowed:?}"
    );
}
