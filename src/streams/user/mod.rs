//! The per-user stream: every event of every chat the user belongs to.
//!
//! It is the browser's only stream (a browser keeps few connections per
//! origin) and the event half of the native bidirectional session. Per chat
//! it runs the same [`ChatCursor`] as the per-chat stream (subscribe live
//! first, replay from the client's cursor, then skip / deliver / fill by
//! seq), for the chat's messages and for its changes; and it follows the
//! user's membership feed ([`membership`]) so a chat joined mid-stream
//! starts delivering at once and a chat left stops at once. What each chat
//! event becomes is [`events`]'.

mod events;
mod membership;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{StreamExt as _, StreamMap};

use super::cursor::{Backfill, ChatCursor, Deliver};
use super::{Lifetime, Stop, Streams};
use crate::domain::{AppResult, BlockSet, ChatView, Status, User};
use crate::fanout::delivered::Delivered;
use crate::fanout::{ChangeEvent, Event, Fanout, MessageEvent, Subscription, Topic};
use crate::services::blocks::BlockService;
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
    /// A logged change; for a membership change, the member's profile.
    Change {
        change: Arc<ChangeEvent>,
        member: Option<User>,
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
    /// The user blocked (or unblocked) someone, on any device.
    BlockChanged {
        user_id: String,
        blocked: bool,
    },
    Heartbeat,
}

pub type UserStream = mpsc::Receiver<AppResult<UserItem>>;

/// Where a client stands in one chat: the last seq and (if it follows
/// them) the last change it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub after_seq: i64,
    pub after_change: Option<i64>,
}

const BUFFER: usize = 128;

type EventStream =
    Pin<Box<dyn Stream<Item = Result<Arc<Event>, broadcast::error::RecvError>> + Send>>;

/// Opens a user stream. Live (for every current chat and the membership
/// feed) before this returns.
pub(super) async fn open(
    streams: &Streams,
    user_id: String,
    cursors: HashMap<String, Cursor>,
    grant: crate::streams::Grant,
) -> AppResult<UserStream> {
    let fanout = streams.fanout.clone();
    let store = streams.store.clone();
    let feed = fanout.hub.subscribe(Topic::User(user_id.clone()));
    // After subscribing: a block made from now on is on the feed.
    let blocks = streams.blocks.fresh_set(&user_id).await?;
    let memberships = store.chats_of_member(&user_id).await?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut stream = Forwarder {
        store: store.clone(),
        fanout: fanout.clone(),
        chats: streams.chats.clone(),
        blocks: streams.blocks.clone(),
        cursors: HashMap::new(),
        subs: StreamMap::new(),
        online: HashMap::new(),
        backfill: Backfill::new(store.clone()),
        out: Out {
            tx,
            user_id: user_id.clone(),
            delivered: fanout.delivered.clone(),
            store: store.clone(),
            blocks,
        },
    };
    // Live first: follow every chat, then read where each chat stands, so a
    // message or change committed in between is either at or below that
    // point (and replayed or skipped by the cursor rule) or arrives live.
    for chat in &memberships {
        stream.follow(&chat.id, 0, 0);
    }
    let standing = store.chats_of_member(&user_id).await?;
    let mut resume = Vec::new();
    for chat in standing {
        if !stream.cursors.contains_key(&chat.id) {
            // Joined between the two reads: its ChatAdded event is on the feed.
            continue;
        }
        let (from_seq, from_change) = match cursors.get(&chat.id) {
            Some(c) => {
                resume.push((chat.id.clone(), chat.last_seq, chat.last_change));
                (
                    c.after_seq.min(chat.last_seq),
                    c.after_change
                        .map_or(chat.last_change, |a| a.min(chat.last_change)),
                )
            }
            None => (chat.last_seq, chat.last_change),
        };
        stream.cursors.insert(
            chat.id.clone(),
            ChatCursor::with_changes(chat.id, from_seq, from_change),
        );
    }
    let lifetime = Lifetime::new(streams.shutdown.clone(), grant);
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
    store: Store,
    /// The user's blocks, both ways: what the user may not see.
    blocks: BlockSet,
}

impl Out {
    async fn emit(&self, item: UserItem) -> Result<(), Stop> {
        self.tx.send(Ok(item)).await.map_err(|_| Stop::Gone)
    }
}

