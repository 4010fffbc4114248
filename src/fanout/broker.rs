//! The cross-node bridge: carries hub events between nodes over Redis pub/sub.
//!
//! Every node publishes what it originates on one channel and subscribes to
//! it, handing other nodes' events to its local hub. Redis pub/sub is
//! at-most-once and unordered across publishers, which is fine: streams order
//! by seq and fill gaps from storage. What it cannot tell a stream is that
//! the *last* events were lost, so whenever this bridge may have missed
//! something (its subscription broke, or its own publishes failed) every
//! local chat stream is told to re-read storage (`Hub::resync_all`), and the
//! other nodes are told to do the same.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Hub;
use super::event::Event;

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The node that published it; a node ignores its own events (its local
    /// hub already had them).
    origin: String,
    /// `None`: "I may have lost events: everyone re-read storage".
    event: Option<Event>,
}

/// Queued events waiting to be published. When full (Redis slow or down),
/// events are dropped and a resync is announced once Redis answers again.
const QUEUE: usize = 65_536;
/// Events published per Redis round trip at most.
const BATCH: usize = 256;

#[derive(Clone)]
pub struct Broker {
    tx: mpsc::Sender<Arc<Event>>,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl Broker {
    /// Subscribes (waiting until the subscription is live, so events from
    /// other nodes reach this node's streams from the moment it serves) and
    /// starts the publisher and subscriber tasks.
    pub async fn start(
        url: &str,
        pool: deadpool_redis::Pool,
        prefix: &str,
        node_id: String,
        hub: Hub,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Broker> {
        let channel = format!("{prefix}events");
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&channel).await?;

        let (tx, rx) = mpsc::channel(QUEUE);
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(publish_loop(
            rx,
            pool,
            channel.clone(),
            node_id.clone(),
            lost.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(subscribe_loop(
            client, pubsub, channel, node_id, hub, shutdown,
        ));
        Ok(Broker { tx, lost })
    }

    /// Queues an event for the other nodes. Never waits.
    pub fn forward(&self, event: Arc<Event>) {
        if matches!(*event, Event::Resync { .. } | Event::BlocksOf { .. }) {
            return;
        }
        if self.tx.try_send(event).is_err() {
            self.lost.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

async fn publish_loop(
    mut rx: mpsc::Receiver<Arc<Event>>,
    pool: deadpool_redis::Pool,
    channel: String,
    origin: String,
    lost: Arc<std::sync::atomic::AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<Arc<Event>> = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
        }
        let mut payloads: Vec<Vec<u8>> = Vec::with_capacity(batch.len() + 1);
        if lost.swap(false, std::sync::atomic::Ordering::Relaxed) {
            payloads.push(encode(&origin, None));
        }
        payloads.extend(batch.iter().map(|e| encode(&origin, Some(e))));
        let result: redis::RedisResult<()> = async {
            let mut conn = pool.get().await.map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Io, "redis pool", e.to_string()))
            })?;
            let mut pipe = redis::pipe();
            for p in &payloads {
                pipe.cmd("PUBLISH").arg(&channel).arg(p).ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, dropped = payloads.len(), "cross-node publish failed; other nodes will resync");
            lost.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn encode(origin: &str, event: Option<&Arc<Event>>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        origin: &'a str,
        event: Option<&'a Event>,
    }
    serde_json::to_vec(&Out {
        origin,
        event: event.map(|e| &**e),
    })
    .unwrap_or_default()
}

async fn subscribe_loop(
    client: redis::Client,
    first: redis::aio::PubSub,
    channel: String,
    node_id: String,
    hub: Hub,
    shutdown: CancellationToken,
) {
    let mut pubsub = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut current = match pubsub.take() {
            Some(p) => p,
            None => {
                let connected = async {
                    let mut p = client.get_async_pubsub().await?;
                    p.subscribe(&channel).await?;
                    redis::RedisResult::Ok(p)
                };
                let result = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = connected => r,
                };
                match result {
                    Ok(p) => {
                        tracing::info!("cross-node subscription restored; resyncing streams");
                        backoff = Duration::from_millis(100);
                        // Anything published while we were away is in storage.
                        hub.resync_all();
                        p
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, ?backoff, "cross-node subscription failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
        };
        let mut messages = current.on_message();
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = messages.next() => m,
            };
            let Some(msg) = msg else { break };
            match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                Ok(env) if env.origin == node_id => {}
                Ok(Envelope {
                    event: Some(event), ..
                }) => {
                    hub.publish(Arc::new(event));
                }
                Ok(Envelope { event: None, .. }) => hub.resync_all(),
                Err(e) => tracing::warn!(error = %e, "undecodable cross-node event"),
            }
        }
        tracing::warn!("cross-node subscription lost; reconnecting");
    }
}
