//! Attachments: uploads over HTTP and gRPC, who may download, the headers a
//! download carries, limits, what a broken upload leaves (nothing), the
//! sweep, and a deleted message's files.
//!
//! Every case runs three times: on SQLite with the data dir's files
//! (`::sqlite`), on PostgreSQL + Redis with the data dir's files
//! (`::postgres`), and on SQLite with an S3 bucket (`::s3`: moto's S3 server,
//! which scripts/test.sh starts and names in TEST_S3_ENDPOINT; it speaks the
//! S3 HTTP API, so this is the code path a real bucket takes).

use std::time::{Duration, Instant};

use tidings::config::Config;
use tidings::proto::files_service_client::FilesServiceClient;
use tidings::proto::{
    DeleteMessageRequest, GetFileUrlsRequest, SendMessageRequest, UploadFileRequest,
};
use tokio::io::AsyncWriteExt as _;
use tonic::Code;

use crate::helpers::{Backend, TestApp, TestUser, WAIT, authed, expect_code, spawn_app_with};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Local(Backend),
    S3,
}

/// moto's S3 endpoint, or None (with a notice) when it is not running. On
/// CI a missing endpoint is an error, not a skip.
fn s3_endpoint() -> Option<String> {
    match std::env::var("TEST_S3_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(e) => Some(e),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("TEST_S3_ENDPOINT is not set on CI (scripts/test.sh starts moto's S3 server)")
        }
        None => {
            eprintln!(
                "TEST_S3_ENDPOINT not set: the S3 variant is skipped (scripts/test.sh starts one)"
            );
            None
        }
    }
}

const BUCKET: &str = "tidings-test";

/// Points the config at the bucket (a prefix of its own per test).
fn use_s3(config: &mut Config, endpoint: &str) {
    config.file_store_url = Some(format!("s3://{BUCKET}/{}", uuid::Uuid::new_v4().simple()));
    config.file_store_options = [
        ("aws_endpoint", endpoint),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
        ("aws_allow_http", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
}

/// Creates the bucket (moto keeps it in memory; creating it again is fine).
async fn ensure_bucket(endpoint: &str) {
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/{BUCKET}"))
        .send()
        .await
        .expect("moto answers");
    assert!(
        r.status().is_success(),
        "creating the bucket: {}",
        r.status()
    );
}

async fn app(store: Store, configure: impl FnOnce(&mut Config)) -> TestApp {
    match store {
        Store::Local(backend) => spawn_app_with(backend, configure).await,
        Store::S3 => {
            let endpoint = s3_endpoint().expect("S3 variant without an endpoint");
            ensure_bucket(&endpoint).await;
            spawn_app_with(Backend::Sqlite, move |c| {
                use_s3(c, &endpoint);
                configure(c);
            })
            .await
        }
    }
}

macro_rules! every_store {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use super::Store;
            use crate::helpers::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Store::Local(Backend::Sqlite)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if crate::helpers::postgres_services().is_none() {
                    return;
                }
                super::$name(Store::Local(Backend::Postgres)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                if super::s3_endpoint().is_none() {
                    return;
                }
                super::$name(Store::S3).await;
            }
        }
    )+};
}

every_store!(
    a_file_goes_up_and_comes_down_to_members_only,
    ranges_and_validators,
    html_and_svg_are_never_shown_inline,
    a_picture_is_measured_previewed_and_stripped,
    too_large_is_refused_and_leaves_nothing,
    a_cut_off_upload_leaves_nothing,
    attaching_follows_the_rules,
    a_deleted_message_takes_its_files_along,
    unattached_uploads_are_swept,
    signed_urls_open_without_a_header,
    native_clients_upload_by_client_streaming,
);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("http client")
}

fn url(app: &TestApp, path: &str) -> String {
    format!("http://{}{path}", app.addr)
}

