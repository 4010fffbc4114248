//! Live streams: what a client holds open to receive a chat's messages and
//! everything else that happens, without gaps or repeats.
//!
//! - [`cursor`]: the core every stream runs per chat: where the client
//!   stands ([`crate::fanout::order::SeqTracker`]), what to do with a live
//!   message, and catching up from storage ([`history`]).
//! - [`user`]: the per-user stream of every event of every chat
//!   (EventsService.Subscribe, and the event half of Session).
//! - [`chat`]: one chat's messages (the original SubscribeToChat).
//!
//! Every stream ends the same ways ([`Lifetime`]): the client goes away, the
//! server shuts down (UNAVAILABLE: reconnect and resume), or the token
//! expires (UNAUTHENTICATED).

pub mod chat;
pub mod cursor;
pub mod history;
pub mod user;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::domain::{AppError, AppResult, parse_id};
use crate::fanout::Fanout;
use crate::services::blocks::BlockService;
use crate::services::chats::ChatService;
use crate::store::{Store, StoreError};

pub use chat::{ChatStream, StreamItem};
pub use user::{UserItem, UserStream};

/// Opens live streams. Cheap to clone.
#[derive(Clone)]
pub struct Streams {
    store: Store,
    fanout: Fanout,
    chats: ChatService,
    blocks: BlockService,
    /// How often the user stream sends a heartbeat.
    heartbeat: Duration,
    /// Cancelled on shutdown; every stream watches it.
    shutdown: CancellationToken,
}

impl Streams {
    pub fn new(
        store: Store,
        fanout: Fanout,
        chats: ChatService,
        blocks: BlockService,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> Streams {
        Streams {
            store,
            fanout,
            chats,
            blocks,
            heartbeat,
            shutdown,
        }
    }

    /// Opens `user_id`'s stream of everything. `cursors`: the last seq
    /// (and last change, if the client follows changes) the client has per
    /// chat, ids as sent; chats without one start live.
    pub async fn user(
        &self,
        user_id: &str,
        cursors: Vec<(String, i64, Option<i64>)>,
        grant: Grant,
    ) -> AppResult<UserStream> {
        let mut map = HashMap::with_capacity(cursors.len());
        for (chat_id, after_seq, after_change) in cursors {
            let id = parse_id("cursors.chat_id", &chat_id)
                .map_err(|_| AppError::invalid("cursors", "chat_id must be a chat id"))?;
            if after_seq < 0 {
                return Err(AppError::invalid(
                    "cursors",
                    format!("after_seq of chat {id} must not be negative"),
                ));
            }
            if after_change.is_some_and(|c| c < 0) {
                return Err(AppError::invalid(
                    "cursors",
                    format!("after_change of chat {id} must not be negative"),
                ));
            }
            map.insert(
                id,
                user::Cursor {
                    after_seq,
                    after_change,
                },
            );
        }
        user::open(self, user_id.to_owned(), map, grant).await
    }

    /// Opens a stream of one chat's messages for a member of it, replaying
    /// those after `after_seq` first when it is above 0.
    pub async fn chat(
        &self,
        user_id: &str,
        chat_id: &str,
        after_seq: i64,
        grant: Grant,
    ) -> AppResult<ChatStream> {
        let chat_id = parse_id("chat_id", chat_id)?;
        if after_seq < 0 {
            return Err(AppError::invalid("after_seq", "must not be negative"));
        }
        self.store
            .membership(&chat_id, user_id)
            .await?
            .ok_or(AppError::NotFound("chat"))?;
        chat::open(self, user_id.to_owned(), chat_id, after_seq, grant).await
    }
}

/// Why a stream stopped early.
pub enum Stop {
    /// The client went away: nothing to tell it.
    Gone,
    /// Tell the client this, then end.
    Error(AppError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Error(e.into())
    }
}

/// Asks again whether the stream's token still holds (its user exists, it
/// was not ended by ChangePassword or LogoutEverywhere).
pub type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = AppResult<()>> + Send>> + Send + Sync>;

/// What the token that opened a stream allows: until when, and a check the
/// stream asks again every `every` while it runs.
#[derive(Clone)]
pub struct Grant {
    pub expires_at: SystemTime,
    pub recheck: Option<(Duration, Check)>,
}

impl Grant {
    /// Until `expires_at`, never asked again.
    pub fn until(expires_at: SystemTime) -> Grant {
        Grant {
            expires_at,
            recheck: None,
        }
    }
}

/// What ends every stream apart from its own events: the client going away,
/// shutdown, the token's expiry (one timer for the stream's life, not one
/// per loop turn), and the token being ended.
pub struct Lifetime {
    shutdown: CancellationToken,
    expiry: Pin<Box<Sleep>>,
    recheck: Option<(Duration, Check, Pin<Box<Sleep>>)>,
}

impl Lifetime {
    pub fn new(shutdown: CancellationToken, grant: Grant) -> Lifetime {
        Lifetime {
            shutdown,
            expiry: Box::pin(tokio::time::sleep_until(deadline(grant.expires_at))),
            recheck: grant
                .recheck
                .map(|(every, check)| (every, check, Box::pin(tokio::time::sleep(every)))),
        }
    }

    /// Resolves when the stream must end, with why; the client going away
    /// (its receiver `tx` closed) comes first, then shutdown, then expiry,
    /// then the token being ended. Cancel-safe: a check cut short is asked
    /// again on the next call.
    pub async fn ended<T>(&mut self, tx: &mpsc::Sender<T>) -> Stop {
        let recheck = async {
            let Some((every, check, at)) = self.recheck.as_mut() else {
                return std::future::pending().await;
            };
            loop {
                at.as_mut().await;
                match check().await {
                    // A database that cannot say does not end the stream.
                    Ok(()) | Err(AppError::Unavailable(_)) => {
                        at.as_mut().reset(Instant::now() + *every);
                    }
                    Err(err) => return Stop::Error(err),
                }
            }
        };
        tokio::select! {
            biased;
            _ = tx.closed() => Stop::Gone,
            _ = self.shutdown.cancelled() => {
                Stop::Error(AppError::Unavailable(anyhow::anyhow!("server shutting down")))
            }
            _ = &mut self.expiry => Stop::Error(AppError::Unauthenticated("token expired".into())),
            stop = recheck => stop,
        }
    }
}

/// The instant a token's expiry corresponds to on the runtime's clock.
pub fn deadline(expires_at: SystemTime) -> Instant {
    Instant::now()
        + expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
}
