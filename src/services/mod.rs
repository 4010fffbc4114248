//! The services: what each RPC does, free of transport types. They take
//! plain arguments, apply the domain's rules, read and write through the
//! store and publish through fan-out. None of them imports another, except
//! the block service, which chats and messages are handed, and the file
//! service, which messages is handed (to check attachments, and to remove a
//! deleted message's files).
//!
//! - [`users`]: registration, login, profiles, tokens;
//! - [`chats`]: direct chats and group rooms, membership, the views of them;
//! - [`messages`]: sending (group commit, idempotency), history, receipts,
//!   typing; edits, deletes and reactions.
//! - [`views`]: messages as a viewer sees them (shared by the two above).
//! - [`files`]: uploads, downloads' access checks, signed URLs, the sweep;
//! - [`blocks`]: who blocked whom; the others take its [`blocks::BlockService`]
//!   to check and apply blocks.

pub mod blocks;
pub mod chats;
pub mod files;
pub mod messages;
pub mod users;
pub mod views;
