//! What a member sees of messages and chats.

use super::model::{Chat, Message, User};
use super::status::Status;

/// A message with its status as the chat's watermarks say, and what a
/// client needs to draw it: the quote it answers and its reactions.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub message: Message,
    pub status: Status,
    /// The sender's username.
    pub username: String,
    pub quote: Option<Quote>,
    pub reactions: Vec<Reactions>,
}

/// The message another one answers, as much as a quote needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quote {
    pub message_id: String,
    pub user_id: String,
    pub username: String,
    /// The first [`QUOTE_CHARS`] characters ("" once deleted).
    pub excerpt: String,
    pub deleted: bool,
    /// Only in one viewer's copy: the quoted sender is someone the viewer
    /// blocked, and the excerpt was withheld.
    #[serde(default)]
    pub hidden: bool,
}

/// How much of a quoted message's content a quote carries.
pub const QUOTE_CHARS: usize = 200;

impl Quote {
    pub fn of(message: &Message, username: String) -> Quote {
        Quote {
            message_id: message.id.clone(),
            user_id: message.sender_id.clone(),
            username,
            excerpt: message.content.chars().take(QUOTE_CHARS).collect(),
            deleted: message.deleted_at.is_some(),
            hidden: false,
        }
    }
}

/// The reactions of one emoji on a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reactions {
    pub emoji: String,
    pub count: i64,
    /// Whether the viewer is one of them.
    pub mine: bool,
    /// The first few (at most [`REACTION_USERS`]), oldest first.
    pub user_ids: Vec<String>,
}

/// How many of the users who reacted with one emoji a summary names.
pub const REACTION_USERS: usize = 5;

/// A chat as one member sees it.
#[derive(Debug, Clone)]
pub struct ChatView {
    pub chat: Chat,
    /// The stored name, or for an unnamed direct chat the peer's username.
    pub display_name: String,
    pub members: Vec<User>,
    pub last_message: Option<MessageView>,
    pub unread_count: i64,
    /// Unread messages that mention the viewer.
    pub unread_mentions: i64,
    pub read_seq: i64,
}
