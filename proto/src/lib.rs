//! The Tidings wire contract in Rust: everything generated from
//! `messaging.proto` (package `messaging`), shared by the server, the
//! terminal client (`tidings-chat`) and the load tool, so the clients build
//! without the server's storage and crypto crates.
//!
//! - the messages, and a client and a server for each service;
//! - [`streaming`]: the servers the server really runs for the services with
//!   streams, whose items are pre-encoded [`wire::Frame`]s;
//! - [`FILE_DESCRIPTOR_SET`], for gRPC server reflection;
//! - with the `original` feature, [`original`]: a client of the original Go
//!   server's contract alone, for the compatibility tests.

// Generated code: a oneof with a message case is as large as its largest
// case (ChatChange.edited holds a whole Message); that is prost's layout.
#![allow(clippy::large_enum_variant)]

tonic::include_proto!("messaging");

pub mod wire;

/// Servers of the services with streams, whose stream items are
/// pre-encoded [`wire::Frame`]s (see `build.rs`). The server runs these; the
/// prost-generated servers above are for anyone who wants plain messages.
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

/// The encoded descriptor set of `messaging.proto`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/messaging_descriptor.bin"));

/// The original server's contract (tests/compat/original.proto), as a
/// client only.
#[cfg(feature = "original")]
pub mod original {
    include!(concat!(env!("OUT_DIR"), "/original/messaging.rs"));
}
