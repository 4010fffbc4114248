//! What an operator relies on: reflection, health that follows storage,
//! readiness, Prometheus metrics, TLS for native gRPC and gRPC-Web, and the
//! migrate subcommand.

use prost::Message as _;
use tidings::proto::{GetMeRequest, GetMeResponse};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::*;
use crate::realtime::open_events;

both_backends!(
    reflection_lists_every_service,
    reflection_can_be_switched_off,
    made_up_method_names_share_one_label_and_do_not_grow_metrics,
    metrics_addr_serves_metrics_on_its_own_listener_only,
    metrics_count_calls_by_method_and_code_and_deliveries,
    readyz_and_healthz_answer,
    tls_serves_native_grpc_and_grpc_web,
);

async fn reflection_lists_every_service(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.message().await.unwrap().expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "messaging.UsersService",
        "messaging.ChatsService",
        "messaging.MessagesService",
        "messaging.EventsService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }
}

async fn reflection_can_be_switched_off(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.reflection = false).await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let refused = match client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
    {
        Err(status) => status,
        Ok(stream) => stream
            .into_inner()
            .message()
            .await
            .expect_err("no reflection answer"),
    };
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");
    // The services themselves are still there.
    let me = app.register("noreflect").await;
    let mut users = app.users.clone();
    users
        .get_me(authed(GetMeRequest {}, &me.token))
        .await
        .expect("GetMe works without reflection");
}

/// A gRPC-Web call with an empty message to `path`, without a token.
async fn grpc_web_call(app: &TestApp, http: &reqwest::Client, path: &str) -> reqwest::StatusCode {
    http.post(format!("http://{}{path}", app.addr))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .expect("the server answers")
        .status()
}

async fn made_up_method_names_share_one_label_and_do_not_grow_metrics(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = reqwest::Client::new();
    let unknown = |t: &str| {
        metric_value(
            t,
            "tidings_grpc_calls_total",
            &[("method", "unknown"), ("code", "UNIMPLEMENTED")],
        )
    };
    let before = scrape(&app).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    const CALLS: usize = 40;
    for i in 0..CALLS {
        let service = ["UsersService", "MessagesService", "Nope"][i % 3];
        let path = format!("/messaging.{service}/Made{tag}{i}");
        assert_eq!(grpc_web_call(&app, &http, &path).await, 200, "{path}");
    }
    let after = scrape(&app).await;
    assert!(
        !after.contains(&format!("Made{tag}")),
        "a made-up method name became a label"
    );
    // The calls the gRPC services saw (paths under a served service) are
    // all counted under one label.
    assert!(
        unknown(&after) >= unknown(&before) + (CALLS * 2 / 3) as f64,
        "made-up methods not counted as unknown: {} -> {}",
        unknown(&before),
        unknown(&after)
    );
}