/// POST /v1/files: the answer's status and JSON.
async fn try_upload(
    app: &TestApp,
    user: &TestUser,
    name: &str,
    bytes: Vec<u8>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let r = http()
        .post(url(app, "/v1/files"))
        .query(&[("name", name)])
        .bearer_auth(&user.token)
        .body(bytes)
        .send()
        .await
        .expect("POST /v1/files");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Uploads and returns the file's JSON (`{id, name, ...}`).
async fn upload(app: &TestApp, user: &TestUser, name: &str, bytes: Vec<u8>) -> serde_json::Value {
    let (status, body) = try_upload(app, user, name, bytes).await;
    assert_eq!(status, 201, "upload {name}: {body}");
    body["file"].clone()
}

fn id_of(file: &serde_json::Value) -> String {
    file["id"].as_str().expect("file id").to_owned()
}

async fn send_files(
    app: &TestApp,
    user: &TestUser,
    chat_id: &str,
    content: &str,
    ids: &[String],
) -> Result<tidings::proto::Message, tonic::Status> {
    app.messages
        .clone()
        .send_message(authed(
            SendMessageRequest {
                chat_id: chat_id.into(),
                content: content.into(),
                attachment_ids: ids.to_vec(),
                ..Default::default()
            },
            &user.token,
        ))
        .await
        .map(|r| r.into_inner().message.expect("message"))
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = http().get(url(app, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("GET")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Deterministic bytes that are no known file type.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 | 0x80
        })
        .collect()
}

async fn a_file_goes_up_and_comes_down_to_members_only(store: Store) {
    let app = app(store, |_| {}).await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let chat = app.direct_chat(&alice, &bob).await;
    let bytes = noise(300_000);
    let file = upload(&app, &alice, "../secret/report.bin", bytes.clone()).await;
    assert_eq!(file["name"], "report.bin", "no directory part is kept");
    assert_eq!(file["size"], 300_000);
    assert_eq!(file["content_type"], "application/octet-stream");
    let id = id_of(&file);

    // Before it is in a message only its uploader may fetch it.
    assert_eq!(
        get(&app, Some(&bob.token), &format!("/v1/files/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&app, Some(&alice.token), &format!("/v1/files/{id}"))
            .await
            .status(),
        200
    );

    let sent = send_files(&app, &alice, &chat, "", std::slice::from_ref(&id))
        .await
        .expect("send");
    assert_eq!(sent.content, "", "a message of files only");
    assert_eq!(sent.attachments.len(), 1);
    // Bob sees it in the history, whole.
    let listed = app.all_messages(&bob, &chat).await;
    let a = &listed.messages[0].attachments[0];
    assert_eq!(
        (a.id.as_str(), a.name.as_str(), a.size),
        (id.as_str(), "report.bin", 300_000)
    );

    let r = get(&app, Some(&bob.token), &format!("/v1/files/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "300000");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert!(
        header(&r, "cache-control").starts_with("private"),
        "{}",
        header(&r, "cache-control")
    );
    assert!(header(&r, "content-disposition").starts_with("attachment;"));
    assert!(header(&r, "content-disposition").contains("report.bin"));
    assert_eq!(
        r.bytes().await.expect("body").to_vec(),
        bytes,
        "the same bytes"
    );

    // Outsiders get nothing: not the bytes, not a URL, not even a hint.
    assert_eq!(
        get(&app, Some(&carol.token), &format!("/v1/files/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        get(
            &app,
            Some(&carol.token),
            &format!("/v1/files/{}", uuid::Uuid::now_v7())
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        get(&app, None, &format!("/v1/files/{id}")).await.status(),
        401
    );
    let urls = FilesServiceClient::new(app.channel.clone())
        .get_file_urls(authed(
            GetFileUrlsRequest {
                file_ids: vec![id.clone()],
            },
            &carol.token,
        ))
        .await;
    expect_code(urls, Code::NotFound, "file");
}

async fn ranges_and_validators(store: Store) {
    let app = app(store, |_| {}).await;
    let alice = app.register("alice").await;
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 | 0x80).collect();
    let id = id_of(&upload(&app, &alice, "data.bin", bytes.clone()).await);
    let path = format!("/v1/files/{id}");
    let range = |spec: &str| {
        http()
            .get(url(&app, &path))
            .bearer_auth(&alice.token)
            .header("range", spec.to_owned())
            .send()
    };

    let r = range("bytes=1000-1999").await.expect("GET");
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), "bytes 1000-1999/100000");
    assert_eq!(header(&r, "content-length"), "1000");
    assert_eq!(
        r.bytes().await.expect("body").to_vec(),
        bytes[1000..2000].to_vec()
    );

    let r = range("bytes=-10").await.expect("GET");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.expect("body").to_vec(),
        bytes[99_990..].to_vec()
    );

    let r = range("bytes=99999-").await.expect("GET");
    assert_eq!(
        r.bytes().await.expect("body").to_vec(),
        bytes[99_999..].to_vec()
    );

    let r = range("bytes=200000-").await.expect("GET");
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), "bytes */100000");

    let full = get(&app, Some(&alice.token), &path).await;
    let etag = header(&full, "etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.len() > 10,
        "a strong ETag: {etag}"
    );
    let r = http()
        .get(url(&app, &path))
        .bearer_auth(&alice.token)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 304);
    // A range for another version of the file: the whole (current) file.
    let r = http()
        .get(url(&app, &path))
        .bearer_auth(&alice.token)
        .header("range", "bytes=0-9")
        .header("if-range", "\"something-else\"")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "100000");
}

