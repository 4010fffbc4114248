//! Group commit: every send of this process goes through one committer task,
//! which takes whatever sends are queued (up to [`MAX_BATCH`]) and stores
//! them in one transaction ([`Store::append_batch`]). While a batch commits,
//! the next one queues up, so the batch size follows the load: one message
//! when idle, hundreds under load, one commit each.
//!
//! The committer also publishes: it hands each stored message to the hub
//! after the commit, batch after batch, in seq order per chat, so streams
//! receive a chat's messages in order and never see a gap to fill from
//! storage because two sends overtook each other.
//!
//! There can be several committers ([`Committer::start`]'s `shards`), each
//! owning the chats whose id hashes to it: a chat's sends all go through
//! one committer, so the order above holds per chat, and two committers
//! never touch the same chat row. PostgreSQL runs their transactions side
//! by side and folds their commits' WAL flushes together; SQLite has one
//! writer at a time. One committer is the default ([`DEFAULT_SHARDS`]).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::domain::{AppError, AppResult, Quote};
use crate::fanout::{Event, Fanout, MessageEvent};
use crate::idempotency::IdempotencyCache;
use crate::store::messages::{Appended, NewMessage};
use crate::store::{Store, StoreError};

/// Sends stored per transaction at most.
pub const MAX_BATCH: usize = 256;
/// Sends waiting for the committer at most; past that, callers wait.
const QUEUE: usize = 8192;

struct Job {
    new: NewMessage,
    /// The quote it carries when published (see `MessageEvent::quote`).
    quote: Option<Quote>,
    reply: oneshot::Sender<AppResult<Appended>>,
}

/// Committers started by default: one. On SQLite there is one writer at a
/// time; on PostgreSQL four were slower than one on the 2-core benchmark
/// machine (smaller batches, more statements per message, and the cores
/// already full; docs/BENCHMARKS.md), but may pay where the database has
/// cores of its own.
pub const DEFAULT_SHARDS: usize = 1;

/// The handle to this process's committer tasks. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    shards: Arc<[mpsc::Sender<Job>]>,
}

impl Committer {
    /// Starts `shards` committer tasks (at least one); they end when every
    /// handle is dropped. Each records the keys of the messages it stored
    /// in `idempotency`, once per batch.
    pub fn start(
        store: Store,
        fanout: Fanout,
        idempotency: IdempotencyCache,
        shards: usize,
    ) -> Committer {
        let shards = (0..shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(rx, store.clone(), fanout.clone(), idempotency.clone()));
                tx
            })
            .collect();
        Committer { shards }
    }

    /// The committer that owns `chat_id`: the same one for the process's
    /// whole life.
    fn shard(&self, chat_id: &str) -> &mpsc::Sender<Job> {
        &self.shards[shard_of(chat_id, self.shards.len())]
    }

    /// Stores one message with the next batch of its chat's committer and
    /// returns its outcome.
    pub async fn submit(&self, new: NewMessage, quote: Option<Quote>) -> AppResult<Appended> {
        let _pending = Pending::start();
        let (reply, answer) = oneshot::channel();
        self.shard(&new.chat_id)
            .send(Job { new, quote, reply })
            .await
            .map_err(|_| AppError::Unavailable(anyhow::anyhow!("message committer stopped")))?;
        answer
            .await
            .map_err(|_| AppError::Unavailable(anyhow::anyhow!("message committer stopped")))?
    }
}

/// Which of `shards` committers owns `chat_id` (SipHash with fixed keys:
/// the same answer in every process and run).
pub fn shard_of(chat_id: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(chat_id, &mut h);
    (std::hash::Hasher::finish(&h) % shards as u64) as usize
}

/// Counts a send in [`SENDS_PENDING`](crate::metrics::SENDS_PENDING) until
/// it is answered or its caller goes away.
struct Pending;

impl Pending {
    fn start() -> Pending {
        metrics::gauge!(crate::metrics::SENDS_PENDING).increment(1.0);
        Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::SENDS_PENDING).decrement(1.0);
    }
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    store: Store,
    fanout: Fanout,
    idempotency: IdempotencyCache,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut batch: Vec<NewMessage> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        batch.clear();
        batch.extend(jobs.iter().map(|j| j.new.clone()));
        metrics::histogram!(crate::metrics::SEND_BATCH).record(batch.len() as f64);
        match store.append_batch(&batch).await {
            Ok(outcomes) => {
                // Publish everything first (in seq order), then answer.
                for (job, outcome) in jobs.iter().zip(&outcomes) {
                    if let Ok(Appended::Inserted { message, username }) = outcome {
                        metrics::counter!(crate::metrics::MESSAGES).increment(1);
                        fanout.publish(Event::Message(Arc::new(MessageEvent::stored(
                            message.clone(),
                            username.clone(),
                            job.quote.clone(),
                        ))));
                    }
                }
                // The keys of what was stored, for the idempotency cache:
                // one round trip for the batch, off the committer's path
                // (until it lands, a retry is answered from the database).
                let keyed: Vec<(String, String, String)> = outcomes
                    .iter()
                    .flatten()
                    .filter_map(|o| match o {
                        Appended::Inserted { message, .. } => message
                            .idempotency_key
                            .as_ref()
                            .map(|k| (message.sender_id.clone(), k.clone(), message.id.clone())),
                        _ => None,
                    })
                    .collect();
                if !keyed.is_empty() {
                    let idempotency = idempotency.clone();
                    tokio::spawn(async move {
                        let done: Vec<(&str, &str, &str)> = keyed
                            .iter()
                            .map(|(s, k, m)| (s.as_str(), k.as_str(), m.as_str()))
                            .collect();
                        idempotency.complete_many(&done).await;
                    });
                }
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    let _ = job.reply.send(outcome.map_err(AppError::from));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, sends = jobs.len(), "storing a batch of sends failed");
                let unavailable = matches!(err, StoreError::Unavailable(_));
                let text = err.to_string();
                for job in jobs.drain(..) {
                    let e = anyhow::anyhow!("{text}");
                    let _ = job.reply.send(Err(if unavailable {
                        AppError::Unavailable(e)
                    } else {
                        AppError::Internal(e)
                    }));
                }
                // Storage is down: the sends that queued up meanwhile would
                // wait for their own attempt to time out too. Answer them
                // now, so a caller waits at most one acquire timeout.
                if unavailable {
                    while let Ok(job) = rx.try_recv() {
                        let e = anyhow::anyhow!("{text}");
                        let _ = job.reply.send(Err(AppError::Unavailable(e)));
                    }
                }
            }
        }
    }
}