async fn metrics_addr_serves_metrics_on_its_own_listener_only(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let at = app.metrics_addr.expect("a metrics listener");
    assert_ne!(at, app.addr);
    let resp = reqwest::get(format!("http://{at}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("tidings_"));
    // The public port no longer answers /metrics with metrics (it is the
    // web client's fallback there), and still serves health.
    let public = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .unwrap();
    let body = public.text().await.unwrap();
    assert!(!body.contains("tidings_grpc_calls_total"), "{body}");
    let health = reqwest::get(format!("http://{}/healthz", app.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

pub(crate) fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub(crate) async fn scrape(app: &TestApp) -> String {
    let resp = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

async fn metrics_count_calls_by_method_and_code_and_deliveries(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b) = (app.register("met_a").await, app.register("met_b").await);
    let chat = app.direct_chat(&a, &b).await;
    let mut events = open_events(&app.channel, &b, &[]).await.unwrap();
    // Counters are process-wide (tests run in parallel), so compare deltas.
    let before = scrape(&app).await;
    app.send(&a, &chat, "counted").await;
    events.next_message().await;
    expect_code(
        app.try_send(&a, &chat, "", "").await,
        Code::InvalidArgument,
        "content",
    );
    let after = scrape(&app).await;

    let ok = |t: &str| {
        metric_value(
            t,
            "tidings_grpc_calls_total",
            &[("method", "SendMessage"), ("code", "OK")],
        )
    };
    let bad = |t: &str| {
        metric_value(
            t,
            "tidings_grpc_calls_total",
            &[("method", "SendMessage"), ("code", "INVALID_ARGUMENT")],
        )
    };
    assert!(
        ok(&after) >= ok(&before) + 1.0,
        "SendMessage OK not counted:\n{after}"
    );
    assert!(
        bad(&after) >= bad(&before) + 1.0,
        "SendMessage INVALID_ARGUMENT not counted"
    );
    assert!(
        metric_value(&after, "tidings_deliveries_total", &[])
            >= metric_value(&before, "tidings_deliveries_total", &[]) + 1.0,
        "delivery not counted"
    );
    assert!(
        after.contains("tidings_grpc_call_duration_seconds_bucket"),
        "no latency histogram"
    );
    assert!(metric_value(&after, "tidings_open_streams", &[("kind", "user")]) >= 1.0);
    assert!(after.contains("tidings_database_pool_connections"));
}

async fn readyz_and_healthz_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let healthz = reqwest::get(format!("http://{}/healthz", app.addr))
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    let readyz = reqwest::get(format!("http://{}/readyz", app.addr))
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&readyz.bytes().await.unwrap()).unwrap();
    assert_eq!(body["database"], "up");
    let expected_redis = if backend == Backend::Postgres {
        "up"
    } else {
        "not configured"
    };
    assert_eq!(body["redis"], expected_redis);

    let mut health = HealthClient::new(app.channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: "messaging.MessagesService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
}

/// Health follows storage: NOT_SERVING while Postgres refuses the server's
/// connections, SERVING again once it accepts them, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_goes_not_serving_when_storage_is_unreachable_and_back() {
    use sea_orm::ConnectionTrait;
    let Some(services) = postgres_services() else {
        return;
    };
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.health_interval = std::time::Duration::from_millis(100)
    })
    .await;
    let db_name = app
        .config
        .database_url
        .as_ref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let admin = sea_orm::Database::connect(&services.admin_url)
        .await
        .unwrap();

    let mut health = HealthClient::new(app.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "messaging.MessagesService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // Waits for the watched status to become `wanted` (updates may repeat).
    let mut next_status = async |wanted: ServingStatus| loop {
        let status = tokio::time::timeout(WAIT, watch.message())
            .await
            .expect("health change in time")
            .unwrap()
            .unwrap()
            .status();
        if status == wanted {
            return status;
        }
    };
    next_status(ServingStatus::Serving).await;

    // Storage goes away: no new connections, existing ones killed.
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{db_name}\" WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
        ))
        .await
        .unwrap();
    next_status(ServingStatus::NotServing).await;
    let readyz = reqwest::get(format!("http://{}/readyz", app.addr))
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503);
    // Calls fail fast with UNAVAILABLE, not INTERNAL.
    let a = TestUser {
        id: uuid::Uuid::now_v7().to_string(),
        username: "x".into(),
        email: "x@example.com".into(),
        token: String::new(),
    };
    let token = mint_token(&a.id, 60, JWT_SECRET);
    let err = app
        .users
        .clone()
        .get_me(authed(GetMeRequest {}, &token))
        .await
        .expect_err("storage is down");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{db_name}\" WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    next_status(ServingStatus::Serving).await;
    let readyz = reqwest::get(format!("http://{}/readyz", app.addr))
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    let _ = admin.close().await;
}

async fn tls_serves_native_grpc_and_grpc_web(backend: Backend) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(backend, |c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    // Native gRPC over TLS (HTTP/2 by ALPN).
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(cert.cert.pem()))
        .domain_name("localhost");
    let channel =
        tonic::transport::Channel::from_shared(format!("https://localhost:{}", app.addr.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .expect("TLS connect");
    let mut users = tidings::proto::users_service_client::UsersServiceClient::new(channel);
    let created = users
        .create_user(tidings::proto::CreateUserRequest {
            username: "tls_user".into(),
            email: "tls@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("CreateUser over TLS")
        .into_inner();

    // gRPC-Web over HTTPS, HTTP/1.1 and HTTP/2.
    for http2 in [false, true] {
        let builder = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap(),
            )
            .resolve("localhost", app.addr);
        let client = if http2 {
            builder.http2_prior_knowledge()
        } else {
            builder.http1_only()
        }
        .build()
        .unwrap();
        let body = GetMeRequest {}.encode_to_vec();
        let mut framed = vec![0u8];
        framed.extend((body.len() as u32).to_be_bytes());
        framed.extend(body);
        let resp = client
            .post(format!(
                "https://localhost:{}/messaging.UsersService/GetMe",
                app.addr.port()
            ))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("authorization", format!("Bearer {}", created.token))
            .body(framed)
            .send()
            .await
            .expect("gRPC-Web over TLS");
        let expected = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(resp.version(), expected);
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(bytes[0], 0, "first frame is a data frame");
        let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
        let me = GetMeResponse::decode(&bytes[5..5 + len]).unwrap();
        assert_eq!(me.user.unwrap().username, "tls_user");
        let trailers = String::from_utf8_lossy(&bytes[5 + len + 5..]);
        assert!(trailers.contains("grpc-status:0"), "{trailers}");
    }
    // Cleartext to a TLS port does not work.
    let plain = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let err = tidings::proto::users_service_client::UsersServiceClient::new(channel)
            .get_me(authed(GetMeRequest {}, &created.token))
            .await
            .expect_err("cleartext on a TLS port");
        assert_ne!(err.code(), Code::Ok);
    }
}

#[test]
fn migrate_subcommand_applies_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("DATABASE_URL")
            .env("LOG_LEVEL", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["migrate", "status"]).contains("pending"));
    run(&["migrate", "up"]);
    let status = run(&["migrate", "status"]);
    assert!(
        status.contains("applied") && !status.contains("pending"),
        "{status}"
    );
    run(&["migrate", "down"]);
    assert!(run(&["migrate", "status"]).contains("pending"));
}
