//! The per-user stream: every event of every chat the user belongs to.
//!
//! It is the browser's only stream (a browser keeps few connections per
//! origin) and the event half of the native bidirectional session. Per chat
//! it runs the same [`ChatCursor`] as the per-chat stream (subscribe live
//! first, replay from the client's cursor, then skip / deliver / fill by
//! seq), and it follows the user's membership feed so a chat joined
//! mid-stream starts delivering at once and a chat left stops at once.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{StreamExt as _, StreamMap};

use super::cursor::{Backfill, ChatCursor, Deliver};
use super::{Lifetime, Stop, Streams};
use crate::domain::{AppError, AppResult, ChatView, Status, User, now_micros};
use crate::fanout::delivered::Delivered;
use crate::fanout::{Event, Fanout, MessageEvent, Subscription, Topic};
use crate::services::chats::ChatService;
use crate::store::Store;

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

const BUFFER: usize = 128;

type EventStream =
    Pin<Box<dyn Stream<Item = Result<Arc<Event>, broadcast::error::RecvError>> + Send>>;

/// Opens a user stream. Live (for every current chat and the membership
/// feed) before this returns.
pub(super) async fn open(
    streams: &Streams,
    user_id: String,
    cursors: HashMap<String, i64>,
    expires_at: SystemTime,
) -> AppResult<UserStream> {
    let fanout = streams.fanout.clone();
    let store = streams.store.clone();
    let feed = fanout.hub.subscribe(Topic::User(user_id.clone()));
    let memberships = store.chat_ids_of_user(&user_id).await?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut stream = Forwarder {
        store: store.clone(),
        fanout: fanout.clone(),
        chats: streams.chats.clone(),
        cursors: HashMap::new(),
        subs: StreamMap::new(),
        online: HashMap::new(),
        backfill: Backfill::new(store.clone()),
        out: Out {
            tx,
            user_id: user_id.clone(),
            delivered: fanout.delivered.clone(),
        },
    };
    // Live first: follow every chat, then read where each chat stands, so a
    // message committed in between is either at or below that point (and
    // replayed or skipped by the cursor rule) or arrives live.
    for (chat_id, _) in &memberships {
        stream.follow(chat_id, 0);
    }
    let standing = store.chat_ids_of_user(&user_id).await?;
    let mut resume = Vec::new();
    for (chat_id, last_seq) in standing {
        if !stream.cursors.contains_key(&chat_id) {
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
        stream
            .cursors
            .insert(chat_id.clone(), ChatCursor::after(chat_id, from));
    }
    let lifetime = Lifetime::new(streams.shutdown.clone(), expires_at);
    let heartbeat = streams.heartbeat;
    tokio::spawn(async move {
        let _gauge = crate::metrics::StreamGauge::open("user");
        Box::pin(fanout.stream_opened(&user_id)).await;
        let end = stream.run(feed, resume, lifetime, heartbeat).await;
        stream.subs.clear();
        if let Err(Stop::Error(err)) = end {
            let _ = stream.out.tx.send(Err(err)).await;
        }
        Box::pin(fanout.stream_closed(&user_id)).await;
    });
    Ok(rx)
}

/// The client's end: items go out here, and what reached the client is
/// reported as delivered.
struct Out {
    tx: mpsc::Sender<AppResult<UserItem>>,
    user_id: String,
    delivered: Delivered,
}

impl Out {
    async fn emit(&self, item: UserItem) -> Result<(), Stop> {
        self.tx.send(Ok(item)).await.map_err(|_| Stop::Gone)
    }
}

impl Deliver for Out {
    async fn deliver(&mut self, message: Arc<MessageEvent>, status: Status) -> Result<(), Stop> {
        let report = (message.message.sender_id != self.user_id)
            .then(|| (message.message.chat_id.clone(), message.message.seq));
        self.emit(UserItem::Message { message, status }).await?;
        if let Some((chat_id, seq)) = report {
            // Saved in a batch with every other stream's (see `delivered`).
            self.delivered.report(&chat_id, &self.user_id, seq);
        }
        Ok(())
    }
}

struct Forwarder {
    store: Store,
    fanout: Fanout,
    chats: ChatService,
    cursors: HashMap<String, ChatCursor>,
    subs: StreamMap<String, EventStream>,
    /// Last presence sent per peer, so several shared chats send it once.
    online: HashMap<String, bool>,
    backfill: Backfill,
    out: Out,
}

/// The methods that read storage return boxed futures (see
/// [`ChatCursor::catch_up`]): they take memory only while they run (a lag,
/// a gap fill, a membership change), not for the stream's whole life.
impl Forwarder {
    fn user_id(&self) -> &str {
        &self.out.user_id
    }

    fn follow(&mut self, chat_id: &str, last_seen: i64) {
        let sub: Subscription = self.fanout.hub.subscribe(Topic::Chat(chat_id.to_owned()));
        self.subs
            .insert(chat_id.to_owned(), Box::pin(sub.into_stream()));
        self.cursors.insert(
            chat_id.to_owned(),
            ChatCursor::after(chat_id.to_owned(), last_seen),
        );
    }

    fn unfollow(&mut self, chat_id: &str) {
        self.subs.remove(chat_id);
        self.cursors.remove(chat_id);
    }

    /// Catches `chat_id` up to `until` (see [`ChatCursor::catch_up`]).
    fn catch_up<'a>(&'a mut self, chat_id: &str, until: i64) -> BoxFuture<'a, Result<(), Stop>> {
        match self.cursors.get_mut(chat_id) {
            Some(cursor) => cursor.catch_up(until, &mut self.backfill, &mut self.out),
            None => Box::pin(async { Ok(()) }),
        }
    }

    async fn run(
        &mut self,
        mut feed: Subscription,
        resume: Vec<(String, i64)>,
        mut lifetime: Lifetime,
        heartbeat: Duration,
    ) -> Result<(), Stop> {
        self.out
            .emit(UserItem::Connected {
                user_id: self.user_id().to_owned(),
            })
            .await?;
        for (chat_id, last_seq) in resume {
            self.catch_up(&chat_id, last_seq + 1).await?;
        }
        self.presence_snapshot().await?;

        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        loop {
            tokio::select! {
                biased;
                stop = lifetime.ended(&self.out.tx) => return Err(stop),
                _ = beat.tick() => self.out.emit(UserItem::Heartbeat).await?,
                event = feed.recv() => match event {
                    Ok(event) => self.on_membership(&event).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.reload_memberships().await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                Some((chat_id, event)) = self.subs.next() => match event {
                    Ok(event) => self.on_chat_event(&chat_id, &event).await?,
                    Err(_) => {
                        self.fanout.hub.note_lag();
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
            if self.cursors.contains_key(chat_id) {
                return Ok(());
            }
            self.follow(chat_id, from_seq);
            let user_id = self.user_id().to_owned();
            match self.chats.get(&user_id, chat_id).await {
                Ok(view) => self.out.emit(UserItem::ChatAdded(Box::new(view))).await?,
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
            if self.cursors.contains_key(chat_id) {
                self.unfollow(chat_id);
                self.out
                    .emit(UserItem::ChatRemoved {
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
            let now = self.store.chat_ids_of_user(self.user_id()).await?;
            let current: HashSet<&String> = now.iter().map(|(id, _)| id).collect();
            let gone: Vec<String> = self
                .cursors
                .keys()
                .filter(|id| !current.contains(id))
                .cloned()
                .collect();
            for chat_id in gone {
                self.removed(&chat_id).await?;
            }
            for (chat_id, _) in &now {
                if !self.cursors.contains_key(chat_id) {
                    let from = self
                        .store
                        .membership(chat_id, self.user_id())
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
            Event::Message(m) => match self.cursors.get_mut(chat_id) {
                Some(cursor) => cursor.live(m, &mut self.backfill, &mut self.out).await,
                None => Ok(()),
            },
            Event::Receipt {
                chat_id,
                user_id,
                delivered_seq,
                read_seq,
            } => {
                self.out
                    .emit(UserItem::Receipt {
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
                if user_id == self.user_id() {
                    return Ok(());
                }
                self.out
                    .emit(UserItem::Typing {
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
                if user_id == self.user_id() || self.online.get(user_id) == Some(online) {
                    return Ok(());
                }
                self.online.insert(user_id.clone(), *online);
                self.out
                    .emit(UserItem::Presence {
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
                if user_id == self.user_id() {
                    if !joined {
                        return self.removed(chat_id).await;
                    }
                    return Ok(());
                }
                let Some(user) = Box::pin(self.store.user_by_id(user_id)).await? else {
                    return Ok(());
                };
                self.out
                    .emit(UserItem::MemberChanged {
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

    /// Tells the client which of its chat peers are online right now.
    fn presence_snapshot(&mut self) -> BoxFuture<'_, Result<(), Stop>> {
        Box::pin(async move {
            let chat_ids: Vec<String> = self.cursors.keys().cloned().collect();
            let me = self.user_id().to_owned();
            let mut peers: Vec<String> = self
                .store
                .members_with_users(&chat_ids)
                .await?
                .into_iter()
                .map(|(m, _)| m.user_id)
                .filter(|u| *u != me)
                .collect();
            peers.sort();
            peers.dedup();
            let online = self.fanout.presence.online(&peers).await;
            let at = now_micros();
            for (user_id, online) in peers.into_iter().zip(online) {
                self.online.insert(user_id.clone(), online);
                if online {
                    self.out
                        .emit(UserItem::Presence {
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
