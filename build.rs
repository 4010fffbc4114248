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
    streaming_servers(&fds, &out_dir);
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

/// The services with server streams, generated a second time, for the
/// server only: their streams' items are `crate::grpc::wire::Frame`s
/// (pre-encoded protobuf, so a message fanned out to many streams is encoded
/// once) written by `crate::grpc::wire::FrameCodec`; their other methods use
/// prost as usual. Requests and unary replies are the same prost types as in
/// `crate::proto`, and the methods are read from the proto files, so these
/// servers cannot drift from the contract.
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
                    format!("crate::proto::{name}")
                };
                let mut m = tonic_build::manual::Method::builder()
                    .name(snake_case(method.name()))
                    .route_name(method.name())
                    .input_type(rust_type(method.input_type()));
                m = if method.server_streaming() {
                    m.output_type("crate::grpc::wire::Frame")
                        .codec_path("crate::grpc::wire::FrameCodec")
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

/// rust-embed serves `$OUT_DIR/web`. It holds the built client (`web/dist`) when
/// it exists, or else the small committed fallback page in `web/fallback`, so a
/// plain `cargo build` always works.
///
/// The client is built here, so a user never runs npm by hand: when
/// `web/package.json` exists, `npm` is on PATH and `TIDINGS_SKIP_WEB_BUILD` is
/// not set, this runs `npm ci` (only when `web/node_modules` is missing or older
/// than `package-lock.json`) and `npm run build`. Without npm, or when that
/// build fails, it warns and serves what there is; with `CI=true` a failed
/// build fails the cargo build instead, so CI cannot pass on the fallback page.
fn stage_web(out_dir: &Path) -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=web/fallback");
    println!("cargo:rerun-if-env-changed=TIDINGS_SKIP_WEB_BUILD");
    println!("cargo:rerun-if-env-changed=CI");
    let web = Path::new("web");
    let skip = std::env::var_os("TIDINGS_SKIP_WEB_BUILD").is_some();
    if skip {
        // Whoever set it builds web/dist themselves: pick up their output.
        println!("cargo:rerun-if-changed=web/dist");
    } else if web.join("package.json").exists() {
        watch_web_sources(web);
        if let Err(why) = build_web(web) {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                return Err(std::io::Error::other(format!(
                    "building the web client failed: {why}"
                )));
            }
            println!(
                "cargo:warning=web client not built ({why}); serving {}",
                if web.join("dist/index.html").exists() {
                    "the previous build in web/dist"
                } else {
                    "the fallback page"
                }
            );
        }
    }
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

/// The inputs of the web build. Not web/dist, web/node_modules or the
/// generated web/src/gen, which the build itself writes: watching those would
/// re-run this script on every cargo invocation.
fn watch_web_sources(web: &Path) {
    for file in [
        "index.html",
        "package.json",
        "package-lock.json",
        "buf.gen.yaml",
        "tsconfig.json",
        "vite.config.ts",
        "vite.config.js",
        "vite.config.mjs",
    ] {
        // A watched path that does not exist counts as changed on every
        // build, so only the files that are there.
        if web.join(file).exists() {
            println!("cargo:rerun-if-changed={}", web.join(file).display());
        }
    }
    println!("cargo:rerun-if-changed=proto/messaging.proto");
    if let Ok(entries) = std::fs::read_dir(web.join("src")) {
        for entry in entries.flatten() {
            if entry.file_name() != "gen" {
                println!("cargo:rerun-if-changed={}", entry.path().display());
            }
        }
    }
}

fn npm() -> std::process::Command {
    std::process::Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" })
}

fn build_web(web: &Path) -> Result<(), String> {
    match npm().arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err("npm is not on PATH; install Node.js to build it".into()),
    }
    if needs_npm_ci(web) {
        run_npm(web, &["ci", "--no-audit", "--no-fund"])?;
    }
    run_npm(web, &["run", "build"])
}

/// `npm ci` when there is no install yet or package-lock.json changed since.
fn needs_npm_ci(web: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(&web.join("node_modules/.package-lock.json")),
        modified(&web.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => lock > installed,
        _ => true,
    }
}

fn run_npm(web: &Path, args: &[&str]) -> Result<(), String> {
    let shown = format!("npm {}", args.join(" "));
    // npm's output goes to stderr: cargo reads this script's stdout for
    // instructions, and shows stderr when the build fails.
    let status = npm()
        .args(args)
        .current_dir(web)
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("could not run `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` in web/ failed ({status})"))
    }
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
