//! Tidings: a real-time chat server.
//!
//! Layout (a message's path from send to every device reads top to bottom):
//! - [`config`]: the one clap `Config`; every flag is also an env var.
//! - [`app`]: `Application` binds the port and builds the one axum router:
//!   native gRPC, gRPC-Web (tonic-web, CORS outside it) and the embedded web
//!   client; graceful shutdown.
//! - [`grpc`]: thin tonic services: authenticate, parse, call the domain.
//! - [`auth`]: argon2id off the runtime, HS256 tokens, the authenticator.
//! - [`users`], [`chats`], [`messages`]: the domain, free of transport types.
//! - [`idempotency`]: the Redis / in-process fast path for repeated sends.
//! - [`realtime`]: the hub that fans events out to live streams.
//! - [`store`]: SeaORM entities and queries, the only SQL-speaking module.
//! - [`web`]: the embedded web client with an SPA fallback.
//! - [`server`]: the accept loop (TLS, HTTP/2 keep-alive, graceful stop).
//! - [`health`], [`metrics`]: health, readiness and Prometheus metrics.

pub mod app;
pub mod auth;
pub mod chats;
pub mod config;
pub mod error;
pub mod grpc;
pub mod health;
pub mod idempotency;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod realtime;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod users;
pub mod web;

/// Code generated from `proto/messaging.proto`.
pub mod proto {
    tonic::include_proto!("messaging");

    /// Servers of the services with streams, whose stream items are
    /// pre-encoded [`Frame`](crate::grpc::wire::Frame)s (see `build.rs`).
    /// Tidings serves these; the prost-generated servers above are unused.
    pub mod streaming {
        include!(concat!(
            env!("OUT_DIR"),
            "/streaming/messaging.MessagesService.rs"
        ));
        include!(concat!(
            env!("OUT_DIR"),
            "/streaming/messaging.EventsService.rs"
        ));
    }

    /// The encoded descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/messaging_descriptor.bin"));
}
