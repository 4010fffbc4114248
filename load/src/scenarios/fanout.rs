//! `fanout`: one group chat, many live subscriptions over ~50 HTTP/2
//! connections, a steady message rate; deliveries per second and delivery
//! latency.
//!
//! A group has at most 256 members, so the subscriptions are spread over
//! the members: each member opens `--per-user` streams (many tabs and
//! devices of one person). By default they are `SubscribeToChat` streams of
//! the chat; `--stream user` opens `EventsService.Subscribe` user streams
//! instead (the browser's stream, which also saves delivered watermarks and
//! sends receipts, so it costs the server more).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::{Ctx, Measure, Pacer, SendStats, spawn_reader, until_connected};
use crate::client::{self, User};
use crate::stats::{Report, Sampler, load_average};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamKind {
    /// MessagesService.SubscribeToChat (per-chat stream).
    Chat,
    /// EventsService.Subscribe (per-user stream of all chats).
    User,
}

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Live subscriptions to the one chat.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Streams each member opens (members = subscribers / per-user, at most
    /// 255 besides the sender).
    #[arg(long, default_value_t = 50)]
    pub per_user: usize,
    /// HTTP/2 connections the streams share (raised to keep each under the
    /// server's 200 concurrent streams per connection).
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Messages per second into the chat.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    #[arg(long, value_enum, default_value_t = StreamKind::Chat)]
    pub stream: StreamKind,
}

pub async fn run(ctx: &Ctx, args: &Args) -> anyhow::Result<Report> {
    let mut report = Report::new("fanout", &ctx.label);
    let members = args.subscribers.div_ceil(args.per_user.max(1)).max(1);
    anyhow::ensure!(
        members <= 255,
        "{} subscribers at {} per user need {members} members; a group holds 256 \
         (raise --per-user)",
        args.subscribers,
        args.per_user
    );
    let setup = client::connect_many(&ctx.server, 2).await?;
    let prefix = format!("f{}", ctx.run_id);
    let sender = client::create_users(&setup, &format!("{prefix}s"), 1, 1)
        .await?
        .remove(0);
    let users = client::create_users(&setup, &format!("{prefix}u"), members, 16).await?;
    let member_refs: Vec<&User> = users.iter().collect();
    let chat = client::create_group(setup[0].clone(), &sender, &member_refs, "fanout").await?;

    let n_conn = args
        .connections
        .max(args.subscribers.div_ceil(client::STREAMS_PER_CONNECTION))
        .max(1);
    let channels = client::connect_many(&ctx.server, n_conn).await?;
    let measure = Measure::new();
    let started = Instant::now();
    let opened: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.subscribers)
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            let user = &users[i % users.len()];
            let (measure, chat) = (measure.clone(), chat.clone());
            async move {
                match args.stream {
                    StreamKind::Chat => {
                        let mut s = client::subscribe_chat(channel, user, &chat).await?;
                        until_connected(&mut s).await?;
                        spawn_reader(s, measure, i);
                    }
                    StreamKind::User => {
                        let mut s = client::subscribe_user(channel, user).await?;
                        until_connected(&mut s).await?;
                        spawn_reader(s, measure, i);
                    }
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    opened.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let open_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} {:?} streams of {members} members live over {n_conn} connections in {open_secs:.1}s",
        args.subscribers, args.stream
    );

    let load = load_average();
    let stats = SendStats::new();
    let t0 = Instant::now() + Duration::from_millis(100);
    let (start, end) = (t0 + ctx.warmup, t0 + ctx.warmup + ctx.duration);
    measure.set_window(start, end);
    let pacer = Pacer {
        targets: vec![(sender.clone(), chat.clone())],
        channels: setup.clone(),
        rate: args.rate,
        max_in_flight: 1000,
        key_prefix: format!("{prefix}-k"),
    }
    .spawn(
        t0,
        end,
        measure.clone(),
        stats.clone(),
        Arc::new(AtomicBool::new(false)),
    );
    tokio::time::sleep_until(start.into()).await;
    ctx.window_started().await;
    let sampler = Sampler::start(ctx.server_pid);
    pacer.await?;
    let acked = stats.acked_measured.load(Ordering::Relaxed);
    let expected = acked * args.subscribers as u64;
    measure.drain(expected, ctx.drain).await;
    let usage = sampler.finish();
    ctx.window_ended().await;

    let delivery = measure.delivery.summary();
    report.add("subscriptions", args.subscribers as f64, "count");
    report.add("target rate", args.rate, "msg/s");
    report.add(
        "acked sends/s",
        acked as f64 / measure.window_secs(),
        "msg/s",
    );
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
    report.latency("delivery latency", &delivery);
    report.latency("send latency", &stats.latency.summary());
    report.add("send errors", stats.error_total() as f64, "count");
    report.add(
        "stream errors",
        measure.stream_errors.load(Ordering::Relaxed) as f64,
        "count",
    );
    report.add("time to open all streams", open_secs, "s");
    report.usage(&usage);
    report.note(format!(
        "{} {:?} streams of {members} members (x{} each) over {n_conn} HTTP/2 connections, {} msg/s; load average before: {load}",
        args.subscribers, args.stream, args.per_user, args.rate
    ));
    Ok(report)
}
