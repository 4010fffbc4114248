//! The stored things, as plain values (the store maps its rows to these).
//! Timestamps are microseconds since the Unix epoch.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    /// The lower-cased username, unique: usernames differ by more than case.
    pub username_lower: String,
    /// Lower-cased, unique.
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
    /// Tokens issued under an older generation are refused: ChangePassword
    /// and LogoutEverywhere bump it.
    pub token_generation: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    pub id: String,
    /// Empty for an unnamed direct chat.
    pub name: String,
    pub is_group: bool,
    /// Set for direct chats: see [`super::direct_key`].
    pub direct_key: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    /// The seq of the newest message (the count of messages).
    pub last_seq: i64,
    pub last_activity_at: i64,
    /// The change_seq of the newest change (see [`super::Change`]).
    pub last_change: i64,
}

impl Chat {
    /// A group room's owner: its creator. Direct chats have none.
    pub fn owner(&self) -> Option<&str> {
        self.is_group.then_some(self.created_by.as_str())
    }
}

/// A member of a chat, with how far they have got in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub chat_id: String,
    pub user_id: String,
    pub joined_at: i64,
    pub delivered_seq: i64,
    pub read_seq: i64,
}

/// A file sent with a message (its bytes are in the object store). The
/// facts are measured at upload and never change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    /// As uploaded, without any directory part.
    pub name: String,
    /// Sniffed from the bytes.
    pub content_type: String,
    pub size: i64,
    /// Images only (0 otherwise).
    #[serde(default)]
    pub width: i32,
    #[serde(default)]
    pub height: i32,
    #[serde(default)]
    pub has_thumbnail: bool,
}

/// A stored message. It travels between nodes inside events, so it is
/// serialisable; its idempotency key stays on the node that stored it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub chat_id: String,
    /// 1, 2, 3, … per chat, without gaps.
    pub seq: i64,
    pub sender_id: String,
    #[serde(skip)]
    pub idempotency_key: Option<String>,
    /// Empty once deleted (erased, not hidden).
    pub content: String,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// The message of the same chat this one answers.
    pub reply_to_id: Option<String>,
    /// Ids of the members it mentions (`@username`), as resolved when it was
    /// sent or last edited.
    pub mentions: Vec<String>,
    /// The files sent with it, in order (none once deleted).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Only in one viewer's copy: the sender is someone the viewer blocked,
    /// and content and mentions were withheld ([`super::BlockSet::redact`]).
    #[serde(skip)]
    pub hidden: bool,
}
