//! The per-chat live stream behind SubscribeToChat.
//!
//! Order of operations, so nothing falls between storage and the hub:
//! 1. subscribe to the hub (live from here on);
//! 2. read the chat's last seq; replay `(after_seq, last_seq]` from storage
//!    if the client asked to resume;
//! 3. forward live events, keeping `next` = the seq the client needs next:
//!    an event below `next` is a duplicate and skipped; one above it means a
//!    gap, filled from storage first; a `Lagged` hub receiver catches up from
//!    storage and goes on live.
//!
//! The stream ends when the client goes away, when its token expires
//! (UNAUTHENTICATED), or when the server shuts down (UNAVAILABLE, so the
//! client reconnects and resumes from its last seq).

use std::collections::HashMap;
use std::time::SystemTime;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{MessageService, Status};
use crate::error::{AppError, AppResult};
use crate::realtime::Event;
use crate::store::messages::Message;

/// One item a chat stream yields.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// The subscription is live: anything sent after this is delivered.
    Connected { chat_id: String },
    Message {
        message: Message,
        username: String,
        status: Status,
    },
}

/// The receiving end of a chat stream; dropping it ends the stream.
pub type ChatStream = mpsc::Receiver<AppResult<StreamItem>>;

/// Frames buffered per stream before the forwarder waits for the client.
const BUFFER: usize = 64;
/// Rows read from storage per catch-up query.
const CATCH_UP_PAGE: i64 = 500;

pub(super) async fn open(
    service: MessageService,
    chat_id: String,
    after_seq: i64,
    expires_at: SystemTime,
    shutdown: CancellationToken,
) -> AppResult<ChatStream> {
    let subscription = service.hub().subscribe(&chat_id);
    let chat = service
        .store()
        .chat_by_id(&chat_id)
        .await?
        .ok_or(AppError::NotFound("chat"))?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut forwarder = Forwarder {
        service,
        chat_id: chat_id.clone(),
        next: if after_seq > 0 {
            after_seq.min(chat.last_seq) + 1
        } else {
            chat.last_seq + 1
        },
        usernames: HashMap::new(),
        tx,
    };
    let live_from = chat.last_seq + 1;
    tokio::spawn(async move {
        let mut subscription = subscription;
        let deadline = tokio::time::Instant::now()
            + expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
        let end = async {
            if forwarder
                .tx
                .send(Ok(StreamItem::Connected {
                    chat_id: forwarder.chat_id.clone(),
                }))
                .await
                .is_err()
            {
                return Ok(());
            }
            forwarder.catch_up(live_from).await?;
            loop {
                let event = tokio::select! {
                    biased;
                    _ = forwarder.tx.closed() => return Ok(()),
                    _ = shutdown.cancelled() => {
                        return Err(AppError::Unavailable(anyhow::anyhow!("server shutting down")))
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        return Err(AppError::Unauthenticated("token expired".into()))
                    }
                    event = subscription.recv() => event,
                };
                match event {
                    Ok(event) => forwarder.deliver(&event).await?,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(chat_id = %forwarder.chat_id, missed, "stream lagged; catching up from storage");
                        forwarder.catch_up(i64::MAX).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
        .await;
        if let Err(err) = end {
            // The client may be gone already; nothing to do then.
            let _ = forwarder.tx.send(Err(err)).await;
        }
    });
    Ok(rx)
}

struct Forwarder {
    service: MessageService,
    chat_id: String,
    /// The seq the client needs next.
    next: i64,
    usernames: HashMap<String, String>,
    tx: mpsc::Sender<AppResult<StreamItem>>,
}

/// Why forwarding stopped early: the client went away (not an error to send).
type Step = Result<(), AppError>;

impl Forwarder {
    async fn deliver(&mut self, event: &Event) -> Step {
        match event {
            Event::Message {
                message,
                sender_username,
            } => {
                if message.seq < self.next {
                    return Ok(());
                }
                if message.seq > self.next {
                    self.catch_up(message.seq).await?;
                }
                if message.seq == self.next {
                    self.usernames
                        .entry(message.sender_id.clone())
                        .or_insert_with(|| sender_username.clone());
                    self.send(message.clone(), sender_username.clone(), Status::Sent)
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// Sends every stored message from `next` up to (not including) `until`.
    async fn catch_up(&mut self, until: i64) -> Step {
        while self.next < until {
            let to = until.min(self.next.saturating_add(CATCH_UP_PAGE));
            let rows = self
                .service
                .store()
                .messages_between(&self.chat_id, self.next, to)
                .await?;
            if rows.is_empty() {
                // Nothing stored past `next` (yet): the rest arrives live.
                return Ok(());
            }
            let members = self.service.store().members(&self.chat_id).await?;
            self.learn_usernames(&rows).await?;
            for row in rows {
                if row.seq < self.next {
                    continue;
                }
                let username = self
                    .usernames
                    .get(&row.sender_id)
                    .cloned()
                    .unwrap_or_default();
                let status = Status::of(&members, &row.sender_id, row.seq);
                self.send(row, username, status).await?;
            }
        }
        Ok(())
    }

    async fn learn_usernames(&mut self, rows: &[Message]) -> Step {
        let mut missing: Vec<String> = rows
            .iter()
            .filter(|m| !self.usernames.contains_key(&m.sender_id))
            .map(|m| m.sender_id.clone())
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            for user in self.service.store().users_by_ids(&missing).await? {
                self.usernames.insert(user.id, user.username);
            }
        }
        Ok(())
    }

    async fn send(&mut self, message: Message, username: String, status: Status) -> Step {
        let seq = message.seq;
        let item = StreamItem::Message {
            message,
            username,
            status,
        };
        if self.tx.send(Ok(item)).await.is_err() {
            // Client gone: stop quietly.
            return Err(AppError::NotFound("stream"));
        }
        self.next = seq + 1;
        Ok(())
    }
}
