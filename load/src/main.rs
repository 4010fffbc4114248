//! tidings-load: the load generator of Tidings.
//!
//! Runs one scenario against a running server (loopback), creating its own
//! users and chats, and prints one table of figures. Every run is bounded in
//! time (`--max-time`) and in count. See docs/BENCHMARKS.md.

mod client;
mod scenarios;
mod stats;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use scenarios::{Ctx, Transport};

#[derive(Parser, Debug)]
#[command(
    name = "tidings-load",
    version,
    about = "Load generator and benchmarks for Tidings"
)]
struct Cli {
    /// The server to load (loopback only).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The server's process id, to sample its CPU time and RSS from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Length of the measured window.
    #[arg(long, global = true, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before the measured window starts (not measured).
    #[arg(long, global = true, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// After the window, how long to wait for deliveries still on the way.
    #[arg(long, global = true, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// How long to wait for the server to accept connections.
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Hard limit for the whole run, set-up included.
    #[arg(long, global = true, default_value = "600s", value_parser = humantime::parse_duration)]
    max_time: Duration,
    /// A label for the results, e.g. the backend (`sqlite`, `postgres`).
    #[arg(long, global = true, default_value = "")]
    label: String,
    /// Append the results as tab-separated lines to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Reference ceiling: pgbench single-row insert tps of this machine.
    #[arg(long, global = true)]
    ref_pgbench_tps: Option<f64>,
    /// Reference ceiling: redis-benchmark PUBLISH requests/s of this machine.
    #[arg(long, global = true)]
    ref_publish_rps: Option<f64>,
    /// Shell command run (and waited for) when the measured window starts,
    /// e.g. `callgrind_control -i on <pid>`.
    #[arg(long, global = true)]
    at_start: Option<String>,
    /// Shell command run (and waited for) when the measured window ends.
    #[arg(long, global = true)]
    at_end: Option<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// C concurrent closed-loop senders: acknowledged, persisted sends/s.
    Ingest(scenarios::ingest::Args),
    /// A steady rate over many chats, subscribers on native user streams:
    /// send and end-to-end delivery latency.
    Latency(scenarios::latency::Args),
    /// The latency scenario with subscribers over gRPC-Web (HTTP/1.1).
    Web(scenarios::latency::Args),
    /// The latency scenario with bursts of concurrent logins.
    Login {
        #[command(flatten)]
        latency: scenarios::latency::Args,
        #[command(flatten)]
        storm: scenarios::latency::StormArgs,
    },
    /// One chat, many subscriptions: deliveries/s and delivery latency.
    Fanout(scenarios::fanout::Args),
    /// Many open, idle user streams: server RSS per stream.
    Idle(scenarios::idle::Args),
    /// A few seconds for CI: asserts that messages flowed.
    Smoke(scenarios::smoke::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tidings-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let max_time = cli.max_time;
    match runtime.block_on(async { tokio::time::timeout(max_time, run(cli)).await }) {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(e)) => {
            eprintln!("tidings-load: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("tidings-load: gave up after --max-time {max_time:?}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenario, prints the table; `Ok(false)` when a check failed.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let ctx = Ctx {
        server: cli.server.clone(),
        server_pid: cli.server_pid,
        duration: cli.duration,
        warmup: cli.warmup,
        drain: cli.drain,
        label: cli.label.clone(),
        ref_pgbench_tps: cli.ref_pgbench_tps,
        ref_publish_rps: cli.ref_publish_rps,
        connect_timeout: cli.connect_timeout,
        run_id: client::run_id(),
        at_start: cli.at_start.clone(),
        at_end: cli.at_end.clone(),
    };
    // Fail early and clearly when the server is not there.
    client::connect(&ctx.server, ctx.connect_timeout).await?;
    let mut passed = true;
    let report = match &cli.scenario {
        Scenario::Ingest(a) => scenarios::ingest::run(&ctx, a).await?,
        Scenario::Latency(a) => scenarios::latency::run(&ctx, a, Transport::Native, None).await?,
        Scenario::Web(a) => scenarios::latency::run(&ctx, a, Transport::Web, None).await?,
        Scenario::Login { latency, storm } => {
            scenarios::latency::run(&ctx, latency, Transport::Native, Some(storm)).await?
        }
        Scenario::Fanout(a) => scenarios::fanout::run(&ctx, a).await?,
        Scenario::Idle(a) => scenarios::idle::run(&ctx, a).await?,
        Scenario::Smoke(a) => {
            let (report, ok) = scenarios::smoke::run(&ctx, a).await?;
            passed = ok;
            report
        }
    };
    println!("{}", report.table());
    if let Some(path) = &cli.out {
        report.append_tsv(path)?;
    }
    Ok(passed)
}

/// Thousands of streams (and, for gRPC-Web, thousands of connections) need
/// more file descriptors than the usual soft limit.
#[allow(unsafe_code)] // two libc calls, see SAFETY
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
