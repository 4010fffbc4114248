//! One chat's messages, live: the original contract's SubscribeToChat.
//!
//! Order of operations, so nothing falls between storage and the hub:
//! 1. subscribe to the hub (live from here on);
//! 2. read the chat's last seq; replay `(after_seq, last_seq]` from storage
//!    if the client asked to resume;
//! 3. forward live events through the chat's [`ChatCursor`].
//!
//! The stream ends as every stream does ([`super::Lifetime`]); on shutdown
//! with UNAVAILABLE, so the client reconnects and resumes from its last seq.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::cursor::{Backfill, ChatCursor, Deliver};
use super::{Lifetime, Stop, Streams};
use crate::domain::{AppError, AppResult, Status};
use crate::fanout::{ChangeEvent, Event, MessageEvent, Topic};
use crate::services::blocks::BlockService;

/// One item a chat stream yields.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// The subscription is live: anything sent after this is delivered.
    Connected { chat_id: String },
    Message {
        /// Shared with every other stream delivering it.
        message: Arc<MessageEvent>,
        status: Status,
    },
}

/// The receiving end of a chat stream; dropping it ends the stream.
pub type ChatStream = mpsc::Receiver<AppResult<StreamItem>>;

/// Frames buffered per stream before it waits for the client.
const BUFFER: usize = 64;

struct Out {
    tx: mpsc::Sender<AppResult<StreamItem>>,
    user_id: String,
    /// Read per message (a cache look-up), so a block applies at once.
    blocks: BlockService,
}

impl Out {
    async fn emit(&self, item: StreamItem) -> Result<(), Stop> {
        self.tx.send(Ok(item)).await.map_err(|_| Stop::Gone)
    }
}

impl Deliver for Out {
    async fn deliver(&mut self, message: Arc<MessageEvent>, status: Status) -> Result<(), Stop> {
        let blocks = self.blocks.set(&self.user_id).await.map_err(Stop::Error)?;
        let message = if blocks.would_redact(&message.message, None) {
            let mut copy = (*message).clone();
            blocks.redact(&mut copy.message, None);
            Arc::new(copy)
        } else {
            message
        };
        self.emit(StreamItem::Message { message, status }).await
    }

    /// The original contract's stream carries messages only (its cursor
    /// follows no changes, so this is never called).
    async fn deliver_change(&mut self, _: Arc<ChangeEvent>) -> Result<(), Stop> {
        Ok(())
    }
}

pub(super) async fn open(
    streams: &Streams,
    user_id: String,
    chat_id: String,
    after_seq: i64,
    grant: super::Grant,
) -> AppResult<ChatStream> {
    let fanout = streams.fanout.clone();
    let mut subscription = fanout.hub.subscribe(Topic::Chat(chat_id.clone()));
    let chat = streams
        .store
        .chat_by_id(&chat_id)
        .await?
        .ok_or(AppError::NotFound("chat"))?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let live_from = chat.last_seq + 1;
    let start = if after_seq > 0 {
        after_seq.min(chat.last_seq)
    } else {
        chat.last_seq
    };
    let mut cursor = ChatCursor::after(chat_id, start);
    let mut backfill = Backfill::new(streams.store.clone());
    let mut out = Out {
        tx,
        user_id: user_id.clone(),
        blocks: streams.blocks.clone(),
    };
    let mut lifetime = Lifetime::new(streams.shutdown.clone(), grant);
    tokio::spawn(async move {
        let _gauge = crate::metrics::StreamGauge::open("chat");
        Box::pin(fanout.stream_opened(&user_id)).await;
        let end: Result<(), Stop> = async {
            out.emit(StreamItem::Connected {
                chat_id: cursor.chat_id().to_owned(),
            })
            .await?;
            cursor.catch_up(live_from, &mut backfill, &mut out).await?;
            loop {
                let event = tokio::select! {
                    biased;
                    stop = lifetime.ended(&out.tx) => return Err(stop),
                    event = subscription.recv() => event,
                };
                match event {
                    Ok(event) => match &*event {
                        Event::Message(m) => cursor.live(m, &mut backfill, &mut out).await?,
                        Event::Resync { .. } => {
                            cursor.catch_up(i64::MAX, &mut backfill, &mut out).await?
                        }
                        // The original contract's stream carries messages only.
                        _ => {}
                    },
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        fanout.hub.note_lag();
                        metrics::counter!(crate::metrics::STREAM_LAGS).increment(1);
                        tracing::debug!(chat_id = %cursor.chat_id(), missed, "stream lagged; catching up from storage");
                        cursor.catch_up(i64::MAX, &mut backfill, &mut out).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
        .await;
        drop(subscription);
        if let Err(Stop::Error(err)) = end {
            let _ = out.tx.send(Err(err)).await;
        }
        Box::pin(fanout.stream_closed(&user_id)).await;
    });
    Ok(rx)
}
