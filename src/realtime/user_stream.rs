//! The per-user stream: every event of every chat the user belongs to.
//!
//! It is the browser's only stream (a browser keeps few connections per
//! origin) and the event half of the native bidirectional session. Per chat
//! it applies the same rule as the per-chat stream (subscribe live first,
//! replay from the client's cursor, then skip / deliver / fill by seq), and
//! it follows the user's membership feed so a chat joined mid-stream starts
//! delivering at once and a chat left stops at once.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{StreamExt as _, StreamMap};
use tokio_util::sync::CancellationToken;

use super::event::{Event, MessageEvent, Topic};
use super::history::History;
use super::order::{Decision, SeqTracker};
use super::{Realtime, Subscription};
use crate::chats::{ChatService, ChatView};
use crate::error::{AppError, AppResult};
use crate::messages::Status;
use crate::messages::stream::Stop;
use crate::store::users::User;

/// One item of a user stream.
#[derive(Debug, Clone)]
pub enum UserItem {
    Connected {
        user_id: String,
    },
    Message {
        /// Shared with every other stream delivering it.
        message: Arc<MessageEvent>,
        status: Status,
    },
    Receipt {
        chat_id: String,
        user_id: String,
        delivered_seq: i64,
        read_seq: i64,
    },
    Typing {
        chat_id: String,
        user_id: String,
        username: String,
        typing: bool,
    },
    Presence {
        user_id: String,
        online: bool,
        at: i64,
    },
    ChatAdded(Box<ChatView>),
    ChatRemoved {
        chat_id: String,
    },
    MemberChanged {
        chat_id: String,
        user: User,
        joined: bool,
    },
    Heartbeat,
}

pub type UserStream = mpsc::Receiver<AppResult<UserItem>>;

/// What a user stream needs.
pub struct Options {
    pub user_id: String,
    /// Last seq the client has per chat; chats without one start live.
    pub cursors: HashMap<String, i64>,
    pub expires_at: SystemTime,
    pub heartbeat: Duration,
    pub shutdown: CancellationToken,
}

const BUFFER: usize = 128;

/// The instant a token's expiry corresponds to on the runtime's clock.
pub fn deadline(expires_at: SystemTime) -> tokio::time::Instant {
    tokio::time::Instant::now()
        + expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
}

type EventStream =
    Pin<Box<dyn Stream<Item = Result<Arc<Event>, broadcast::error::RecvError>> + Send>>;

/// Opens a user stream. Live (for every current chat and the membership
/// feed) before this returns.
pub async fn open(
    realtime: Realtime,
    chats: ChatService,
    options: Options,
) -> AppResult<UserStream> {
    let Options {
        user_id,
        cursors,
        expires_at,
        heartbeat,
        shutdown,
    } = options;
    let feed = realtime.hub.subscribe(Topic::User(user_id.clone()));
    let memberships = realtime.store().chat_ids_of_user(&user_id).await?;
    for (chat_id, seq) in &cursors {
        if *seq < 0 {
            return Err(AppError::invalid(
                "cursors",
                format!("after_seq of chat {chat_id} must not be negative"),
            ));
        }
    }
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut stream = Forwarder {
        history: History::new(realtime.store().clone()),
        realtime: realtime.clone(),
        chats,
        user_id: user_id.clone(),
        trackers: HashMap::new(),
        subs: StreamMap::new(),
        online: HashMap::new(),
        deliveries: crate::metrics::Deliveries::new(),
        tx,
    };
    // Live first: follow every chat, then read where each chat stands, so a
    // message committed in between is either at or below that point (and
    // replayed or skipped by the cursor rule) or arrives live.
    for (chat_id, _) in &memberships {
        stream.follow(chat_id, 0);
    }
    let standing = realtime.store().chat_ids_of_user(&user_id).await?;
    let mut resume = Vec::new();
    for (chat_id, last_seq) in standing {
        if !stream.trackers.contains_key(&chat_id) {
            // Joined between the two reads: its ChatAdded event is on the feed.
            continue;
        }
        let from = match cursors.get(&chat_id) {
            Some(after) => {
                resume.push((chat_id.clone(), last_seq));
                (*after).min(last_seq)
            }
            None => last_seq,
        };
        stream.trackers.insert(chat_id, SeqTracker::after(from));
    }
    tokio::spawn(async move {
        let _gauge = crate::metrics::StreamGauge::open("user");
        Box::pin(realtime.stream_opened(&user_id)).await;
        let end = stream
            .run(feed, resume, expires_at, heartbeat, shutdown)
            .await;
        stream.subs.clear();
        if let Err(Stop::Error(err)) = end {
            let _ = stream.tx.send(Err(err)).await;
        }
        Box::pin(realtime.stream_closed(&user_id)).await;
    });
    Ok(rx)
}

