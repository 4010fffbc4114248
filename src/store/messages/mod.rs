//! Messages: storing sends in batches, idempotency look-ups, and reads by
//! seq.
//!
//! - [`append`]: the batch transaction (group commit) on SQLite, and one
//!   message in its own transaction (the slow path of a batch that hit a
//!   unique index);
//! - [`postgres`]: the batch as one statement on PostgreSQL
//!   (`append_batch.sql`);
//! - [`repeats`]: one idempotency key sent twice within one batch;
//! - here: the types of a batch and its outcomes, and the reads.

mod append;
mod postgres;
mod repeats;

use std::collections::{HashMap, HashSet};

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entities::{chat_member, mention, message, message_file, models, user};
use super::{Store, StoreResult};
use crate::domain::{Attachment, Message};

/// A message to store; `seq` is assigned by [`Store::append_batch`] or
/// [`Store::append_message`].
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: String,
    pub chat_id: String,
    pub sender_id: String,
    pub idempotency_key: Option<String>,
    pub content: String,
    pub created_at: i64,
    /// Checked by the caller: a message of the same chat.
    pub reply_to_id: Option<String>,
    /// Ids of the members it mentions (stored with the message, and one
    /// `mentions` row each for unread-mention counts).
    pub mentions: Vec<String>,
    /// Files of the sender's, checked by the caller (uploaded by the
    /// sender, in no message yet). A file another message took meanwhile
    /// makes the insert a unique violation.
    pub attachments: Vec<Attachment>,
}

impl NewMessage {
    /// The row this message becomes with `seq`.
    pub(super) fn stored_as(&self, seq: i64) -> Message {
        Message {
            hidden: false,
            id: self.id.clone(),
            chat_id: self.chat_id.clone(),
            seq,
            sender_id: self.sender_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            content: self.content.clone(),
            created_at: self.created_at,
            edited_at: None,
            deleted_at: None,
            reply_to_id: self.reply_to_id.clone(),
            mentions: self.mentions.clone(),
            attachments: self.attachments.clone(),
        }
    }
}

/// What became of one message of [`Store::append_batch`].
#[derive(Clone, Debug)]
pub enum Appended {
    /// Stored now, with this seq; `username` is the sender's.
    Inserted { message: Message, username: String },
    /// The sender's idempotency key was already used: the stored message
    /// (which may differ in chat or content; the caller decides).
    Existing(Message),
    /// The sender is not a member of the chat (or there is no such chat).
    NotMember,
    /// The sender's user row is gone.
    UnknownSender,
}

/// Which slice of a chat's history to read.
#[derive(Clone, Copy, Debug)]
pub enum Window {
    /// Newest first, skipping `offset` messages.
    Newest { offset: u64 },
    /// Newest first, only `seq < before`.
    Before(i64),
    /// Oldest first, only `seq > after`.
    After(i64),
}

impl Store {
    pub async fn message_by_sender_key(
        &self,
        sender_id: &str,
        key: &str,
    ) -> StoreResult<Option<Message>> {
        Ok(message::Entity::find()
            .filter(message::Column::SenderId.eq(sender_id))
            .filter(message::Column::IdempotencyKey.eq(key))
            .all(self.conn())
            .await?
            .into_iter()
            .next()
            .map(Message::from))
    }

    pub async fn message_by_id(&self, id: &str) -> StoreResult<Option<Message>> {
        Ok(message::Entity::find_by_id(id.to_owned())
            .all(self.conn())
            .await?
            .into_iter()
            .next()
            .map(Message::from))
    }

    /// Up to `limit` messages of a chat in the given window.
    pub async fn messages(
        &self,
        chat_id: &str,
        window: Window,
        limit: u64,
    ) -> StoreResult<Vec<Message>> {
        let q = message::Entity::find().filter(message::Column::ChatId.eq(chat_id));
        let q = match window {
            Window::Newest { offset } => q.order_by_desc(message::Column::Seq).offset(offset),
            Window::Before(before) => q
                .filter(message::Column::Seq.lt(before))
                .order_by_desc(message::Column::Seq),
            Window::After(after) => q
                .filter(message::Column::Seq.gt(after))
                .order_by_asc(message::Column::Seq),
        };
        Ok(models(q.limit(limit).all(self.conn()).await?))
    }

    /// Messages with `from <= seq < to`, oldest first: gap fill for streams.
    pub async fn messages_between(
        &self,
        chat_id: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<Message>> {
        Ok(models(
            message::Entity::find()
                .filter(
                    Condition::all()
                        .add(message::Column::ChatId.eq(chat_id))
                        .add(message::Column::Seq.gte(from))
                        .add(message::Column::Seq.lt(to)),
                )
                .order_by_asc(message::Column::Seq)
                .all(self.conn())
                .await?,
        ))
    }

    /// Which (chat, sender) pairs of these messages are memberships.
    pub(super) async fn memberships<'a>(
        &self,
        messages: impl Iterator<Item = &'a NewMessage>,
    ) -> StoreResult<HashSet<(String, String)>> {
        let mut pairs: Vec<(&str, &str)> = messages
            .map(|n| (n.chat_id.as_str(), n.sender_id.as_str()))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        Ok(chat_member::Entity::find()
            .filter(pairs.iter().fold(Condition::any(), |c, (chat, user)| {
                c.add(
                    Condition::all()
                        .add(chat_member::Column::ChatId.eq(*chat))
                        .add(chat_member::Column::UserId.eq(*user)),
                )
            }))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|m| (m.chat_id, m.user_id))
            .collect())
    }

    /// Usernames of these users, by id.
    pub(super) async fn usernames(&self, ids: &[&str]) -> StoreResult<HashMap<String, String>> {
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect())
    }
}

/// One `mentions` row per member each of these messages mentions, for the
/// unread-mention counts (the message row keeps the ids too, for reads).
pub(super) async fn insert_mentions<'a>(
    conn: &impl ConnectionTrait,
    messages: impl Iterator<Item = &'a Message>,
) -> Result<(), DbErr> {
    let rows: Vec<mention::ActiveModel> = messages
        .flat_map(|m| {
            m.mentions.iter().map(|user_id| {
                mention::Model {
                    message_id: m.id.clone(),
                    user_id: user_id.clone(),
                    chat_id: m.chat_id.clone(),
                    seq: m.seq,
                }
                .into_active_model()
            })
        })
        .collect();
    if !rows.is_empty() {
        mention::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// One `message_files` row per attachment of these messages: what says
/// which chat may read a file, and that it is in a message (a second attach
/// of the same file is a unique violation).
pub(super) async fn insert_message_files<'a>(
    conn: &impl ConnectionTrait,
    messages: impl Iterator<Item = &'a Message>,
) -> Result<(), DbErr> {
    let rows: Vec<message_file::ActiveModel> = messages
        .flat_map(|m| {
            m.attachments.iter().enumerate().map(|(i, a)| {
                message_file::Model {
                    file_id: a.id.clone(),
                    message_id: m.id.clone(),
                    chat_id: m.chat_id.clone(),
                    position: i32::try_from(i).unwrap_or(i32::MAX),
                }
                .into_active_model()
            })
        })
        .collect();
    if !rows.is_empty() {
        message_file::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}
