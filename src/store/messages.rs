//! Messages: the send transaction, idempotency look-ups and reads by seq.

use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::entities::{chat, chat_member, message};
use super::{Store, StoreError, StoreResult};

pub use message::Model as Message;

/// A message to store; `seq` is assigned by [`Store::append_message`].
pub struct NewMessage {
    pub id: String,
    pub chat_id: String,
    pub sender_id: String,
    pub idempotency_key: Option<String>,
    pub content: String,
    pub created_at: i64,
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
    /// Appends a message: takes the chat's next seq, inserts the row and moves
    /// the sender's own watermarks to it, all in one transaction. The first
    /// statement is a write (the seq bump), which also serialises concurrent
    /// sends to one chat on the chat row. A duplicate (sender, key) rolls the
    /// whole transaction back, so the seq is not consumed.
    pub async fn append_message(&self, new: NewMessage) -> StoreResult<Message> {
        let txn = self.conn().begin().await?;
        let bumped = chat::Entity::update_many()
            .col_expr(
                chat::Column::LastSeq,
                Expr::col(chat::Column::LastSeq).add(1),
            )
            .col_expr(chat::Column::LastActivityAt, Expr::value(new.created_at))
            .filter(chat::Column::Id.eq(new.chat_id.as_str()))
            .exec_with_returning(&txn)
            .await?;
        let Some(chat) = bumped.into_iter().next() else {
            txn.rollback().await?;
            return Err(StoreError::Other(sea_orm::DbErr::RecordNotFound(
                "chat".into(),
            )));
        };
        let seq = chat.last_seq;
        let row = Message {
            id: new.id,
            chat_id: new.chat_id,
            seq,
            sender_id: new.sender_id,
            idempotency_key: new.idempotency_key,
            content: new.content,
            created_at: new.created_at,
        };
        let inserted = match row.into_active_model().insert(&txn).await {
            Ok(m) => m,
            Err(err) => {
                txn.rollback().await?;
                return Err(err.into());
            }
        };
        // Sending implies having seen the chat up to one's own message.
        chat_member::Entity::update_many()
            .col_expr(chat_member::Column::DeliveredSeq, Expr::value(seq))
            .col_expr(chat_member::Column::ReadSeq, Expr::value(seq))
            .filter(chat_member::Column::ChatId.eq(inserted.chat_id.as_str()))
            .filter(chat_member::Column::UserId.eq(inserted.sender_id.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(inserted)
    }

    pub async fn message_by_sender_key(
        &self,
        sender_id: &str,
        key: &str,
    ) -> StoreResult<Option<Message>> {
        Ok(message::Entity::find()
            .filter(message::Column::SenderId.eq(sender_id))
            .filter(message::Column::IdempotencyKey.eq(key))
            .one(self.conn())
            .await?)
    }

    pub async fn message_by_id(&self, id: &str) -> StoreResult<Option<Message>> {
        Ok(message::Entity::find_by_id(id.to_owned())
            .one(self.conn())
            .await?)
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
        Ok(q.limit(limit).all(self.conn()).await?)
    }

    /// Messages with `from <= seq < to`, oldest first: gap fill for streams.
    pub async fn messages_between(
        &self,
        chat_id: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<Message>> {
        Ok(message::Entity::find()
            .filter(
                Condition::all()
                    .add(message::Column::ChatId.eq(chat_id))
                    .add(message::Column::Seq.gte(from))
                    .add(message::Column::Seq.lt(to)),
            )
            .order_by_asc(message::Column::Seq)
            .all(self.conn())
            .await?)
    }
}