async fn html_and_svg_are_never_shown_inline(store: Store) {
    let app = app(store, |_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let chat = app.direct_chat(&alice, &bob).await;
    let html = upload(
        &app,
        &alice,
        "page.html",
        b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>".to_vec(),
    )
    .await;
    let svg = upload(
        &app,
        &alice,
        "logo.png", // the name lies; the bytes tell
        br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#
            .to_vec(),
    )
    .await;
    assert_eq!(html["content_type"], "text/html");
    assert_eq!(
        svg["content_type"], "image/svg+xml",
        "sniffed, not taken from the name"
    );
    assert_eq!(svg["width"], 0, "no preview for SVG");
    let ids = vec![id_of(&html), id_of(&svg)];
    send_files(&app, &alice, &chat, "look", &ids)
        .await
        .expect("send");
    for id in &ids {
        let r = get(&app, Some(&bob.token), &format!("/v1/files/{id}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert!(
            header(&r, "content-disposition").starts_with("attachment;"),
            "{id}: {}",
            header(&r, "content-disposition")
        );
        assert!(header(&r, "content-security-policy").contains("sandbox"));
    }
}

/// A JPEG of `w`×`h` with an EXIF segment (a GPS-like payload in it).
fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    use img_parts::ImageEXIF as _;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encode jpeg");
    let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(out.into_inner().into()).expect("parse jpeg");
    // A little-endian TIFF header with one IFD entry, and a marker string
    // standing in for coordinates.
    let mut exif = b"II*\0\x08\0\0\0\x00\x00".to_vec();
    exif.extend_from_slice(b"GPS 52.5200N 13.4050E");
    jpeg.set_exif(Some(exif.into()));
    jpeg.encoder().bytes().to_vec()
}

async fn a_picture_is_measured_previewed_and_stripped(store: Store) {
    let app = app(store, |_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let chat = app.direct_chat(&alice, &bob).await;
    let original = jpeg_with_exif(640, 400);
    assert!(
        original.windows(6).any(|w| w == b"Exif\0\0"),
        "the upload carries EXIF"
    );
    let file = upload(&app, &alice, "holiday.jpg", original).await;
    assert_eq!(file["content_type"], "image/jpeg");
    assert_eq!(
        (file["width"].as_i64(), file["height"].as_i64()),
        (Some(640), Some(400))
    );
    assert_eq!(file["has_thumbnail"], true);
    let id = id_of(&file);
    send_files(&app, &alice, &chat, "", std::slice::from_ref(&id))
        .await
        .expect("send");

    let r = get(&app, Some(&bob.token), &format!("/v1/files/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/jpeg");
    assert!(
        header(&r, "content-disposition").starts_with("inline;"),
        "a safe image shows inline"
    );
    let served = r.bytes().await.expect("body");
    assert!(
        !served.windows(3).any(|w| w == b"GPS"),
        "no location in what is served"
    );
    assert!(
        !served.windows(6).any(|w| w == b"Exif\0\0"),
        "no EXIF in what is served"
    );
    let decoded = image::load_from_memory(&served).expect("still a picture");
    assert_eq!((decoded.width(), decoded.height()), (640, 400));
    assert_eq!(
        file["size"].as_u64(),
        Some(served.len() as u64),
        "size is of the bytes served"
    );

    let t = get(&app, Some(&bob.token), &format!("/v1/files/{id}/thumbnail")).await;
    assert_eq!(t.status(), 200);
    let thumb = image::load_from_memory(&t.bytes().await.expect("thumbnail")).expect("decodes");
    assert_eq!(
        (thumb.width(), thumb.height()),
        (320, 200),
        "fits 320 px, keeps the aspect"
    );
}

async fn too_large_is_refused_and_leaves_nothing(store: Store) {
    let app = app(store, |_| {}).await;
    let alice = app.register("alice").await;
    let limit = app.config.max_file_bytes as usize;
    assert_eq!(limit, 25 * 1024 * 1024, "the default limit");

    // Announced by Content-Length: refused before the body is read (the
    // answer comes though not a byte of the body was sent).
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/files?name=big.bin HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
        alice.token,
        30 * 1024 * 1024
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut tcp, &mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too large"), "{answer}");
    drop(tcp);

    // Streamed without a length: refused once the limit is passed.
    let chunks = futures::stream::iter(
        (0..30).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0x81u8; 1024 * 1024]))),
    );
    let r = http()
        .post(url(&app, "/v1/files"))
        .query(&[("name", "big.bin")])
        .bearer_auth(&alice.token)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    // The server may answer and close while the client still sends.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    assert_eq!(
        app.state.store.file_count().await.expect("count"),
        0,
        "no row"
    );
    assert_spool_empty(&app).await;
    assert_eq!(
        app.state.files.blobs().count("files/").await.expect("list"),
        0,
        "no object"
    );
}

