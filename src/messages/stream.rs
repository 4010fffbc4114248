//! The per-chat live stream behind SubscribeToChat.
//!
//! Order of operations, so nothing falls between storage and the hub:
//! 1. subscribe to the hub (live from here on);
//! 2. read the chat's last seq; replay `(after_seq, last_seq]` from storage
//!    if the client asked to resume;
//! 3. forward live events through the [`SeqTracker`]: duplicates are
//!    skipped, gaps are filled from storage, a lagging receiver (or a
//!    resync) catches up from storage and goes on live.
//!
//! The stream ends when the client goes away, when its token expires
//! (UNAUTHENTICATED), or when the server shuts down (UNAVAILABLE, so the
//! client reconnects and resumes from its last seq).

use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{MessageService, Status};
use crate::error::{AppError, AppResult};
use crate::realtime::event::{Event, MessageEvent, Topic};
use crate::realtime::history::History;
use crate::realtime::order::{Decision, SeqTracker};

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

/// Frames buffered per stream before the forwarder waits for the client.
const BUFFER: usize = 64;

pub(super) async fn open(
    service: MessageService,
    user_id: String,
    chat_id: String,
    after_seq: i64,
    expires_at: SystemTime,
    shutdown: CancellationToken,
) -> AppResult<ChatStream> {
    let realtime = service.realtime().clone();
    let mut subscription = realtime.hub.subscribe(Topic::Chat(chat_id.clone()));
    let chat = service
        .store()
        .chat_by_id(&chat_id)
        .await?
        .ok_or(AppError::NotFound("chat"))?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let live_from = chat.last_seq + 1;
    let mut forwarder = Forwarder {
        history: History::new(service.store().clone()),
        chat_id,
        tracker: SeqTracker::after(if after_seq > 0 {
            after_seq.min(chat.last_seq)
        } else {
            chat.last_seq
        }),
        deliveries: crate::metrics::Deliveries::new(),
        tx,
    };
    tokio::spawn(async move {
        let _gauge = crate::metrics::StreamGauge::open("chat");
        Box::pin(realtime.stream_opened(&user_id)).await;
        // One timer for the token's expiry, not one per loop turn.
        let expiry = tokio::time::sleep_until(crate::realtime::user_stream::deadline(expires_at));
        tokio::pin!(expiry);
        let end: Result<(), Stop> = async {
            forwarder
                .emit(StreamItem::Connected {
                    chat_id: forwarder.chat_id.clone(),
                })
                .await?;
            forwarder.catch_up(live_from).await?;
            loop {
                let event = tokio::select! {
                    biased;
                    _ = forwarder.tx.closed() => return Err(Stop::Gone),
                    _ = shutdown.cancelled() => {
                        return Err(Stop::Error(AppError::Unavailable(anyhow::anyhow!("server shutting down"))))
                    }
                    _ = &mut expiry => {
                        return Err(Stop::Error(AppError::Unauthenticated("token expired".into())))
                    }
                    event = subscription.recv() => event,
                };
                match event {
                    Ok(event) => forwarder.on_event(&event).await?,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        realtime.hub.note_lag();
                        metrics::counter!(crate::metrics::STREAM_LAGS).increment(1);
                        tracing::debug!(chat_id = %forwarder.chat_id, missed, "stream lagged; catching up from storage");
                        forwarder.catch_up(i64::MAX).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
        .await;
        drop(subscription);
        if let Err(Stop::Error(err)) = end {
            let _ = forwarder.tx.send(Err(err)).await;
        }
        Box::pin(realtime.stream_closed(&user_id)).await;
    });
    Ok(rx)
}

/// Why a stream stopped early.
pub(crate) enum Stop {
    /// The client went away: nothing to tell it.
    Gone,
    Error(AppError),
}

impl From<crate::store::StoreError> for Stop {
    fn from(e: crate::store::StoreError) -> Self {
        Stop::Error(e.into())
    }
}

struct Forwarder {
    history: History,
    chat_id: String,
    tracker: SeqTracker,
    deliveries: crate::metrics::Deliveries,
    tx: mpsc::Sender<AppResult<StreamItem>>,
}

impl Forwarder {
    async fn emit(&self, item: StreamItem) -> Result<(), Stop> {
        self.tx.send(Ok(item)).await.map_err(|_| Stop::Gone)
    }

    async fn on_event(&mut self, event: &Event) -> Result<(), Stop> {
        match event {
            Event::Message(m) => {
                match self.tracker.decide(m.seq) {
                    Decision::Skip => return Ok(()),
                    Decision::Deliver => {}
                    Decision::Fill { to, .. } => self.catch_up(to).await?,
                }
                // If storage could not fill the gap (it always can: seqs are
                // committed in order), deliver anyway rather than hold back.
                if self.tracker.decide(m.seq) != Decision::Skip {
                    self.send(m.clone(), Status::Sent).await?;
                    self.deliveries.record(m.created_at, true);
                }
                Ok(())
            }
            Event::Resync { .. } => self.catch_up(i64::MAX).await,
            // The original contract's stream carries messages only.
            _ => Ok(()),
        }
    }

    /// Sends every stored message from the tracker's next seq up to (not
    /// including) `until`.
    /// Boxed, so the stream's long-lived future stays small (see the user
    /// stream's `Forwarder`).
    fn catch_up(&mut self, until: i64) -> BoxFuture<'_, Result<(), Stop>> {
        Box::pin(async move {
            while self.tracker.next() < until {
                let page = self
                    .history
                    .page(&self.chat_id, self.tracker.next(), until)
                    .await?;
                if page.is_empty() {
                    return Ok(());
                }
                metrics::counter!(crate::metrics::GAP_FILLS).increment(1);
                for (message, status) in page {
                    if self.tracker.decide(message.seq) != Decision::Skip {
                        self.deliveries.record(message.created_at, false);
                        self.send(Arc::new(message), status).await?;
                    }
                }
            }
            Ok(())
        })
    }

    async fn send(&mut self, message: Arc<MessageEvent>, status: Status) -> Result<(), Stop> {
        let seq = message.seq;
        self.emit(StreamItem::Message { message, status }).await?;
        self.tracker.delivered(seq);
        Ok(())
    }
}
