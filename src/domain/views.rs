//! What a member sees of messages and chats.

use super::model::{Chat, Message, User};
use super::status::Status;

/// A message with its status as the chat's watermarks say.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub message: Message,
    pub status: Status,
    /// The sender's username.
    pub username: String,
}

/// A chat as one member sees it.
#[derive(Debug, Clone)]
pub struct ChatView {
    pub chat: Chat,
    /// The stored name, or for an unnamed direct chat the peer's username.
    pub display_name: String,
    pub members: Vec<User>,
    pub last_message: Option<MessageView>,
    pub unread_count: i64,
    pub read_seq: i64,
}
