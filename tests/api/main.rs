//! The integration suite: one binary, every case on both backends
//! (`<case>::sqlite` embedded, `<case>::postgres` with Postgres + Redis from
//! TEST_DATABASE_URL / TEST_REDIS_URL). See helpers.rs for the harness.

#[macro_use]
mod helpers;

mod abuse;
mod auth;
mod blocks;
mod bytes;
mod changes;
mod chats;
mod compat;
mod dashboard;
mod errors;
mod files;
mod grpc_web;
mod idempotency;
mod input;
mod lifecycle;
mod messages;
mod multinode;
mod ops;
mod realtime;
mod search;
mod security;
mod sessions;
mod streaming;
mod users;
