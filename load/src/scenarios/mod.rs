//! The scenarios, and what they share: the measured window, the paced
//! (open-loop) sender, and the subscriber read loops.

pub mod fanout;
pub mod idle;
pub mod ingest;
pub mod latency;
pub mod smoke;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tidings_proto::messages_service_client::MessagesServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::client::{self, LiteChatMessage, LiteEvent, Seen, User};
use crate::stats::Recorder;
use crate::web::WebStream;

/// What every scenario gets from the command line.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub server: String,
    pub server_pid: Option<u32>,
    pub duration: Duration,
    pub warmup: Duration,
    pub drain: Duration,
    pub label: String,
    pub ref_pgbench_tps: Option<f64>,
    pub ref_publish_rps: Option<f64>,
    pub connect_timeout: Duration,
    /// Makes this run's user names unique.
    pub run_id: String,
    /// Shell commands run when the measured window starts and ends (e.g. to
    /// switch a profiler's collection on and off).
    pub at_start: Option<String>,
    pub at_end: Option<String>,
}

impl Ctx {
    /// Runs the `--at-start` hook, if any, and waits for it.
    pub async fn window_started(&self) {
        run_hook(self.at_start.as_deref()).await;
    }

    /// Runs the `--at-end` hook, if any, and waits for it.
    pub async fn window_ended(&self) {
        run_hook(self.at_end.as_deref()).await;
    }
}

async fn run_hook(command: Option<&str>) {
    let Some(command) = command else { return };
    let command = command.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .status()
    })
    .await;
    match result {
        Ok(Ok(status)) if status.success() => {}
        other => eprintln!("hook failed: {other:?}"),
    }
}

/// Shards of the delivery histograms (one lock each).
const SHARDS: usize = 64;

/// Tag of a message sent while a login storm was running.
pub const TAG_STORM: u32 = 1;

/// The delivery side of a measured run: which send times count, and the
/// end-to-end latency of each delivery of such a message.
pub struct Measure {
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    pub delivery: Arc<Recorder>,
    pub storm_delivery: Arc<Recorder>,
    /// Deliveries of stamped messages, measured or not.
    pub all: AtomicU64,
    pub stream_errors: AtomicU64,
}

impl Measure {
    pub fn new() -> Arc<Measure> {
        Arc::new(Measure {
            start_ns: AtomicU64::new(u64::MAX),
            end_ns: AtomicU64::new(u64::MAX),
            delivery: Recorder::new(SHARDS),
            storm_delivery: Recorder::new(SHARDS),
            all: AtomicU64::new(0),
            stream_errors: AtomicU64::new(0),
        })
    }

    /// Messages sent in `[start, end)` are the measured ones.
    pub fn set_window(&self, start: Instant, end: Instant) {
        self.start_ns.store(client::ns_of(start), Ordering::SeqCst);
        self.end_ns.store(client::ns_of(end), Ordering::SeqCst);
    }

    pub fn contains(&self, sent_ns: u64) -> bool {
        sent_ns >= self.start_ns.load(Ordering::Relaxed)
            && sent_ns < self.end_ns.load(Ordering::Relaxed)
    }

    pub fn window_start_ns(&self) -> u64 {
        self.start_ns.load(Ordering::Relaxed)
    }

    pub fn window_secs(&self) -> f64 {
        let (s, e) = (
            self.start_ns.load(Ordering::Relaxed),
            self.end_ns.load(Ordering::Relaxed),
        );
        e.saturating_sub(s) as f64 / 1e9
    }

    /// A subscriber saw a frame.
    pub fn seen(&self, shard: usize, seen: Seen) {
        let Seen::Message(Some((sent, tag))) = seen else {
            return;
        };
        self.all.fetch_add(1, Ordering::Relaxed);
        if !self.contains(sent) {
            return;
        }
        let now = client::now_ns();
        let latency = Duration::from_nanos(now.saturating_sub(sent));
        self.delivery.record_at(shard, latency, now);
        if tag == TAG_STORM {
            self.storm_delivery.record(shard, latency);
        }
    }

