//! Reactions: adding and taking back (each a logged change, see
//! `super::changes`) and reading them.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use super::changes::log;
use super::entities::{chat_change, reaction};
use super::{Store, StoreError, StoreResult};
use crate::domain::{Change, ChangeKind, Message};

/// What became of an AddReaction.
#[derive(Debug)]
pub enum Reacted {
    Added(Change),
    /// The user had this reaction already: nothing changed.
    Already,
    /// The message has the most distinct emoji it may have.
    TooMany,
}

impl Store {
    /// Adds `user_id`'s `emoji` to a (not deleted) message, unless it is
    /// there already or the message has `max_distinct` other emoji.
    pub async fn add_reaction(
        &self,
        message: &Message,
        user_id: &str,
        emoji: &str,
        max_distinct: u64,
        at: i64,
    ) -> StoreResult<Reacted> {
        let txn = self.conn().begin().await?;
        // Numbered first, so the chat row is locked while the cap is checked.
        let placeholder = ChangeKind::Reaction {
            message_id: message.id.clone(),
            emoji: emoji.to_owned(),
            added: true,
            count: 0,
        };
        let change = log(&txn, &message.chat_id, user_id, placeholder, at).await?;
        let inserted = reaction::Entity::insert(
            reaction::Model {
                message_id: message.id.clone(),
                user_id: user_id.to_owned(),
                emoji: emoji.to_owned(),
                chat_id: message.chat_id.clone(),
                created_at: at,
            }
            .into_active_model(),
        )
        .on_conflict(
            OnConflict::columns([
                reaction::Column::MessageId,
                reaction::Column::UserId,
                reaction::Column::Emoji,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(Reacted::Already);
        }
        let distinct = distinct_emoji(&txn, &message.id).await?;
        if distinct > max_distinct {
            txn.rollback().await?;
            return Ok(Reacted::TooMany);
        }
        let count = emoji_count(&txn, &message.id, emoji).await?;
        let change = set_reaction_count(&txn, change, count).await?;
        txn.commit().await?;
        Ok(Reacted::Added(change))
    }

    /// Takes `user_id`'s `emoji` back. `None`: they had not reacted so.
    pub async fn remove_reaction(
        &self,
        message: &Message,
        user_id: &str,
        emoji: &str,
        at: i64,
    ) -> StoreResult<Option<Change>> {
        let txn = self.conn().begin().await?;
        let placeholder = ChangeKind::Reaction {
            message_id: message.id.clone(),
            emoji: emoji.to_owned(),
            added: false,
            count: 0,
        };
        let change = log(&txn, &message.chat_id, user_id, placeholder, at).await?;
        let removed = reaction::Entity::delete_many()
            .filter(reaction::Column::MessageId.eq(message.id.as_str()))
            .filter(reaction::Column::UserId.eq(user_id))
            .filter(reaction::Column::Emoji.eq(emoji))
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let count = emoji_count(&txn, &message.id, emoji).await?;
        let change = set_reaction_count(&txn, change, count).await?;
        txn.commit().await?;
        Ok(Some(change))
    }

    /// The reactions on these messages, `(message_id, emoji, user_id)`,
    /// oldest first.
    pub async fn reactions_of(
        &self,
        message_ids: &[String],
    ) -> StoreResult<Vec<(String, String, String)>> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<reaction::Model> = reaction::Entity::find()
            .filter(reaction::Column::MessageId.is_in(message_ids.iter().cloned()))
            .order_by_asc(reaction::Column::CreatedAt)
            .order_by_asc(reaction::Column::UserId)
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.message_id, r.emoji, r.user_id))
            .collect())
    }
}

async fn distinct_emoji(conn: &impl ConnectionTrait, message_id: &str) -> StoreResult<u64> {
    let rows: Vec<reaction::Model> = reaction::Entity::find()
        .filter(reaction::Column::MessageId.eq(message_id))
        .all(conn)
        .await?;
    let mut emoji: Vec<&str> = rows.iter().map(|r| r.emoji.as_str()).collect();
    emoji.sort_unstable();
    emoji.dedup();
    Ok(emoji.len() as u64)
}

async fn emoji_count(
    conn: &impl ConnectionTrait,
    message_id: &str,
    emoji: &str,
) -> StoreResult<i64> {
    Ok(reaction::Entity::find()
        .filter(reaction::Column::MessageId.eq(message_id))
        .filter(reaction::Column::Emoji.eq(emoji))
        .count(conn)
        .await? as i64)
}

/// The log entry of a reaction, with the count known only after it.
async fn set_reaction_count(
    txn: &DatabaseTransaction,
    mut change: Change,
    count: i64,
) -> StoreResult<Change> {
    if let ChangeKind::Reaction { count: c, .. } = &mut change.kind {
        *c = count;
    }
    let payload = serde_json::to_string(&change.kind)
        .map_err(|e| StoreError::Other(sea_orm::DbErr::Custom(e.to_string())))?;
    chat_change::Entity::update_many()
        .col_expr(chat_change::Column::Payload, Expr::value(payload))
        .filter(chat_change::Column::ChatId.eq(change.chat_id.as_str()))
        .filter(chat_change::Column::ChangeSeq.eq(change.seq))
        .exec(txn)
        .await?;
    Ok(change)
}
