//! Changes after the fact, each in one transaction with its entry in the
//! chat's change log (`chat_changes`): edits, deletes, reactions, renames,
//! members joining and leaving.
//!
//! Every change transaction starts by bumping the chat's `last_change`
//! ([`log`]): the first statement is a write (SQLite takes its write lock
//! at once), and the chat row stays locked until the commit, so the changes
//! of one chat are numbered in the order they commit, gaplessly, and checks
//! such as the reaction cap see every earlier change. A change that turns
//! out to change nothing (deleting twice, reacting twice) rolls back: it
//! takes no number.

use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::chats::member;
use super::entities::{chat, chat_change, chat_member, mention, message, models, reaction};
use super::messages::insert_mentions;
use super::{Store, StoreError, StoreResult};
use crate::domain::{Change, ChangeKind, Message};

/// Takes the chat's next change number and writes the log entry.
pub(super) async fn log(
    txn: &DatabaseTransaction,
    chat_id: &str,
    user_id: &str,
    kind: ChangeKind,
    at: i64,
) -> StoreResult<Change> {
    let bumped = chat::Entity::update_many()
        .col_expr(
            chat::Column::LastChange,
            Expr::col(chat::Column::LastChange).add(1),
        )
        .filter(chat::Column::Id.eq(chat_id))
        .exec_with_returning(txn)
        .await?;
    let Some(chat) = bumped.into_iter().next() else {
        return Err(StoreError::Other(sea_orm::DbErr::RecordNotFound(
            "chat".into(),
        )));
    };
    let payload = serde_json::to_string(&kind)
        .map_err(|e| StoreError::Other(sea_orm::DbErr::Custom(e.to_string())))?;
    let change = Change {
        chat_id: chat_id.to_owned(),
        seq: chat.last_change,
        at,
        user_id: user_id.to_owned(),
        kind,
    };
    chat_change::Model {
        chat_id: change.chat_id.clone(),
        change_seq: change.seq,
        kind: change.kind.name().to_owned(),
        message_id: change.kind.message_id().map(str::to_owned),
        user_id: change.user_id.clone(),
        payload,
        created_at: at,
    }
    .into_active_model()
    .insert(txn)
    .await?;
    Ok(change)
}

fn change_of(row: chat_change::Model) -> StoreResult<Change> {
    let kind = serde_json::from_str(&row.payload)
        .map_err(|e| StoreError::Other(sea_orm::DbErr::Custom(format!("change log: {e}"))))?;
    Ok(Change {
        chat_id: row.chat_id,
        seq: row.change_seq,
        at: row.created_at,
        user_id: row.user_id,
        kind,
    })
}

impl Store {
    /// Replaces the content (and the mentions) of a message that is not
    /// deleted. `None`: it is deleted (nothing changed).
    pub async fn edit_message(
        &self,
        message: &Message,
        content: &str,
        mentions: &[String],
        at: i64,
    ) -> StoreResult<Option<(Message, Change)>> {
        let txn = self.conn().begin().await?;
        let kind = ChangeKind::Edited {
            message_id: message.id.clone(),
        };
        let change = log(&txn, &message.chat_id, &message.sender_id, kind, at).await?;
        let updated = message::Entity::update_many()
            .col_expr(message::Column::Content, Expr::value(content))
            .col_expr(message::Column::EditedAt, Expr::value(at))
            .col_expr(message::Column::Mentions, Expr::value(mentions.join(" ")))
            .filter(message::Column::Id.eq(message.id.as_str()))
            .filter(message::Column::DeletedAt.is_null())
            .exec_with_returning(&txn)
            .await?;
        let Some(row) = updated.into_iter().next() else {
            txn.rollback().await?;
            return Ok(None);
        };
        let edited = Message::from(row);
        mention::Entity::delete_many()
            .filter(mention::Column::MessageId.eq(edited.id.as_str()))
            .exec(&txn)
            .await?;
        insert_mentions(&txn, std::iter::once(&edited)).await?;
        txn.commit().await?;
        Ok(Some((edited, change)))
    }

    /// Erases a message's content and keeps the tombstone (its reactions,
    /// mentions and attachments go too: its files are let go as garbage
    /// for [`Store::garbage_files`], see there). `None`: it was deleted
    /// already.
    pub async fn delete_message(
        &self,
        message: &Message,
        by: &str,
        at: i64,
    ) -> StoreResult<Option<(Message, Change)>> {
        let txn = self.conn().begin().await?;
        let kind = ChangeKind::Deleted {
            message_id: message.id.clone(),
        };
        let change = log(&txn, &message.chat_id, by, kind, at).await?;
        let updated = message::Entity::update_many()
            .col_expr(message::Column::Content, Expr::value(""))
            .col_expr(message::Column::DeletedAt, Expr::value(at))
            .col_expr(message::Column::Mentions, Expr::value(""))
            .col_expr(message::Column::Attachments, Expr::value(""))
            .filter(message::Column::Id.eq(message.id.as_str()))
            .filter(message::Column::DeletedAt.is_null())
            .exec_with_returning(&txn)
            .await?;
        let Some(row) = updated.into_iter().next() else {
            txn.rollback().await?;
            return Ok(None);
        };
        super::files::release_files_of(&txn, &message.id).await?;
        for result in [
            mention::Entity::delete_many()
                .filter(mention::Column::MessageId.eq(message.id.as_str()))
                .exec(&txn)
                .await,
            reaction::Entity::delete_many()
                .filter(reaction::Column::MessageId.eq(message.id.as_str()))
                .exec(&txn)
                .await,
        ] {
            result?;
        }
        txn.commit().await?;
        Ok(Some((Message::from(row), change)))
    }