    /// Measured deliveries per second: their count over the time from the
    /// window's start to the last of them (at least the window).
    pub fn deliveries_per_sec(&self) -> f64 {
        let count = self.delivery.count();
        let span = self
            .delivery
            .last_ns()
            .saturating_sub(self.window_start_ns()) as f64
            / 1e9;
        count as f64 / span.max(self.window_secs()).max(1e-9)
    }

    /// Waits until `expected` measured deliveries arrived, or `timeout`.
    pub async fn drain(&self, expected: u64, timeout: Duration) {
        let until = Instant::now() + timeout;
        while self.delivery.count() < expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The sending side of a paced run.
pub struct SendStats {
    pub latency: Arc<Recorder>,
    pub storm_latency: Arc<Recorder>,
    /// How late the pacer issued sends (a loaded tool shows here).
    pub lag: Arc<Recorder>,
    pub acked_measured: AtomicU64,
    pub acked: AtomicU64,
    pub skipped: AtomicU64,
    pub errors: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl SendStats {
    pub fn new() -> Arc<SendStats> {
        Arc::new(SendStats {
            latency: Recorder::new(8),
            storm_latency: Recorder::new(8),
            lag: Recorder::new(1),
            acked_measured: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            errors: Default::default(),
        })
    }

    pub fn error(&self, code: Code) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{code:?}"))
            .or_default() += 1;
    }

    pub fn error_total(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    pub fn error_text(&self) -> String {
        let e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        e.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An open-loop sender: `rate` messages a second from `start` until `end`,
/// round-robin over `targets` (a sender and a chat), each send its own task
/// so a slow answer never delays the next send. At most `max_in_flight`
/// sends wait for an answer; past that a send is skipped and counted.
pub struct Pacer {
    pub targets: Vec<(User, String)>,
    pub channels: Vec<Channel>,
    pub rate: f64,
    pub max_in_flight: usize,
    pub key_prefix: String,
}

impl Pacer {
    pub fn spawn(
        self,
        start: Instant,
        end: Instant,
        measure: Arc<Measure>,
        stats: Arc<SendStats>,
        storm: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / self.rate.max(0.001));
            let permits = Arc::new(tokio::sync::Semaphore::new(self.max_in_flight.max(1)));
            let clients: Vec<MessagesServiceClient<Channel>> = self
                .channels
                .iter()
                .map(|c| MessagesServiceClient::new(c.clone()))
                .collect();
            let targets = Arc::new(self.targets);
            let mut k: u64 = 0;
            loop {
                let due = start + period.mul_f64(k as f64);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                // Issue everything that is due (the timer ticks in ms).
                let now = Instant::now();
                let mut next_due = due;
                while next_due <= now && next_due < end {
                    stats.lag.record(0, now - next_due);
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        stats.skipped.fetch_add(1, Ordering::Relaxed);
                        k += 1;
                        next_due = start + period.mul_f64(k as f64);
                        continue;
                    };
                    let i = k as usize;
                    let targets = targets.clone();
                    let mut client = clients[i % clients.len()].clone();
                    let (measure, stats) = (measure.clone(), stats.clone());
                    let tag = if storm.load(Ordering::Relaxed) {
                        TAG_STORM
                    } else {
                        0
                    };
                    let key = format!("{}-{k}", self.key_prefix);
                    tokio::spawn(async move {
                        let (user, chat_id) = &targets[i % targets.len()];
                        let sent = client::now_ns();
                        let result =
                            client::send(&mut client, user, chat_id, client::stamp(sent, tag), key)
                                .await;
                        let took = Duration::from_nanos(client::now_ns() - sent);
                        match result {
                            Ok(_) => {
                                stats.acked.fetch_add(1, Ordering::Relaxed);
                                if measure.contains(sent) {
                                    stats.acked_measured.fetch_add(1, Ordering::Relaxed);
                                    stats.latency.record(i, took);
                                    if tag == TAG_STORM {
                                        stats.storm_latency.record(i, took);
                                    }
                                }
                            }
                            Err(status) => stats.error(status.code()),
                        }
                        drop(permit);
                    });
                    k += 1;
                    next_due = start + period.mul_f64(k as f64);
                }
            }
            // Wait for the answers still in flight.
            let _ = permits.acquire_many(self.max_in_flight.max(1) as u32).await;
        })
    }
}

/// A frame a subscriber reads.
pub trait Frame: prost::Message + Default + Send + 'static {
    fn seen(&self) -> Seen;
}

