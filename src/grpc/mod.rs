//! The gRPC edge, and the only code that knows tonic: each service reads
//! the caller ([`auth`]), applies the abuse limits, turns the request into
//! plain arguments, calls a service or opens a stream, and maps the answer
//! ([`convert`], [`wire`]) or the error ([`status`]). No business logic
//! lives here.
//!
//! [`router`] builds the axum router of every gRPC service (with health and
//! reflection), gRPC-Web translation included.

pub mod auth;
pub mod body_timeout;
pub mod chats;
pub mod convert;
pub mod events;
pub mod files;
pub mod health;
pub mod malformed;
pub mod messages;
pub mod metrics;
pub mod status;
pub mod users;
pub mod wire;

use axum::Router;
use tidings_proto::chats_service_server::ChatsServiceServer;
use tidings_proto::files_service_server::FilesServiceServer;
use tidings_proto::streaming::events_service_server::EventsServiceServer;
use tidings_proto::streaming::messages_service_server::MessagesServiceServer;
use tidings_proto::users_service_server::UsersServiceServer;

use crate::limits::Limits;
use crate::services::blocks::BlockService;
use crate::services::chats::ChatService;
use crate::services::files::FileService;
use crate::services::messages::MessageService;
use crate::services::users::UserService;
use crate::streams::Streams;
use auth::Authenticator;

/// What the gRPC services are made of.
pub struct Parts {
    pub users: UserService,
    pub blocks: BlockService,
    pub chats: ChatService,
    pub messages: MessageService,
    pub files: FileService,
    pub streams: Streams,
    pub auth: Authenticator,
    pub limits: Limits,
    pub health: crate::health::Health,
    /// Largest accepted request message, in bytes.
    pub max_request_bytes: usize,
    /// Whether server reflection is offered (REFLECTION).
    pub reflection: bool,
    /// How long a call's request message may take to arrive (0: no bound).
    pub request_body_timeout: std::time::Duration,
}

/// Records the chat an RPC is about on its span.
pub(crate) fn record_chat(chat_id: &str) {
    tracing::Span::current().record("chat_id", chat_id);
}

/// Every gRPC service (the four of the contract, health, reflection v1 and
/// v1alpha) as one axum router, counted by [`metrics`] and translated for
/// gRPC-Web. It has tonic's UNIMPLEMENTED fallback, which the caller
/// replaces when it merges this into the app (only one router may have one).
pub fn router(parts: Parts) -> anyhow::Result<Router> {
    let Parts {
        users,
        blocks,
        chats,
        messages,
        files,
        streams,
        auth,
        limits,
        health,
        max_request_bytes: limit,
        reflection,
        request_body_timeout,
    } = parts;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    health::spawn_reporter(reporter, &health);
    let routes = tonic::service::Routes::new(
        UsersServiceServer::new(users::Users {
            users,
            blocks,
            auth: auth.clone(),
            limits: limits.clone(),
        })
        .max_decoding_message_size(limit),
    )
    .add_service(
        ChatsServiceServer::new(chats::Chats {
            chats,
            auth: auth.clone(),
            limits: limits.clone(),
        })
        .max_decoding_message_size(limit),
    )
    .add_service(
        MessagesServiceServer::new(messages::Messages {
            messages: messages.clone(),
            streams: streams.clone(),
            auth: auth.clone(),
            limits: limits.clone(),
        })
        .max_decoding_message_size(limit),
    )
    .add_service(
        // Frames carry up to 1 MiB of a file: the file's own limit holds
        // the whole upload.
        FilesServiceServer::new(files::Files {
            files,
            auth: auth.clone(),
        })
        .max_decoding_message_size(limit.max(files::MAX_UPLOAD_FRAME)),
    )
    .add_service(
        EventsServiceServer::new(events::Events {
            messages,
            streams,
            auth,
            limits,
        })
        .max_decoding_message_size(limit),
    )
    .add_service(health_service);
    let routes = if reflection {
        let described = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tidings_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        routes
            .add_service(described().build_v1()?)
            .add_service(described().build_v1alpha()?)
    } else {
        routes
    };
    Ok(routes
        .into_axum_router()
        // Inside gRPC-Web translation, so they see real gRPC trailers, and
        // the metrics count what the client is told.
        .layer(axum::middleware::from_fn_with_state(
            request_body_timeout,
            body_timeout::bound_body,
        ))
        .layer(axum::middleware::from_fn(malformed::refuse_malformed))
        .layer(axum::middleware::from_fn(metrics::record_grpc))
        .layer(tonic_web::GrpcWebLayer::new()))
}
