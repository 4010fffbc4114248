//! `idle`: many open user streams doing nothing; the server's memory per
//! open stream (VmRSS after minus before, over the stream count).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::{Ctx, Measure, spawn_reader, until_connected};
use crate::client;
use crate::stats::{Report, Sampler, load_average, read_proc};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Open user streams.
    #[arg(long, default_value_t = 20_000)]
    pub streams: usize,
    /// Streams per user (the server may cap streams per user; 64 is the
    /// spec's default cap).
    #[arg(long, default_value_t = 50)]
    pub per_user: usize,
    /// How long the streams stay open before the second reading.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
}

pub async fn run(ctx: &Ctx, args: &Args) -> anyhow::Result<Report> {
    let mut report = Report::new("idle", &ctx.label);
    let Some(pid) = ctx.server_pid else {
        anyhow::bail!("idle needs --server-pid to read the server's memory");
    };
    let n_users = args.streams.div_ceil(args.per_user.max(1)).max(2);
    let setup = client::connect_many(&ctx.server, 2).await?;
    let users = client::create_users(&setup, &format!("i{}u", ctx.run_id), n_users, 16).await?;
    // Each user has one direct chat, so a stream follows a chat as well as
    // the user's own feed.
    let pairs: Vec<anyhow::Result<String>> = futures::stream::iter(0..n_users / 2)
        .map(|i| {
            let channel = setup[i % setup.len()].clone();
            let (a, b) = (&users[2 * i], &users[2 * i + 1]);
            async move { client::direct_chat(channel, a, b).await }
        })
        .buffered(16)
        .collect()
        .await;
    pairs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

    // The connections are opened before the first reading: what is measured
    // is the streams.
    let n_conn = args.streams.div_ceil(client::STREAMS_PER_CONNECTION).max(1);
    let channels = client::connect_many(&ctx.server, n_conn).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = read_proc(Some(pid)).map_or(0, |s| s.rss_kib);
    let load = load_average();

    let measure = Measure::new();
    let sampler = Sampler::start(Some(pid));
    let started = Instant::now();
    let opened: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.streams)
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            let user = &users[i % users.len()];
            let measure = measure.clone();
            async move {
                let mut s = client::subscribe_user(channel, user).await?;
                until_connected(&mut s).await?;
                spawn_reader(s, measure, i);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    let failed = opened.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = opened.iter().find(|r| r.is_err()) {
        eprintln!("{failed} streams failed to open; first error: {e:#}");
    }
    let open_secs = started.elapsed().as_secs_f64();
    let open_usage = sampler.finish();
    eprintln!(
        "{} user streams live over {n_conn} connections in {open_secs:.1}s",
        args.streams - failed
    );

    let hold = Sampler::start(Some(pid));
    tokio::time::sleep(args.hold).await;
    let hold_usage = hold.finish();
    let after = read_proc(Some(pid)).map_or(0, |s| s.rss_kib);
    let open = (args.streams - failed).max(1);

    report.add("open streams", (args.streams - failed) as f64, "count");
    report.add("users", n_users as f64, "count");
    report.add("server RSS before", before as f64 / 1024.0, "MiB");
    report.add("server RSS with streams open", after as f64 / 1024.0, "MiB");
    report.add(
        "server RSS per open stream",
        after.saturating_sub(before) as f64 / open as f64,
        "KiB",
    );
    report.add("streams opened/s", open as f64 / open_secs, "/s");
    if let Some(c) = open_usage.server_cpu_pct {
        report.add("server CPU while opening", c, "%");
    }
    if let Some(c) = hold_usage.server_cpu_pct {
        report.add("server CPU while idle", c, "%");
    }
    report.add("load tool CPU while opening", open_usage.tool_cpu_pct, "%");
    report.add(
        "stream errors",
        measure.stream_errors.load(Ordering::Relaxed) as f64 + failed as f64,
        "count",
    );
    report.note(format!(
        "{} user streams of {n_users} users ({} each, one direct chat each) over {n_conn} HTTP/2 connections, held {:?}; load average before: {load}",
        args.streams, args.per_user, args.hold
    ));
    Ok(report)
}
