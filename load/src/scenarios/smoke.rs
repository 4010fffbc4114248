//! `smoke`: a few seconds, for CI. Two users, a direct chat, the receiver
//! reading its user stream natively and over gRPC-Web, the sender sending a
//! few messages. Passes when every send was acknowledged and every message
//! reached both streams; fails (non-zero exit) otherwise.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tidings_proto::messages_service_client::MessagesServiceClient;

use super::{Ctx, Measure, Transport, open_user_streams};
use crate::client;
use crate::stats::Report;

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Messages to send.
    #[arg(long, default_value_t = 20)]
    pub messages: u64,
    /// Messages per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
}

/// The report, and whether the run passed.
pub async fn run(ctx: &Ctx, args: &Args) -> anyhow::Result<(Report, bool)> {
    let mut report = Report::new("smoke", &ctx.label);
    let channel = client::connect(&ctx.server, ctx.connect_timeout).await?;
    let users = client::create_users(
        std::slice::from_ref(&channel),
        &format!("s{}u", ctx.run_id),
        2,
        2,
    )
    .await?;
    let (alice, bob) = (&users[0], &users[1]);
    let chat = client::direct_chat(channel.clone(), alice, bob).await?;

    let native = Measure::new();
    let web = Measure::new();
    open_user_streams(ctx, std::slice::from_ref(bob), Transport::Native, &native).await?;
    open_user_streams(ctx, std::slice::from_ref(bob), Transport::Web, &web).await?;
    let start = Instant::now();
    let far = start + Duration::from_secs(3600);
    native.set_window(start, far);
    web.set_window(start, far);

    let mut messages = MessagesServiceClient::new(channel.clone());
    let period = Duration::from_secs_f64(1.0 / args.rate.max(0.1));
    let mut acked = 0u64;
    let mut failures = Vec::new();
    for i in 0..args.messages {
        let sent = client::now_ns();
        match client::send(
            &mut messages,
            alice,
            &chat,
            client::stamp(sent, 0),
            format!("smoke-{i}"),
        )
        .await
        {
            Ok(_) => acked += 1,
            Err(s) => failures.push(format!("{:?} {}", s.code(), s.message())),
        }
        tokio::time::sleep(period).await;
    }
    native.drain(acked, Duration::from_secs(10)).await;
    web.drain(acked, Duration::from_secs(10)).await;

    let (n, w) = (native.delivery.count(), web.delivery.count());
    report.add("sent", args.messages as f64, "count");
    report.add("acknowledged", acked as f64, "count");
    report.add("delivered, native user stream", n as f64, "count");
    report.add("delivered, gRPC-Web user stream", w as f64, "count");
    report.latency("delivery latency (native)", &native.delivery.summary());
    let stream_errors =
        native.stream_errors.load(Ordering::Relaxed) + web.stream_errors.load(Ordering::Relaxed);
    report.add("stream errors", stream_errors as f64, "count");
    if let Some(f) = failures.first() {
        report.note(format!("{} sends failed; first: {f}", failures.len()));
    }
    let passed = args.messages > 0
        && acked == args.messages
        && n == acked
        && w == acked
        && stream_errors == 0;
    report.note(if passed {
        "PASS: every message was acknowledged and reached both streams".to_owned()
    } else {
        format!(
            "FAIL: {acked}/{} acknowledged, {n} native and {w} gRPC-Web deliveries",
            args.messages
        )
    });
    Ok((report, passed))
}