/// The upload spool holds nothing (waits for the server to finish with a
/// request whose client is gone).
async fn assert_spool_empty(app: &TestApp) {
    let spool = app.config.data_dir.join("uploads");
    let deadline = Instant::now() + WAIT;
    loop {
        let left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} spooled upload(s) left behind"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_cut_off_upload_leaves_nothing(store: Store) {
    let app = app(store, |_| {}).await;
    let alice = app.register("alice").await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/files?name=half.bin HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-length: 4000000\r\n\r\n",
        alice.token
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(&vec![0x80u8; 1_000_000])
        .await
        .expect("part of the body");
    // The server is spooling it now.
    let spool = app.config.data_dir.join("uploads");
    let deadline = Instant::now() + WAIT;
    while std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upload never started spooling"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(tcp);
    assert_spool_empty(&app).await;
    assert_eq!(
        app.state.store.file_count().await.expect("count"),
        0,
        "no row"
    );
    assert_eq!(
        app.state.files.blobs().count("files/").await.expect("list"),
        0,
        "no object"
    );
    // And the server is fine.
    upload(&app, &alice, "whole.bin", noise(10)).await;
}

async fn attaching_follows_the_rules(store: Store) {
    let app = app(store, |_| {}).await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let chat = app.direct_chat(&alice, &bob).await;
    let bobs = id_of(&upload(&app, &bob, "b.txt", b"bob's".to_vec()).await);
    // Someone else's file.
    let r = send_files(&app, &alice, &chat, "x", std::slice::from_ref(&bobs)).await;
    expect_code(r, Code::NotFound, "file");
    // A chat the uploader is not in.
    let carols_chat = app.direct_chat(&carol, &bob).await;
    let mine = id_of(&upload(&app, &alice, "a.txt", b"alice's".to_vec()).await);
    let r = send_files(&app, &alice, &carols_chat, "x", std::slice::from_ref(&mine)).await;
    expect_code(r, Code::NotFound, "chat");
    // Too many; twice the same; nothing at all.
    let eleven: Vec<String> = (0..11).map(|_| mine.clone()).collect();
    expect_code(
        send_files(&app, &alice, &chat, "x", &eleven).await,
        Code::InvalidArgument,
        "attachment_ids",
    );
    let twice = vec![mine.clone(), mine.clone()];
    expect_code(
        send_files(&app, &alice, &chat, "x", &twice).await,
        Code::InvalidArgument,
        "attachment_ids",
    );
    expect_code(
        send_files(&app, &alice, &chat, "", &[]).await,
        Code::InvalidArgument,
        "content",
    );
    expect_code(
        send_files(&app, &alice, &chat, "x", &["not-an-id".into()]).await,
        Code::NotFound,
        "file",
    );
    // Nothing of that stored a message or took the file.
    assert!(app.all_messages(&alice, &chat).await.messages.is_empty());

    // Retried with its key: the same message, not an error about the file
    // being taken.
    let req = |key: &str| SendMessageRequest {
        chat_id: chat.clone(),
        content: "with a file".into(),
        idempotency_key: key.into(),
        attachment_ids: vec![mine.clone()],
        ..Default::default()
    };
    let mut messages = app.messages.clone();
    let first = messages
        .send_message(authed(req("k-1"), &alice.token))
        .await
        .expect("send")
        .into_inner();
    let again = messages
        .send_message(authed(req("k-1"), &alice.token))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(
        first.message.as_ref().map(|m| &m.id),
        again.message.as_ref().map(|m| &m.id)
    );
    // A second message may not take a file that is in one already.
    let r = messages
        .send_message(authed(req("k-2"), &alice.token))
        .await;
    expect_code(r, Code::NotFound, "file");
    assert_eq!(app.all_messages(&alice, &chat).await.messages.len(), 1);
}