struct Forwarder {
    history: History,
    realtime: Realtime,
    chats: ChatService,
    user_id: String,
    trackers: HashMap<String, SeqTracker>,
    subs: StreamMap<String, EventStream>,
    /// Last presence sent per peer, so several shared chats send it once.
    online: HashMap<String, bool>,
    deliveries: crate::metrics::Deliveries,
    tx: mpsc::Sender<AppResult<UserItem>>,
}

/// The methods that read storage return boxed futures: a stream's task holds
/// its loop's future for as long as it lives, and that future is as large as
/// the largest thing it awaits inline: 8,480 bytes per stream with the
/// storage reads inline, 2,240 with them boxed (release build). Boxed, they
/// take memory only while they run (a lag, a gap fill, a membership change).
impl Forwarder {
    fn follow(&mut self, chat_id: &str, last_seen: i64) {
        let sub: Subscription = self.realtime.hub.subscribe(Topic::Chat(chat_id.to_owned()));
        self.subs
            .insert(chat_id.to_owned(), Box::pin(sub.into_stream()));
        self.trackers
            .insert(chat_id.to_owned(), SeqTracker::after(last_seen));
    }

    fn unfollow(&mut self, chat_id: &str) {
        self.subs.remove(chat_id);
        self.trackers.remove(chat_id);
    }

    async fn emit(&mut self, item: UserItem) -> Result<(), Stop> {
        self.tx.send(Ok(item)).await.map_err(|_| Stop::Gone)
    }

