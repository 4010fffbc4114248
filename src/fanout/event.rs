//! What travels through the hub and, between nodes, through Redis.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::{Change, Message, Quote};

/// Where an event is published: a chat's subscribers, one user's own feed
/// (chats added to / removed from that user, blocks), or every node's
/// block watcher.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    Chat(String),
    User(String),
    Blocks,
}

/// A stored message, as streams deliver it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub message: Message,
    pub sender_username: String,
    /// The message it answers, as a quote.
    pub quote: Option<Quote>,
    /// Wire forms of this message, made by the first stream that delivers
    /// it and shared by the rest (see `grpc::wire`). Never sent between
    /// nodes; a copy starts empty.
    #[serde(skip)]
    pub encoded: Encoded,
}

impl MessageEvent {
    /// The event of a stored message: the one way to make one.
    pub fn stored(message: Message, sender_username: String, quote: Option<Quote>) -> MessageEvent {
        MessageEvent {
            message,
            sender_username,
            quote,
            encoded: Encoded::default(),
        }
    }

    pub fn chat_id(&self) -> &str {
        &self.message.chat_id
    }

    pub fn seq(&self) -> i64 {
        self.message.seq
    }
}

/// Cached encodings of a [`MessageEvent`]; opaque bytes to this module.
#[derive(Default, Debug)]
pub struct Encoded {
    /// As `messaging.Message` without its `status` field.
    pub message: OnceLock<Bytes>,
    /// As `messaging.ChatMessage` without its `status` field.
    pub chat_message: OnceLock<Bytes>,
}

impl Clone for Encoded {
    /// A copy may be changed, so it does not inherit the cache.
    fn clone(&self) -> Self {
        Encoded::default()
    }
}

impl PartialEq for Encoded {
    /// A cache, not part of the message's value.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Encoded {}

/// A change to a chat or one of its messages, as streams deliver it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub change: Change,
    /// For an edit: the message as it is now, with its sender's username.
    pub edited: Option<(Message, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Shared, so every stream delivers the same value (and its encoding).
    Message(Arc<MessageEvent>),
    /// A logged change (edit, delete, reaction, rename, membership).
    Change(Arc<ChangeEvent>),
    /// A member's watermarks moved.
    Receipt {
        chat_id: String,
        user_id: String,
        delivered_seq: i64,
        read_seq: i64,
    },
    /// Ephemeral; never stored.
    Typing {
        chat_id: String,
        user_id: String,
        username: String,
        typing: bool,
    },
    /// A member of this chat came online or went offline.
    Presence {
        chat_id: String,
        user_id: String,
        online: bool,
        at: i64,
    },
    /// Someone joined or left the chat (to the chat's subscribers).
    MemberChanged {
        chat_id: String,
        user_id: String,
        joined: bool,
    },
    /// The user was added to a chat whose history ends at `from_seq` and
    /// whose change log at `from_change` (to the user's feed): deliver the
    /// chat from there on.
    ChatAdded {
        user_id: String,
        chat_id: String,
        from_seq: i64,
        from_change: i64,
    },
    /// The user left or was removed (to the user's feed).
    ChatRemoved { user_id: String, chat_id: String },
    /// `blocker` blocked (`on`) or unblocked `blocked` (to every node's
    /// block watcher, which passes it to both users' feeds as
    /// [`Event::BlocksOf`]).
    BlockChanged {
        blocker: String,
        blocked: String,
        on: bool,
    },
    /// Local only: `user_id`'s blocks changed (`other` blocked or was
    /// blocked by them, `by_me` when `user_id` is the blocker); their
    /// streams re-read them.
    BlocksOf {
        user_id: String,
        other: String,
        on: bool,
        by_me: bool,
    },
    /// Local only: events of this chat may have been missed; re-read storage.
    Resync { chat_id: String },
}

impl Event {
    pub fn topic(&self) -> Topic {
        match self {
            Event::Message(m) => Topic::Chat(m.message.chat_id.clone()),
            Event::Change(c) => Topic::Chat(c.change.chat_id.clone()),
            Event::Receipt { chat_id, .. }
            | Event::Typing { chat_id, .. }
            | Event::Presence { chat_id, .. }
            | Event::MemberChanged { chat_id, .. }
            | Event::Resync { chat_id } => Topic::Chat(chat_id.clone()),
            Event::ChatAdded { user_id, .. }
            | Event::ChatRemoved { user_id, .. }
            | Event::BlocksOf { user_id, .. } => Topic::User(user_id.clone()),
            Event::BlockChanged { .. } => Topic::Blocks,
        }
    }
}
