//! Compiles `proto/` into Rust without a system `protoc` (protox parses the
//! files in pure Rust) and stages the web client for rust-embed.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["messaging.proto"], ["proto"])?;
    // Kept for gRPC server reflection.
    std::fs::write(
        out_dir.join("messaging_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;

    // The original server's contract alone (SPEC §2.1), for compatibility tests:
    // a client generated from it must work against Tidings unmodified.
    println!("cargo:rerun-if-changed=tests/compat");
    let original = out_dir.join("original");
    std::fs::create_dir_all(&original)?;
    let fds = protox::compile(["original.proto"], ["tests/compat"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .out_dir(&original)
        .compile_fds(fds)?;

    stage_web(&out_dir)?;
    Ok(())
}

/// rust-embed serves `$OUT_DIR/web`. It holds the built client (`web/dist`) when
/// it exists, or else the small committed fallback page in `web/fallback`, so a
/// plain `cargo build` always works.
fn stage_web(out_dir: &Path) -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=web/dist");
    println!("cargo:rerun-if-changed=web/fallback");
    let dist = Path::new("web/dist");
    let src = if dist.join("index.html").exists() {
        dist
    } else {
        Path::new("web/fallback")
    };
    let dest = out_dir.join("web");
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    copy_dir(src, &dest)
}

fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let target = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
