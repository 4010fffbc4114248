//! The core every stream runs for each chat it follows: where the client
//! stands in the chat's messages, what to do with a message that arrives
//! live, and catching up from storage.
//!
//! The rule (see [`SeqTracker`]): a live message below the client's next seq
//! is skipped (already delivered, or replayed from storage); the next one is
//! delivered; one past it means a gap (pub/sub reordered or lost something),
//! which is filled from storage first. A lag (the stream fell more than the
//! hub's buffer behind) or a resync (the cross-node bridge may have lost
//! events) catches up to the end of storage. So the hub and the broker may
//! drop events; a stream never does.
//!
//! The chat's change log (edits, deletes, reactions, renames, membership)
//! runs through the same rule with a second tracker, by `change_seq`: a
//! stream that follows changes gets each once, in order, gap-filled from
//! the log.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::Stop;
use super::history::History;
use crate::domain::Status;
use crate::fanout::order::{Decision, SeqTracker};
use crate::fanout::{ChangeEvent, MessageEvent};
use crate::metrics::Deliveries;
use crate::store::Store;

/// How a stream hands a message to its client.
pub trait Deliver: Send {
    /// Sends `message`; the cursor has decided it is the client's next one.
    fn deliver(
        &mut self,
        message: Arc<MessageEvent>,
        status: Status,
    ) -> impl Future<Output = Result<(), Stop>> + Send;

    /// Sends a change; the cursor has decided it is the client's next one.
    fn deliver_change(
        &mut self,
        change: Arc<ChangeEvent>,
    ) -> impl Future<Output = Result<(), Stop>> + Send;
}

/// A stream's reader of history and its delivery counters, shared by its
/// cursors.
pub struct Backfill {
    history: History,
    deliveries: Deliveries,
}

impl Backfill {
    pub fn new(store: Store) -> Backfill {
        Backfill {
            history: History::new(store),
            deliveries: Deliveries::new(),
        }
    }
}

/// Where one stream stands in one chat: in its messages, and (for streams
/// that follow them) in its changes.
pub struct ChatCursor {
    chat_id: String,
    tracker: SeqTracker,
    changes: Option<SeqTracker>,
}

impl ChatCursor {
    /// A cursor for a client that has every message up to `last_seen`, and
    /// no interest in changes.
    pub fn after(chat_id: String, last_seen: i64) -> ChatCursor {
        ChatCursor {
            chat_id,
            tracker: SeqTracker::after(last_seen),
            changes: None,
        }
    }

    /// A cursor for a client that has every message up to `last_seen` and
    /// every change up to `last_change`.
    pub fn with_changes(chat_id: String, last_seen: i64, last_change: i64) -> ChatCursor {
        ChatCursor {
            changes: Some(SeqTracker::after(last_change)),
            ..ChatCursor::after(chat_id, last_seen)
        }
    }

    pub fn chat_id(&self) -> &str {
        &self.chat_id
    }

    /// A message of this chat that arrived live.
    pub async fn live(
        &mut self,
        message: &Arc<MessageEvent>,
        backfill: &mut Backfill,
        out: &mut impl Deliver,
    ) -> Result<(), Stop> {
        match self.tracker.decide(message.seq()) {
            Decision::Skip => return Ok(()),
            Decision::Deliver => {}
            Decision::Fill { to, .. } => self.catch_up(to, backfill, out).await?,
        }
        // If storage could not fill the gap (it always can: seqs are
        // committed in order), deliver anyway rather than hold back.
        if self.tracker.decide(message.seq()) != Decision::Skip {
            backfill.deliveries.record(message.message.created_at, true);
            self.send(message.clone(), Status::Sent, out).await?;
        }
        Ok(())
    }

    /// Delivers every stored message from the client's next seq up to (not
    /// including) `until`; `i64::MAX` for all there is.
    ///
    /// Boxed: a stream's task holds its loop's future for as long as it
    /// lives, and that future is as large as the largest thing it awaits
    /// inline (8,480 bytes per user stream with the storage reads inline,
    /// 2,240 with them boxed, release build). Boxed, a catch-up takes memory
    /// only while it runs.
    pub fn catch_up<'a, D: Deliver>(
        &'a mut self,
        until: i64,
        backfill: &'a mut Backfill,
        out: &'a mut D,
    ) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            while self.tracker.next() < until {
                let page = backfill
                    .history
                    .page(&self.chat_id, self.tracker.next(), until)
                    .await?;
                if page.is_empty() {
                    return Ok(());
                }
                metrics::counter!(crate::metrics::GAP_FILLS).increment(1);
                for (message, status) in page {
                    if self.tracker.decide(message.seq()) != Decision::Skip {
                        backfill
                            .deliveries
                            .record(message.message.created_at, false);
                        self.send(Arc::new(message), status, out).await?;
                    }
                }
            }
            Ok(())
        })
    }

    /// A change of this chat that arrived live (ignored by a cursor that
    /// does not follow changes).
    pub async fn live_change(
        &mut self,
        change: &Arc<ChangeEvent>,
        backfill: &mut Backfill,
        out: &mut impl Deliver,
    ) -> Result<(), Stop> {
        let Some(tracker) = self.changes else {
            return Ok(());
        };
        match tracker.decide(change.change.seq) {
            Decision::Skip => return Ok(()),
            Decision::Deliver => {}
            Decision::Fill { to, .. } => self.catch_up_changes(to, backfill, out).await?,
        }
        if self
            .changes
            .is_some_and(|t| t.decide(change.change.seq) != Decision::Skip)
        {
            self.send_change(change.clone(), out).await?;
        }
        Ok(())
    }

    /// Delivers every logged change from the client's next change up to
    /// (not including) `until`; boxed like [`ChatCursor::catch_up`].
    pub fn catch_up_changes<'a, D: Deliver>(
        &'a mut self,
        until: i64,
        backfill: &'a mut Backfill,
        out: &'a mut D,
    ) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            while let Some(next) = self.changes.map(|t| t.next())
                && next < until
            {
                let page = backfill.history.changes(&self.chat_id, next, until).await?;
                if page.is_empty() {
                    return Ok(());
                }
                metrics::counter!(crate::metrics::GAP_FILLS).increment(1);
                for change in page {
                    if self
                        .changes
                        .is_some_and(|t| t.decide(change.change.seq) != Decision::Skip)
                    {
                        self.send_change(Arc::new(change), out).await?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Catches up messages and changes both, to the end of storage (after a
    /// lag or a resync).
    pub async fn catch_up_all(
        &mut self,
        backfill: &mut Backfill,
        out: &mut impl Deliver,
    ) -> Result<(), Stop> {
        self.catch_up(i64::MAX, backfill, out).await?;
        self.catch_up_changes(i64::MAX, backfill, out).await
    }

    async fn send_change(
        &mut self,
        change: Arc<ChangeEvent>,
        out: &mut impl Deliver,
    ) -> Result<(), Stop> {
        let seq = change.change.seq;
        out.deliver_change(change).await?;
        if let Some(t) = &mut self.changes {
            t.delivered(seq);
        }
        Ok(())
    }

    async fn send(
        &mut self,
        message: Arc<MessageEvent>,
        status: Status,
        out: &mut impl Deliver,
    ) -> Result<(), Stop> {
        let seq = message.seq();
        out.deliver(message, status).await?;
        self.tracker.delivered(seq);
        Ok(())
    }
}