impl Frame for LiteEvent {
    fn seen(&self) -> Seen {
        LiteEvent::seen(self)
    }
}

impl Frame for LiteChatMessage {
    fn seen(&self) -> Seen {
        LiteChatMessage::seen(self)
    }
}

/// Reads a native stream up to its first frame, which must say it is live.
pub async fn until_connected<T: Frame>(stream: &mut Streaming<T>) -> anyhow::Result<()> {
    loop {
        match stream.message().await? {
            Some(f) => match f.seen() {
                Seen::Connected => return Ok(()),
                Seen::Other => continue,
                Seen::Message(_) => anyhow::bail!("a message before the Connected frame"),
            },
            None => anyhow::bail!("stream ended before it was live"),
        }
    }
}

/// Reads a native stream to its end, recording every delivery.
pub fn spawn_reader<T: Frame>(mut stream: Streaming<T>, measure: Arc<Measure>, shard: usize) {
    tokio::spawn(async move {
        loop {
            match stream.message().await {
                Ok(Some(f)) => measure.seen(shard, f.seen()),
                Ok(None) => break,
                Err(_) => {
                    measure.stream_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    });
}

/// Reads a gRPC-Web stream up to its first frame, which must say it is live.
pub async fn web_until_connected(stream: &mut WebStream) -> anyhow::Result<()> {
    loop {
        match stream.next().await? {
            Some(e) => match e.seen() {
                Seen::Connected => return Ok(()),
                Seen::Other => continue,
                Seen::Message(_) => anyhow::bail!("a message before the Connected frame"),
            },
            None => anyhow::bail!("stream ended before it was live"),
        }
    }
}

/// Reads a gRPC-Web stream to its end, recording every delivery.
pub fn spawn_web_reader(mut stream: WebStream, measure: Arc<Measure>, shard: usize) {
    tokio::spawn(async move {
        loop {
            match stream.next().await {
                Ok(Some(e)) => measure.seen(shard, e.seen()),
                Ok(None) => break,
                Err(_) => {
                    measure.stream_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    });
}

/// How user streams are opened: natively (HTTP/2, many per connection) or
/// as a browser would (gRPC-Web, one HTTP/1.1 connection each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Native,
    Web,
}

/// Opens a user stream for each of `users` and starts reading it; returns
/// once every one of them is live.
pub async fn open_user_streams(
    ctx: &Ctx,
    users: &[User],
    transport: Transport,
    measure: &Arc<Measure>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    match transport {
        Transport::Native => {
            let n_conn = users.len().div_ceil(client::STREAMS_PER_CONNECTION);
            let channels = client::connect_many(&ctx.server, n_conn).await?;
            let opened: Vec<anyhow::Result<()>> = futures::stream::iter(users.iter().enumerate())
                .map(|(i, user)| {
                    let channel = channels[i % channels.len()].clone();
                    let measure = measure.clone();
                    async move {
                        let mut s = client::subscribe_user(channel, user).await?;
                        until_connected(&mut s).await?;
                        spawn_reader(s, measure, i);
                        Ok(())
                    }
                })
                .buffer_unordered(128)
                .collect()
                .await;
            opened.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        }
        Transport::Web => {
            let authority = crate::web::authority(&ctx.server)?;
            let opened: Vec<anyhow::Result<()>> = futures::stream::iter(users.iter().enumerate())
                .map(|(i, user)| {
                    let measure = measure.clone();
                    let authority = authority.clone();
                    async move {
                        let mut s = crate::web::subscribe_user(&authority, user).await?;
                        web_until_connected(&mut s).await?;
                        spawn_web_reader(s, measure, i);
                        Ok(())
                    }
                })
                .buffer_unordered(64)
                .collect()
                .await;
            opened.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        }
    }
    Ok(started.elapsed())
}
