//! Tidings: a real-time chat server.
//!
//! The layers, each a folder, each importing only the ones listed before
//! it (a test, `tests/layers.rs`, fails on any import cycle):
//! - [`domain`]: ids, the rules input must follow, models, views, the one
//!   error type. No I/O.
//! - [`store`]: SeaORM on SQLite or PostgreSQL, the only code that speaks
//!   SQL. Messages are stored in batches ([`store::messages`]).
//! - [`idempotency`]: the Redis / in-process fast path for repeated sends.
//! - [`fanout`]: events, the in-process hub, the Redis bridge between
//!   nodes, presence, delivered watermarks, the ordering rule.
//! - [`auth`]: argon2id off the runtime, HS256 tokens, known users.
//! - [`limits`], [`health`]: abuse limits; reachability of the dependencies.
//! - [`services`]: users, chats, messages (with the group committer): what
//!   each RPC does, free of transport types.
//! - [`streams`]: the live streams (per user, per chat) over one per-chat
//!   cursor core.
//! - [`grpc`]: the only tonic-aware code: thin services, auth, status
//!   mapping, conversion to protobuf and the pre-encoded stream frames.
//! - [`http`]: health and metrics endpoints, the embedded web client, CORS,
//!   the accept loop.
//! - [`startup`]: the composition root that builds and runs all of it.
//!
//! Beside them: [`config`] (one clap struct), [`metrics`] (names and
//! handles) and [`telemetry`] (logging). The wire contract is the
//! `tidings-proto` crate (`proto/`).
//!
//! The path of one message, file by file, is in docs/ARCHITECTURE.md.

#![warn(clippy::print_stdout)]

pub mod auth;
pub mod config;
pub mod domain;
pub mod fanout;
pub mod grpc;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod services;
pub mod startup;
pub mod store;
pub mod streams;
pub mod telemetry;

/// The wire contract (the `tidings-proto` crate).
pub use tidings_proto as proto;
