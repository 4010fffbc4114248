//! Delivered watermarks, saved in batches.
//!
//! Every stream reports what it delivered (chat, user, seq) to one writer
//! task per process. The writer keeps the highest seq per (chat, user) and
//! saves them every [`FLUSH`] in statements of [`CHUNK`], then tells each
//! chat whose watermarks moved (`Receipt`). Before, every stream ran its own
//! 500 ms timer and wrote each of its chats in its own transactions; with a
//! thousand streams that was most of the database's work (see
//! docs/BENCHMARKS.md).
//!
//! A flush is spread out so it does not hold up messages: small statements
//! (on SQLite each one holds the write lock the message committer needs),
//! and a yield to the other tasks before each receipt. A thousand
//! receipts published at once woke ten thousand stream tasks ahead of the
//! next message's, which was most of the delivery latency's p99.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use super::broker::Broker;
use super::event::Event;
use super::hub::Hub;
use crate::store::Store;

/// How long reports are collected before they are saved.
pub const FLUSH: Duration = Duration::from_millis(500);
/// Watermarks saved per statement.
const CHUNK: usize = 32;
/// Reports waiting at most; past that a report is dropped (a watermark is
/// only a hint: the next delivery in that chat reports it again).
const QUEUE: usize = 65_536;

/// The reporting side. Cheap to clone.
#[derive(Clone)]
pub struct Delivered {
    tx: mpsc::Sender<(String, String, i64)>,
}

impl Delivered {
    /// Starts the writer; it ends when every handle is dropped, after saving
    /// what it still holds.
    pub(super) fn start(store: Store, hub: Hub, broker: Option<Broker>) -> Delivered {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, Saver { store, hub, broker }));
        Delivered { tx }
    }

    /// `user_id` received `seq` of `chat_id`. Never waits.
    pub fn report(&self, chat_id: &str, user_id: &str, seq: i64) {
        let _ = self
            .tx
            .try_send((chat_id.to_owned(), user_id.to_owned(), seq));
    }
}

struct Saver {
    store: Store,
    hub: Hub,
    broker: Option<Broker>,
}

async fn run(mut rx: mpsc::Receiver<(String, String, i64)>, saver: Saver) {
    let mut pending: HashMap<(String, String), i64> = HashMap::new();
    let mut buf = Vec::with_capacity(1024);
    loop {
        if rx.recv_many(&mut buf, 1024).await == 0 {
            break;
        }
        let deadline = tokio::time::Instant::now() + FLUSH;
        let mut closed = false;
        loop {
            for (chat_id, user_id, seq) in buf.drain(..) {
                let e = pending.entry((chat_id, user_id)).or_insert(seq);
                *e = (*e).max(seq);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                n = rx.recv_many(&mut buf, 1024) => if n == 0 { closed = true; break },
            }
        }
        save(&saver, &mut pending).await;
        if closed {
            break;
        }
    }
    save(&saver, &mut pending).await;
}

async fn save(saver: &Saver, pending: &mut HashMap<(String, String), i64>) {
    if pending.is_empty() {
        return;
    }
    let marks: Vec<(String, String, i64)> = pending
        .drain()
        .map(|((chat_id, user_id), seq)| (chat_id, user_id, seq))
        .collect();
    for chunk in marks.chunks(CHUNK) {
        let moved = match saver.store.raise_delivered_many(chunk).await {
            Ok(moved) => moved,
            Err(e) => {
                tracing::warn!(error = %e, marks = chunk.len(), "could not save delivered watermarks");
                continue;
            }
        };
        for m in moved {
            // Lets the streams this receipt woke (and any message) run
            // before the next one wakes more.
            tokio::task::yield_now().await;
            super::publish(
                &saver.hub,
                saver.broker.as_ref(),
                Event::Receipt {
                    chat_id: m.chat_id,
                    user_id: m.user_id,
                    delivered_seq: m.delivered_seq,
                    read_seq: m.read_seq,
                },
            );
        }
        tokio::task::yield_now().await;
    }
}
