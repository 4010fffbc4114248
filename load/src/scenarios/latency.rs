//! `latency`, `web` and `login`: a steady message rate over many chats, each
//! member reading its user stream (natively or over gRPC-Web); send latency
//! and end-to-end delivery latency. `login` adds bursts of concurrent logins
//! (argon2 on the server) in the middle of the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::{Ctx, Measure, Pacer, SendStats, Transport, open_user_streams};
use crate::client::{self, User};
use crate::stats::{Recorder, Report, Sampler, load_average};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Messages per second, over all chats.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Group chats.
    #[arg(long, default_value_t = 100)]
    pub chats: usize,
    /// Subscribers (members reading their user stream) per chat.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// Sending users (each a member of the chats it sends to).
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// HTTP/2 connections the sends go over.
    #[arg(long, default_value_t = 4)]
    pub send_connections: usize,
    /// Sends waiting for an answer at most; further sends are skipped.
    #[arg(long, default_value_t = 4000)]
    pub max_in_flight: usize,
}

#[derive(Clone, Debug, clap::Args)]
pub struct StormArgs {
    /// Concurrent logins per storm.
    #[arg(long, default_value_t = 50)]
    pub logins: usize,
    /// Storms, spread evenly over the measured window.
    #[arg(long, default_value_t = 3)]
    pub storms: usize,
}

