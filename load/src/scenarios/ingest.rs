//! `ingest`: C concurrent senders, each sending the next message as soon as
//! the previous one is acknowledged (closed loop); acknowledged, persisted
//! sends per second. Each sender has its own direct chat (with one shared
//! peer), so the figure is the server's, not one chat row's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tidings_proto::ListMessagesRequest;
use tidings_proto::messages_service_client::MessagesServiceClient;

use super::{Ctx, SendStats};
use crate::client::{self, authed};
use crate::stats::{Report, Sampler, load_average};

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Concurrent senders.
    #[arg(long, default_value_t = 64)]
    pub senders: usize,
    /// HTTP/2 connections the senders share.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Send without an idempotency key (by default every send has one, as
    /// real clients do).
    #[arg(long)]
    pub no_keys: bool,
}

pub async fn run(ctx: &Ctx, args: &Args) -> anyhow::Result<Report> {
    let mut report = Report::new("ingest", &ctx.label);
    let channels = client::connect_many(&ctx.server, args.connections.max(1)).await?;
    let prefix = format!("g{}", ctx.run_id);
    let mut users =
        client::create_users(&channels, &format!("{prefix}u"), args.senders + 1, 16).await?;
    let peer = users.remove(0);
    let chats: Vec<anyhow::Result<String>> = futures::stream::iter(users.iter().enumerate())
        .map(|(i, u)| client::direct_chat(channels[i % channels.len()].clone(), u, &peer))
        .buffered(16)
        .collect()
        .await;
    let chats = chats.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

    let load = load_average();
    let stats = SendStats::new();
    let acked_all = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let (start, end) = (t0 + ctx.warmup, t0 + ctx.warmup + ctx.duration);
    let tasks: Vec<_> = users
        .iter()
        .zip(&chats)
        .enumerate()
        .map(|(i, (user, chat))| {
            let mut client = MessagesServiceClient::new(channels[i % channels.len()].clone());
            let (user, chat) = (user.clone(), chat.clone());
            let (stats, acked_all) = (stats.clone(), acked_all.clone());
            let keys = !args.no_keys;
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < end {
                    let began = Instant::now();
                    let key = if keys {
                        format!("{i}-{n}")
                    } else {
                        String::new()
                    };
                    let content = client::stamp(client::now_ns(), 0);
                    let result = client::send(&mut client, &user, &chat, content, key).await;
                    n += 1;
                    match result {
                        Ok(_) => {
                            acked_all.fetch_add(1, Ordering::Relaxed);
                            if began >= start && began < end {
                                stats.acked_measured.fetch_add(1, Ordering::Relaxed);
                                stats.latency.record(i, began.elapsed());
                            }
                        }
                        Err(status) => {
                            stats.error(status.code());
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep_until(start.into()).await;
    ctx.window_started().await;
    let sampler = Sampler::start(ctx.server_pid);
    for t in tasks {
        t.await?;
    }
    let usage = sampler.finish();
    ctx.window_ended().await;

    // Persisted: the chats' message counts add up to the acknowledged sends.
    let totals: Vec<anyhow::Result<i64>> = futures::stream::iter(users.iter().zip(&chats))
        .map(|(u, chat)| {
            let mut client = MessagesServiceClient::new(channels[0].clone());
            async move {
                let r = client
                    .list_messages(authed(
                        ListMessagesRequest {
                            chat_id: chat.clone(),
                            limit: 1,
                            ..Default::default()
                        },
                        u,
                    ))
                    .await?;
                anyhow::Ok(i64::from(r.into_inner().total))
            }
        })
        .buffered(16)
        .collect()
        .await;
    let stored: i64 = totals
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?
        .iter()
        .sum();
    let acked = acked_all.load(Ordering::Relaxed);

    let measured = stats.acked_measured.load(Ordering::Relaxed);
    let secs = ctx.duration.as_secs_f64();
    report.add("senders", args.senders as f64, "count");
    report.add_vs(
        "acked sends/s",
        measured as f64 / secs,
        "msg/s",
        ctx.ref_pgbench_tps,
        "pgbench insert tps",
    );
    report.latency("send latency", &stats.latency.summary());
    report.add("send errors", stats.error_total() as f64, "count");
    report.add("acked (whole run)", acked as f64, "count");
    report.add("stored (ListMessages totals)", stored as f64, "count");
    report.usage(&usage);
    report.note(format!(
        "{} closed-loop senders, one direct chat each, {} connections, idempotency keys {}; load average before: {load}",
        args.senders,
        args.connections,
        if args.no_keys { "off" } else { "on" }
    ));
    let errors = stats.error_text();
    if !errors.is_empty() {
        report.note(format!("send errors: {errors}"));
    }
    if stored != acked as i64 {
        report.note(format!(
            "MISMATCH: {acked} sends acknowledged but {stored} messages stored"
        ));
    }
    Ok(report)
}