async fn a_deleted_message_takes_its_files_along(store: Store) {
    let app = app(store, |_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let chat = app.direct_chat(&alice, &bob).await;
    let kept = id_of(&upload(&app, &alice, "kept.txt", b"kept".to_vec()).await);
    let gone = id_of(&upload(&app, &alice, "gone.jpg", jpeg_with_exif(64, 64)).await);
    send_files(&app, &alice, &chat, "stays", std::slice::from_ref(&kept))
        .await
        .expect("send");
    let m = send_files(&app, &alice, &chat, "goes", std::slice::from_ref(&gone))
        .await
        .expect("send");
    let blobs = app.state.files.blobs();
    assert!(blobs.exists(&format!("files/{gone}")).await.expect("head"));
    assert!(
        blobs
            .exists(&format!("files/{gone}.thumb"))
            .await
            .expect("head")
    );

    app.messages
        .clone()
        .delete_message(authed(
            DeleteMessageRequest {
                message_id: m.id.clone(),
            },
            &alice.token,
        ))
        .await
        .expect("delete");
    assert!(
        !blobs.exists(&format!("files/{gone}")).await.expect("head"),
        "its bytes are gone"
    );
    assert!(
        !blobs
            .exists(&format!("files/{gone}.thumb"))
            .await
            .expect("head"),
        "its thumbnail too"
    );
    assert_eq!(
        get(&app, Some(&bob.token), &format!("/v1/files/{gone}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&app, Some(&alice.token), &format!("/v1/files/{gone}"))
            .await
            .status(),
        404
    );
    let listed = app.all_messages(&bob, &chat).await;
    let tomb = listed
        .messages
        .iter()
        .find(|x| x.id == m.id)
        .expect("tombstone");
    assert!(tomb.attachments.is_empty(), "the tombstone lists no files");
    // The other message's file is untouched.
    assert!(blobs.exists(&format!("files/{kept}")).await.expect("head"));
    assert_eq!(app.state.store.file_count().await.expect("count"), 1);
}

async fn unattached_uploads_are_swept(store: Store) {
    // Kept no time at all: every unattached upload is garbage at once (and
    // can no longer be attached).
    let app = app(store, |c| c.keep_unattached_files = Duration::ZERO).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let chat = app.direct_chat(&alice, &bob).await;
    let id = id_of(&upload(&app, &alice, "late.txt", b"late".to_vec()).await);
    expect_code(
        send_files(&app, &alice, &chat, "", std::slice::from_ref(&id)).await,
        Code::NotFound,
        "file",
    );
    let removed = app.state.files.sweep().await.expect("sweep");
    assert_eq!(removed, 1);
    assert!(
        !app.state
            .files
            .blobs()
            .exists(&format!("files/{id}"))
            .await
            .expect("head")
    );
    assert_eq!(app.state.store.file_count().await.expect("count"), 0);

    // With the default keep time the sweep leaves young and attached files.
    let app = self::app(store, |_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let chat = app.direct_chat(&alice, &bob).await;
    let young = id_of(&upload(&app, &alice, "young.txt", b"young".to_vec()).await);
    let sent = id_of(&upload(&app, &alice, "sent.txt", b"sent".to_vec()).await);
    send_files(&app, &alice, &chat, "", std::slice::from_ref(&sent))
        .await
        .expect("send");
    assert_eq!(app.state.files.sweep().await.expect("sweep"), 0);
    for id in [young, sent] {
        assert!(
            app.state
                .files
                .blobs()
                .exists(&format!("files/{id}"))
                .await
                .expect("head")
        );
    }
}

async fn signed_urls_open_without_a_header(store: Store) {
    let app = app(store, |_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let chat = app.direct_chat(&alice, &bob).await;
    let pic = id_of(&upload(&app, &alice, "p.jpg", jpeg_with_exif(100, 50)).await);
    let doc = id_of(&upload(&app, &alice, "d.txt", b"plain words".to_vec()).await);
    send_files(&app, &alice, &chat, "", &[pic.clone(), doc.clone()])
        .await
        .expect("send");
    let mut files = FilesServiceClient::new(app.channel.clone());
    let urls = files
        .get_file_urls(authed(
            GetFileUrlsRequest {
                file_ids: vec![pic.clone(), doc.clone()],
            },
            &bob.token,
        ))
        .await
        .expect("GetFileUrls")
        .into_inner()
        .urls;
    assert_eq!(urls.len(), 2);
    assert_eq!(urls[0].file_id, pic);
    assert!(
        urls[0].url.starts_with(&format!("/v1/files/{pic}?")),
        "{}",
        urls[0].url
    );
    assert!(!urls[0].thumbnail_url.is_empty());
    assert!(urls[1].thumbnail_url.is_empty(), "text has no thumbnail");
    let expires = urls[0].expires_at.as_ref().expect("expires_at").seconds;
    let now = crate::helpers::now_secs();
    assert!(
        expires > now && expires <= now + 601,
        "short-lived: {expires} vs {now}"
    );

    let r = get(&app, None, &urls[1].url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"plain words");
    assert_eq!(get(&app, None, &urls[0].thumbnail_url).await.status(), 200);
    // Tampered: another file's id with this signature, or another expiry.
    let forged = urls[1].url.replace(&doc, &pic);
    assert_eq!(get(&app, None, &forged).await.status(), 403);
    let later = urls[1].url.replace(
        &format!("exp={expires}"),
        &format!("exp={}", expires + 3600),
    );
    assert_eq!(get(&app, None, &later).await.status(), 403);
    // The thumbnail's signature does not open the original.
    let swapped = urls[0].thumbnail_url.replace("/thumbnail?", "?");
    assert_eq!(get(&app, None, &swapped).await.status(), 403);
    // Bad input: too many ids, none, a foreign id (named by its position).
    let many: Vec<String> = (0..101).map(|_| pic.clone()).collect();
    expect_code(
        files
            .get_file_urls(authed(GetFileUrlsRequest { file_ids: many }, &bob.token))
            .await,
        Code::InvalidArgument,
        "file_ids",
    );
    expect_code(
        files
            .get_file_urls(authed(GetFileUrlsRequest { file_ids: vec![] }, &bob.token))
            .await,
        Code::InvalidArgument,
        "file_ids",
    );
}

async fn native_clients_upload_by_client_streaming(store: Store) {
    let app = app(store, |c| c.max_file_bytes = 3 * 1024 * 1024).await;
    let alice = app.register("alice").await;
    let mut files = FilesServiceClient::new(app.channel.clone());
    let data = noise(2 * 1024 * 1024 + 5);
    let frames: Vec<UploadFileRequest> = data
        .chunks(1024 * 1024)
        .enumerate()
        .map(|(i, c)| UploadFileRequest {
            name: if i == 0 {
                "native.bin".into()
            } else {
                String::new()
            },
            data: c.to_vec(),
        })
        .collect();
    let file = files
        .upload_file(authed(futures::stream::iter(frames), &alice.token))
        .await
        .expect("UploadFile")
        .into_inner()
        .file
        .expect("file");
    assert_eq!(
        (file.name.as_str(), file.size),
        ("native.bin", data.len() as i64)
    );
    let r = get(&app, Some(&alice.token), &format!("/v1/files/{}", file.id)).await;
    assert_eq!(r.bytes().await.expect("body").to_vec(), data);

    // A name in a later frame, nothing at all, and over the limit.
    let bad = vec![
        UploadFileRequest {
            name: "a".into(),
            data: vec![1],
        },
        UploadFileRequest {
            name: "b".into(),
            data: vec![2],
        },
    ];
    expect_code(
        files
            .upload_file(authed(futures::stream::iter(bad), &alice.token))
            .await,
        Code::InvalidArgument,
        "first frame",
    );
    expect_code(
        files
            .upload_file(authed(
                futures::stream::iter(Vec::<UploadFileRequest>::new()),
                &alice.token,
            ))
            .await,
        Code::InvalidArgument,
        "data",
    );
    let big = (0..4).map(|i| UploadFileRequest {
        name: if i == 0 { "big".into() } else { String::new() },
        data: vec![0x80; 1024 * 1024],
    });
    expect_code(
        files
            .upload_file(authed(futures::stream::iter(big), &alice.token))
            .await,
        Code::ResourceExhausted,
        "too large",
    );
    assert_eq!(
        app.state.store.file_count().await.expect("count"),
        1,
        "only the good one"
    );
}