pub async fn run(
    ctx: &Ctx,
    args: &Args,
    transport: Transport,
    storm: Option<&StormArgs>,
) -> anyhow::Result<Report> {
    let name = match (transport, storm) {
        (_, Some(_)) => "login",
        (Transport::Web, None) => "web",
        (Transport::Native, None) => "latency",
    };
    let mut report = Report::new(name, &ctx.label);
    anyhow::ensure!(args.chats > 0 && args.subscribers > 0 && args.senders > 0);
    let setup = client::connect_many(&ctx.server, args.send_connections.max(1)).await?;

    // Users: senders, and `subscribers` distinct members per chat.
    let prefix = format!("l{}", ctx.run_id);
    let senders = client::create_users(&setup, &format!("{prefix}s"), args.senders, 16).await?;
    let subs = client::create_users(
        &setup,
        &format!("{prefix}u"),
        args.chats * args.subscribers,
        16,
    )
    .await?;

    // Chats: chat i = sender i % senders + its own subscribers.
    let chats: Vec<anyhow::Result<String>> = futures::stream::iter(0..args.chats)
        .map(|i| {
            let channel = setup[i % setup.len()].clone();
            let owner = &senders[i % senders.len()];
            let members: Vec<&User> = subs[i * args.subscribers..(i + 1) * args.subscribers]
                .iter()
                .collect();
            async move { client::create_group(channel, owner, &members, &format!("lt-{i}")).await }
        })
        .buffered(16)
        .collect()
        .await;
    let chats = chats.into_iter().collect::<anyhow::Result<Vec<String>>>()?;

    let measure = Measure::new();
    let opened = open_user_streams(ctx, &subs, transport, &measure).await?;
    eprintln!(
        "{} {} user streams live in {:.1}s",
        subs.len(),
        match transport {
            Transport::Native => "native",
            Transport::Web => "gRPC-Web",
        },
        opened.as_secs_f64()
    );

    let targets: Vec<(User, String)> = chats
        .iter()
        .enumerate()
        .map(|(i, c)| (senders[i % senders.len()].clone(), c.clone()))
        .collect();
    let load = load_average();
    let stats = SendStats::new();
    let storm_flag = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now() + Duration::from_millis(100);
    let (start, end) = (t0 + ctx.warmup, t0 + ctx.warmup + ctx.duration);
    measure.set_window(start, end);
    let sampler_at = tokio::time::sleep_until(start.into());
    let pacer = Pacer {
        targets,
        channels: setup.clone(),
        rate: args.rate,
        max_in_flight: args.max_in_flight,
        key_prefix: format!("{prefix}-k"),
    }
    .spawn(t0, end, measure.clone(), stats.clone(), storm_flag.clone());

    // Login storms, from their own connection, evenly spread over the window.
    let logins = Recorder::new(1);
    let storm_task = storm.map(|s| {
        let (logins, flag, s) = (logins.clone(), storm_flag.clone(), s.clone());
        let duration = ctx.duration;
        let server = ctx.server.clone();
        let emails: Vec<String> = subs.iter().map(|u| u.email.clone()).collect();
        tokio::spawn(async move {
            let channel = client::connect(&server, Duration::from_secs(10)).await?;
            let mut failures = 0u64;
            let mut windows = Vec::new();
            for j in 0..s.storms {
                let at = start + duration.mul_f64((j as f64 + 0.5) / s.storms as f64)
                    - Duration::from_millis(300);
                tokio::time::sleep_until(at.into()).await;
                let began = Instant::now();
                flag.store(true, Ordering::SeqCst);
                let results: Vec<_> = futures::future::join_all((0..s.logins).map(|i| {
                    let email = emails[(j * s.logins + i) % emails.len()].clone();
                    let channel = channel.clone();
                    async move { client::login(channel, &email).await }
                }))
                .await;
                flag.store(false, Ordering::SeqCst);
                windows.push(began.elapsed());
                for r in results {
                    match r {
                        Ok(took) => logins.record(0, took),
                        Err(_) => failures += 1,
                    }
                }
            }
            anyhow::Ok((failures, windows))
        })
    });

    sampler_at.await;
    ctx.window_started().await;
    let sampler = Sampler::start(ctx.server_pid);
    pacer.await?;
    let usage = sampler.finish();
    ctx.window_ended().await;
    let acked = stats.acked_measured.load(Ordering::Relaxed);
    let expected = acked * args.subscribers as u64;
    measure.drain(expected, ctx.drain).await;

    let window = measure.window_secs();
    report.add("target rate", args.rate, "msg/s");
    report.add(
        "acked sends/s (measured window)",
        acked as f64 / window,
        "msg/s",
    );
    report.latency("send latency", &stats.latency.summary());
    let delivery = measure.delivery.summary();
    report.latency("delivery latency", &delivery);
    report.add_vs(
        "deliveries/s",
        measure.deliveries_per_sec(),
        "/s",
        ctx.ref_publish_rps,
        "redis PUBLISH rps",
    );
    report.add(
        "delivered / expected",
        if expected == 0 {
            0.0
        } else {
            delivery.count as f64 / expected as f64 * 100.0
        },
        "%",
    );
    report.add("send errors", stats.error_total() as f64, "count");
    report.add(
        "sends skipped (in-flight cap)",
        stats.skipped.load(Ordering::Relaxed) as f64,
        "count",
    );
    report.add("pacer lag p99", stats.lag.summary().p99, "ms");
    report.add(
        "stream errors",
        measure.stream_errors.load(Ordering::Relaxed) as f64,
        "count",
    );
    if let Some(task) = storm_task {
        let (failures, windows) = task.await??;
        let l = logins.summary();
        report.latency("login latency", &l);
        report.add("login failures", failures as f64, "count");
        let storm_secs: f64 = windows.iter().map(Duration::as_secs_f64).sum();
        report.add("time in storms", storm_secs, "s");
        report.latency("send latency during storms", &stats.storm_latency.summary());
        report.latency(
            "delivery latency during storms",
            &measure.storm_delivery.summary(),
        );
    }
    report.usage(&usage);
    report.note(format!(
        "{} chats x {} subscribers ({} user streams, {:?}), {} senders, {} msg/s; load average before: {load}",
        args.chats,
        args.subscribers,
        subs.len(),
        transport,
        args.senders,
        args.rate
    ));
    let errors = stats.error_text();
    if !errors.is_empty() {
        report.note(format!("send errors: {errors}"));
    }
    Ok(report)
}