    /// Renames a chat. `None`: it has that name already.
    pub async fn rename_chat(
        &self,
        chat_id: &str,
        name: &str,
        by: &str,
        at: i64,
    ) -> StoreResult<Option<Change>> {
        let txn = self.conn().begin().await?;
        let kind = ChangeKind::Renamed {
            name: name.to_owned(),
        };
        let change = log(&txn, chat_id, by, kind, at).await?;
        let renamed = chat::Entity::update_many()
            .col_expr(chat::Column::Name, Expr::value(name))
            .filter(chat::Column::Id.eq(chat_id))
            .filter(chat::Column::Name.ne(name))
            .exec(&txn)
            .await?;
        if renamed.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        Ok(Some(change))
    }

    /// Adds members to a chat, added by `by`. New members start with the
    /// history read (their watermarks at the chat's last seq). Existing
    /// members are left alone. Returns the chat as it stands after (its
    /// last seq and last change are where the new members start) and one
    /// change per member added.
    pub async fn add_members(
        &self,
        chat_id: &str,
        user_ids: &[String],
        by: &str,
        at: i64,
    ) -> StoreResult<Option<(crate::domain::Chat, Vec<Change>)>> {
        let txn = self.conn().begin().await?;
        // A write first (see `create_chat`), which also locks the chat row so
        // no message slips between reading last_seq and adding the members.
        let bumped = chat::Entity::update_many()
            .col_expr(
                chat::Column::LastActivityAt,
                Expr::col(chat::Column::LastActivityAt),
            )
            .filter(chat::Column::Id.eq(chat_id))
            .exec_with_returning(&txn)
            .await?;
        let Some(chat) = bumped.into_iter().next() else {
            txn.rollback().await?;
            return Ok(None);
        };
        let existing: Vec<String> = chat_member::Entity::find()
            .filter(chat_member::Column::ChatId.eq(chat_id))
            .filter(chat_member::Column::UserId.is_in(user_ids.iter().cloned()))
            .all(&txn)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        let added: Vec<String> = user_ids
            .iter()
            .filter(|id| !existing.contains(id))
            .cloned()
            .collect();
        let mut changes = Vec::with_capacity(added.len());
        if !added.is_empty() {
            chat_member::Entity::insert_many(added.iter().map(|id| {
                let mut m = member(chat_id, id, at);
                m.delivered_seq = sea_orm::Set(chat.last_seq);
                m.read_seq = sea_orm::Set(chat.last_seq);
                m
            }))
            .exec(&txn)
            .await?;
            for user_id in &added {
                let kind = ChangeKind::Member {
                    user_id: user_id.clone(),
                    joined: true,
                };
                changes.push(log(&txn, chat_id, by, kind, at).await?);
            }
        }
        txn.commit().await?;
        let mut chat = crate::domain::Chat::from(chat);
        chat.last_change += changes.len() as i64;
        Ok(Some((chat, changes)))
    }

    /// Removes a member (leaving: `by` is the member). `None`: not a member.
    pub async fn remove_member(
        &self,
        chat_id: &str,
        user_id: &str,
        by: &str,
        at: i64,
    ) -> StoreResult<Option<Change>> {
        let txn = self.conn().begin().await?;
        let kind = ChangeKind::Member {
            user_id: user_id.to_owned(),
            joined: false,
        };
        let change = log(&txn, chat_id, by, kind, at).await?;
        let removed = chat_member::Entity::delete_many()
            .filter(chat_member::Column::ChatId.eq(chat_id))
            .filter(chat_member::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        Ok(Some(change))
    }

    /// A chat's changes with `from <= change_seq < to`, oldest first.
    pub async fn changes_between(
        &self,
        chat_id: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<Change>> {
        chat_change::Entity::find()
            .filter(chat_change::Column::ChatId.eq(chat_id))
            .filter(chat_change::Column::ChangeSeq.gte(from))
            .filter(chat_change::Column::ChangeSeq.lt(to))
            .order_by_asc(chat_change::Column::ChangeSeq)
            .all(self.conn())
            .await?
            .into_iter()
            .map(change_of)
            .collect()
    }

    /// The messages with these ids.
    pub async fn messages_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(models(
            message::Entity::find()
                .filter(message::Column::Id.is_in(ids.iter().cloned()))
                .all(self.conn())
                .await?,
        ))
    }

    /// How many messages of each chat mention `user_id` above their read
    /// seq: `(chat_id, read_seq)` in, `(chat_id, count)` out (chats with
    /// none left out).
    pub async fn unread_mentions(
        &self,
        user_id: &str,
        chats: &[(String, i64)],
    ) -> StoreResult<Vec<(String, i64)>> {
        if chats.is_empty() {
            return Ok(Vec::new());
        }
        let above_read = chats
            .iter()
            .fold(Condition::any(), |c, (chat_id, read_seq)| {
                c.add(
                    Condition::all()
                        .add(mention::Column::ChatId.eq(chat_id.as_str()))
                        .add(mention::Column::Seq.gt(*read_seq)),
                )
            });
        Ok(mention::Entity::find()
            .select_only()
            .column(mention::Column::ChatId)
            .column_as(mention::Column::Seq.count(), "n")
            .filter(mention::Column::UserId.eq(user_id))
            .filter(above_read)
            .group_by(mention::Column::ChatId)
            .into_tuple::<(String, i64)>()
            .all(self.conn())
            .await?)
    }
}
