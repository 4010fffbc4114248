//! Stages the web client for rust-embed (building it with npm when it can).
//! The Rust code generated from `proto/` is the `tidings-proto` crate's
//! (proto/build.rs).

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    stage_web(&out_dir)?;
    Ok(())
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