impl Deliver for Out {
    async fn deliver(&mut self, message: Arc<MessageEvent>, status: Status) -> Result<(), Stop> {
        // A blocked sender's message goes out as this user's own copy,
        // without what it withholds; every other stream shares the event.
        let message = if self
            .blocks
            .would_redact(&message.message, message.quote.as_ref())
        {
            let mut copy = (*message).clone();
            self.blocks.redact(&mut copy.message, copy.quote.as_mut());
            Arc::new(copy)
        } else {
            message
        };
        let report = (message.message.sender_id != self.user_id)
            .then(|| (message.message.chat_id.clone(), message.message.seq));
        self.emit(UserItem::Message { message, status }).await?;
        if let Some((chat_id, seq)) = report {
            // Saved in a batch with every other stream's (see `delivered`).
            self.delivered.report(&chat_id, &self.user_id, seq);
        }
        Ok(())
    }

    async fn deliver_change(&mut self, change: Arc<ChangeEvent>) -> Result<(), Stop> {
        let member = match &change.change.kind {
            crate::domain::ChangeKind::Member { user_id, .. } => {
                Box::pin(self.store.user_by_id(user_id)).await?
            }
            _ => None,
        };
        let change = match &change.edited {
            Some((m, _)) if self.blocks.would_redact(m, None) => {
                let mut copy = (*change).clone();
                if let Some((m, _)) = copy.edited.as_mut() {
                    self.blocks.redact(m, None);
                }
                Arc::new(copy)
            }
            _ => change,
        };
        self.emit(UserItem::Change { change, member }).await
    }
}

struct Forwarder {
    store: Store,
    fanout: Fanout,
    chats: ChatService,
    blocks: BlockService,
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

    fn follow(&mut self, chat_id: &str, last_seen: i64, last_change: i64) {
        let sub: Subscription = self.fanout.hub.subscribe(Topic::Chat(chat_id.to_owned()));
        self.subs
            .insert(chat_id.to_owned(), Box::pin(sub.into_stream()));
        self.cursors.insert(
            chat_id.to_owned(),
            ChatCursor::with_changes(chat_id.to_owned(), last_seen, last_change),
        );
    }

    fn unfollow(&mut self, chat_id: &str) {
        self.subs.remove(chat_id);
        self.cursors.remove(chat_id);
    }

    /// Catches `chat_id`'s messages up to `until` (see [`ChatCursor::catch_up`]).
    fn catch_up<'a>(&'a mut self, chat_id: &str, until: i64) -> BoxFuture<'a, Result<(), Stop>> {
        match self.cursors.get_mut(chat_id) {
            Some(cursor) => cursor.catch_up(until, &mut self.backfill, &mut self.out),
            None => Box::pin(async { Ok(()) }),
        }
    }

    /// Catches `chat_id`'s changes up to `until`.
    fn catch_up_changes<'a>(
        &'a mut self,
        chat_id: &str,
        until: i64,
    ) -> BoxFuture<'a, Result<(), Stop>> {
        match self.cursors.get_mut(chat_id) {
            Some(cursor) => cursor.catch_up_changes(until, &mut self.backfill, &mut self.out),
            None => Box::pin(async { Ok(()) }),
        }
    }

    /// Catches `chat_id` up to the end of storage, messages and changes.
    fn catch_up_all<'a>(&'a mut self, chat_id: &'a str) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            self.catch_up(chat_id, i64::MAX).await?;
            self.catch_up_changes(chat_id, i64::MAX).await
        })
    }

    async fn run(
        &mut self,
        mut feed: Subscription,
        resume: Vec<(String, i64, i64)>,
        mut lifetime: Lifetime,
        heartbeat: Duration,
    ) -> Result<(), Stop> {
        self.out
            .emit(UserItem::Connected {
                user_id: self.user_id().to_owned(),
            })
            .await?;
        // Messages first, then the changes to them.
        for (chat_id, last_seq, last_change) in resume {
            self.catch_up(&chat_id, last_seq + 1).await?;
            self.catch_up_changes(&chat_id, last_change + 1).await?;
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
                        self.catch_up_all(&chat_id).await?
                    }
                },
            }
        }
    }
}