    async fn run(
        &mut self,
        mut feed: Subscription,
        resume: Vec<(String, i64)>,
        expires_at: SystemTime,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), Stop> {
        self.emit(UserItem::Connected {
            user_id: self.user_id.clone(),
        })
        .await?;
        for (chat_id, last_seq) in resume {
            self.catch_up(&chat_id, last_seq + 1).await?;
        }
        self.presence_snapshot().await?;

        // One timer for the token's expiry, not one per loop turn.
        let expiry = tokio::time::sleep_until(deadline(expires_at));
        tokio::pin!(expiry);
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        loop {
            tokio::select! {
                biased;
                _ = self.tx.closed() => return Err(Stop::Gone),
                _ = shutdown.cancelled() => {
                    return Err(Stop::Error(AppError::Unavailable(anyhow::anyhow!("server shutting down"))))
                }
                _ = &mut expiry => {
                    return Err(Stop::Error(AppError::Unauthenticated("token expired".into())))
                }
                _ = beat.tick() => self.emit(UserItem::Heartbeat).await?,
                event = feed.recv() => match event {
                    Ok(event) => self.on_membership(&event).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.reload_memberships().await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                Some((chat_id, event)) = self.subs.next() => match event {
                    Ok(event) => self.on_chat_event(&chat_id, &event).await?,
                    Err(_) => {
                        self.realtime.hub.note_lag();
                        metrics::counter!(crate::metrics::STREAM_LAGS).increment(1);
                        self.catch_up(&chat_id, i64::MAX).await?
                    }
                },
            }
        }
    }

    fn on_membership<'a>(&'a mut self, event: &'a Event) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            match event {
                Event::ChatAdded {
                    chat_id, from_seq, ..
                } => self.added(chat_id, *from_seq).await,
                Event::ChatRemoved { chat_id, .. } => self.removed(chat_id).await,
                _ => Ok(()),
            }
        })
    }

    fn added<'a>(&'a mut self, chat_id: &'a str, from_seq: i64) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            if self.trackers.contains_key(chat_id) {
                return Ok(());
            }
            self.follow(chat_id, from_seq);
            match self.chats.get(&self.user_id, chat_id).await {
                Ok(view) => self.emit(UserItem::ChatAdded(Box::new(view))).await?,
                // Removed again before we looked: forget it.
                Err(AppError::NotFound(_)) => {
                    self.unfollow(chat_id);
                    return Ok(());
                }
                Err(e) => return Err(Stop::Error(e)),
            }
            // Anything sent between joining and following comes from storage.
            self.catch_up(chat_id, i64::MAX).await
        })
    }

    fn removed<'a>(&'a mut self, chat_id: &'a str) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            if self.trackers.contains_key(chat_id) {
                self.unfollow(chat_id);
                self.emit(UserItem::ChatRemoved {
                    chat_id: chat_id.to_owned(),
                })
                .await?;
            }
            Ok(())
        })
    }

    /// The membership feed lagged: compare with storage.
    fn reload_memberships(&mut self) -> BoxFuture<'_, Result<(), Stop>> {
        Box::pin(async move {
            let now = self
                .realtime
                .store()
                .chat_ids_of_user(&self.user_id)
                .await?;
            let current: HashSet<&String> = now.iter().map(|(id, _)| id).collect();
            let gone: Vec<String> = self
                .trackers
                .keys()
                .filter(|id| !current.contains(id))
                .cloned()
                .collect();
            for chat_id in gone {
                self.removed(&chat_id).await?;
            }
            for (chat_id, _) in &now {
                if !self.trackers.contains_key(chat_id) {
                    let from = self
                        .realtime
                        .store()
                        .membership(chat_id, &self.user_id)
                        .await?
                        .map_or(0, |m| m.read_seq);
                    self.added(chat_id, from).await?;
                }
            }
            Ok(())
        })
    }

    async fn on_chat_event(&mut self, chat_id: &str, event: &Event) -> Result<(), Stop> {
        match event {
            Event::Message(m) => {
                let Some(tracker) = self.trackers.get(chat_id) else {
                    return Ok(());
                };
                match tracker.decide(m.seq) {
                    Decision::Skip => return Ok(()),
                    Decision::Deliver => {}
                    Decision::Fill { to, .. } => self.catch_up(chat_id, to).await?,
                }
                if self
                    .trackers
                    .get(chat_id)
                    .is_some_and(|t| t.decide(m.seq) != Decision::Skip)
                {
                    self.send(m.clone(), Status::Sent).await?;
                    self.deliveries.record(m.created_at, true);
                }
                Ok(())
            }
            Event::Receipt {
                chat_id,
                user_id,
                delivered_seq,
                read_seq,
            } => {
                self.emit(UserItem::Receipt {
                    chat_id: chat_id.clone(),
                    user_id: user_id.clone(),
                    delivered_seq: *delivered_seq,
                    read_seq: *read_seq,
                })
                .await
            }
            Event::Typing {
                chat_id,
                user_id,
                username,
                typing,
            } => {
                if *user_id == self.user_id {
                    return Ok(());
                }
                self.emit(UserItem::Typing {
                    chat_id: chat_id.clone(),
                    user_id: user_id.clone(),
                    username: username.clone(),
                    typing: *typing,
                })
                .await
            }
            Event::Presence {
                user_id,
                online,
                at,
                ..
            } => {
                if *user_id == self.user_id || self.online.get(user_id) == Some(online) {
                    return Ok(());
                }
                self.online.insert(user_id.clone(), *online);
                self.emit(UserItem::Presence {
                    user_id: user_id.clone(),
                    online: *online,
                    at: *at,
                })
                .await
            }
            Event::MemberChanged {
                chat_id,
                user_id,
                joined,
            } => {
                if *user_id == self.user_id {
                    if !joined {
                        return self.removed(chat_id).await;
                    }
                    return Ok(());
                }
                let Some(user) = Box::pin(self.realtime.store().user_by_id(user_id)).await? else {
                    return Ok(());
                };
                self.emit(UserItem::MemberChanged {
                    chat_id: chat_id.clone(),
                    user,
                    joined: *joined,
                })
                .await
            }
            Event::Resync { .. } => self.catch_up(chat_id, i64::MAX).await,
            Event::ChatAdded { .. } | Event::ChatRemoved { .. } => Ok(()),
        }
    }

    fn catch_up<'a>(&'a mut self, chat_id: &'a str, until: i64) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            loop {
                let Some(next) = self.trackers.get(chat_id).map(SeqTracker::next) else {
                    return Ok(());
                };
                if next >= until {
                    return Ok(());
                }
                let page = self.history.page(chat_id, next, until).await?;
                if page.is_empty() {
                    return Ok(());
                }
                metrics::counter!(crate::metrics::GAP_FILLS).increment(1);
                for (message, status) in page {
                    if self
                        .trackers
                        .get(chat_id)
                        .is_some_and(|t| t.decide(message.seq) != Decision::Skip)
                    {
                        self.deliveries.record(message.created_at, false);
                        self.send(Arc::new(message), status).await?;
                    }
                }
            }
        })
    }

    async fn send(&mut self, message: Arc<MessageEvent>, status: Status) -> Result<(), Stop> {
        let (chat_id, seq) = (message.chat_id.clone(), message.seq);
        let from_peer = message.sender_id != self.user_id;
        self.emit(UserItem::Message { message, status }).await?;
        if let Some(t) = self.trackers.get_mut(&chat_id) {
            t.delivered(seq);
        }
        if from_peer {
            // Saved in a batch with every other stream's (see `delivered`).
            self.realtime.delivered.report(&chat_id, &self.user_id, seq);
        }
        Ok(())
    }

    /// Tells the client which of its chat peers are online right now.
    fn presence_snapshot(&mut self) -> BoxFuture<'_, Result<(), Stop>> {
        Box::pin(async move {
            let chat_ids: Vec<String> = self.trackers.keys().cloned().collect();
            let mut peers: Vec<String> = self
                .realtime
                .store()
                .members_with_users(&chat_ids)
                .await?
                .into_iter()
                .map(|(m, _)| m.user_id)
                .filter(|u| *u != self.user_id)
                .collect();
            peers.sort();
            peers.dedup();
            let online = self.realtime.presence.online(&peers).await;
            let at = crate::store::now_micros();
            for (user_id, online) in peers.into_iter().zip(online) {
                self.online.insert(user_id.clone(), online);
                if online {
                    self.emit(UserItem::Presence {
                        user_id,
                        online,
                        at,
                    })
                    .await?;
                }
            }
            Ok(())
        })
    }
}
