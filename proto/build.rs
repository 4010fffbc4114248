//! Compiles `messaging.proto` into Rust without a system `protoc` (protox
//! parses it in pure Rust): the messages, the clients and servers, the
//! descriptor set for server reflection, and a second server of each
//! streaming service whose stream items are pre-encoded frames.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed=messaging.proto");
    let fds = protox::compile(["messaging.proto"], ["."])?;
    // Kept for gRPC server reflection.
    std::fs::write(
        out_dir.join("messaging_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    streaming_servers(&fds, &out_dir);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;

    // The original server's contract alone (SPEC §2.1), for compatibility
    // tests: a client generated from it must work against Tidings unmodified.
    if std::env::var_os("CARGO_FEATURE_ORIGINAL").is_some() {
        println!("cargo:rerun-if-changed=../tests/compat/original.proto");
        let original = out_dir.join("original");
        std::fs::create_dir_all(&original)?;
        let fds = protox::compile(["original.proto"], ["../tests/compat"])?;
        tonic_prost_build::configure()
            .build_server(false)
            .build_client(true)
            .out_dir(&original)
            .compile_fds(fds)?;
    }
    Ok(())
}

/// The services with server streams, generated a second time, as servers
/// only: their streams' items are [`Frame`]s (pre-encoded protobuf, so a
/// message fanned out to many streams is encoded once) written by
/// `FrameCodec`; their other methods use prost as usual. Requests and unary
/// replies are the same prost types as the ordinary servers', and the
/// methods are read from the proto file, so these servers cannot drift from
/// the contract.
///
/// [`Frame`]: crate::wire::Frame
fn streaming_servers(fds: &prost_types::FileDescriptorSet, out_dir: &Path) {
    let mut services = Vec::new();
    for file in &fds.file {
        let package = file.package();
        for service in &file.service {
            if !service.method.iter().any(|m| m.server_streaming()) {
                continue;
            }
            let mut builder = tonic_build::manual::Service::builder()
                .name(service.name())
                .package(package);
            for method in &service.method {
                let rust_type = |proto: &str| {
                    let name = proto.rsplit('.').next().unwrap_or(proto);
                    format!("crate::{name}")
                };
                let mut m = tonic_build::manual::Method::builder()
                    .name(snake_case(method.name()))
                    .route_name(method.name())
                    .input_type(rust_type(method.input_type()));
                m = if method.server_streaming() {
                    m.output_type("crate::wire::Frame")
                        .codec_path("crate::wire::FrameCodec")
                        .server_streaming()
                } else {
                    m.output_type(rust_type(method.output_type()))
                        .codec_path("tonic_prost::ProstCodec")
                };
                if method.client_streaming() {
                    m = m.client_streaming();
                }
                builder = builder.method(m.build());
            }
            services.push(builder.build());
        }
    }
    let dir = out_dir.join("streaming");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/streaming");
    tonic_build::manual::Builder::new()
        .build_client(false)
        .out_dir(&dir)
        .compile(&services);
}

/// `SubscribeToChat` → `subscribe_to_chat`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
