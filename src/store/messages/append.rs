//! Storing a batch of sends in one transaction (the general path, which
//! SQLite takes), and one send in its own transaction.

use std::collections::HashMap;

use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbBackend, EntityTrait, IntoActiveModel, QueryFilter,
    TransactionTrait,
};

use super::repeats::{Repeats, answer_followers};
use super::{Appended, NewMessage, insert_mentions, insert_message_files};
use crate::domain::Message;
use crate::store::entities::{chat, chat_member, message};
use crate::store::{Store, StoreError, StoreResult};

impl Store {
    /// Appends a batch of messages in one transaction (group commit): one
    /// seq bump per chat (`last_seq + n`), one multi-row insert, one
    /// watermark update per (chat, sender), one commit. Each message gets its
    /// own outcome, in the batch's order; seqs follow the batch's order
    /// within each chat.
    ///
    /// Checked before the transaction, in one query each for the whole
    /// batch: membership of the sender, the sender's username, and the
    /// idempotency keys already stored. A key repeated inside the batch is
    /// inserted once: the later ones get the first one's message as
    /// [`Appended::Existing`]. If the insert still hits the unique index (a
    /// concurrent insert by another node), the batch is rolled back and
    /// every message is appended on its own, so each answer stays exact.
    ///
    /// An `Err` means the whole batch failed and nothing was stored.
    pub async fn append_batch(
        &self,
        batch: &[NewMessage],
    ) -> StoreResult<Vec<StoreResult<Appended>>> {
        if self.conn().get_database_backend() == DbBackend::Postgres {
            return self.append_batch_postgres(batch).await;
        }
        let members = self.memberships(batch.iter()).await?;

        let mut senders: Vec<&str> = batch.iter().map(|n| n.sender_id.as_str()).collect();
        senders.sort_unstable();
        senders.dedup();
        let names = self.usernames(&senders).await?;

        let mut keyed: Vec<(&str, &str)> = batch
            .iter()
            .filter_map(|n| {
                n.idempotency_key
                    .as_deref()
                    .map(|k| (n.sender_id.as_str(), k))
            })
            .collect();
        keyed.sort_unstable();
        keyed.dedup();
        let mut stored: HashMap<(String, String), Message> = HashMap::new();
        if !keyed.is_empty() {
            let found = message::Entity::find()
                .filter(keyed.iter().fold(Condition::any(), |c, (sender, key)| {
                    c.add(
                        Condition::all()
                            .add(message::Column::SenderId.eq(*sender))
                            .add(message::Column::IdempotencyKey.eq(*key)),
                    )
                }))
                .all(self.conn())
                .await?;
            for m in found.into_iter().map(Message::from) {
                if let Some(key) = m.idempotency_key.clone() {
                    stored.insert((m.sender_id.clone(), key), m);
                }
            }
        }

        // Sort the batch: answered now, a repeat of an earlier one, or new.
        let mut out: Vec<Option<StoreResult<Appended>>> = batch.iter().map(|_| None).collect();
        let mut repeats = Repeats::default();
        let mut fresh: Vec<usize> = Vec::new();
        for (i, new) in batch.iter().enumerate() {
            if !members.contains(&(new.chat_id.clone(), new.sender_id.clone())) {
                out[i] = Some(Ok(Appended::NotMember));
                continue;
            }
            if !names.contains_key(&new.sender_id) {
                out[i] = Some(Ok(Appended::UnknownSender));
                continue;
            }
            if let Some(key) = new.idempotency_key.as_deref()
                && let Some(m) = stored.get(&(new.sender_id.clone(), key.to_owned()))
            {
                out[i] = Some(Ok(Appended::Existing(m.clone())));
                continue;
            }
            if repeats.is_first(i, new) {
                fresh.push(i);
            }
        }

        if !fresh.is_empty() {
            match self.insert_batch(batch, &fresh, &names).await {
                Ok(results) => {
                    for (i, r) in fresh.iter().zip(results) {
                        out[*i] = Some(r);
                    }
                }
                Err(StoreError::Conflict(_)) => {
                    // Another node stored one of these keys meanwhile: one
                    // by one, each answer from its own transaction.
                    for &i in &fresh {
                        out[i] = Some(self.append_one(&batch[i], &names).await);
                    }
                }
                Err(e) => return Err(e),
            }
        }

        Ok(answer_followers(out, &repeats.followers))
    }

    /// The transaction of [`Store::append_batch`] for the messages at
    /// `fresh` (members, known senders, keys not stored yet).
    async fn insert_batch(
        &self,
        batch: &[NewMessage],
        fresh: &[usize],
        names: &HashMap<String, String>,
    ) -> StoreResult<Vec<StoreResult<Appended>>> {
        // Chats in order of first appearance, with how many seqs each takes.
        let mut chats: Vec<(&str, i64, i64)> = Vec::new();
        for &i in fresh {
            let n = &batch[i];
            match chats.iter_mut().find(|(c, _, _)| *c == n.chat_id) {
                Some((_, count, at)) => {
                    *count += 1;
                    *at = std::cmp::max(*at, n.created_at);
                }
                None => chats.push((&n.chat_id, 1, n.created_at)),
            }
        }
        let txn = self.conn().begin().await?;
        // Writes first (SQLite: the transaction takes the write lock at
        // once instead of upgrading a read lock).
        // One statement for every chat of the batch:
        // last_seq = last_seq + CASE id WHEN .. THEN n .. END.
        let (bump, active) = chats.iter().fold(
            (CaseStatement::new(), CaseStatement::new()),
            |(bump, active), (chat_id, count, at)| {
                (
                    bump.case(chat::Column::Id.eq(*chat_id), Expr::val(*count)),
                    active.case(chat::Column::Id.eq(*chat_id), Expr::val(*at)),
                )
            },
        );
        let bumped = chat::Entity::update_many()
            .col_expr(
                chat::Column::LastSeq,
                Expr::col(chat::Column::LastSeq).add(bump.finally(Expr::val(0i64))),
            )
            .col_expr(
                chat::Column::LastActivityAt,
                active
                    .finally(Expr::col(chat::Column::LastActivityAt))
                    .into(),
            )
            .filter(chat::Column::Id.is_in(chats.iter().map(|(c, _, _)| *c)))
            .exec_with_returning(&txn)
            .await;
        let bumped = match bumped {
            Ok(rows) => rows,
            Err(e) => {
                txn.rollback().await?;
                return Err(e.into());
            }
        };
        // The first seq each chat hands out in this batch.
        let mut next_seq: HashMap<&str, i64> = HashMap::new();
        for chat in &bumped {
            if let Some((chat_id, count, _)) = chats.iter().find(|(c, _, _)| *c == chat.id) {
                next_seq.insert(chat_id, chat.last_seq - count + 1);
            }
        }
        let mut rows: Vec<Option<Message>> = Vec::with_capacity(fresh.len());
        for &i in fresh {
            let n = &batch[i];
            rows.push(next_seq.get_mut(n.chat_id.as_str()).map(|seq| {
                let row = n.stored_as(*seq);
                *seq += 1;
                row
            }));
        }
        let inserted = message::Entity::insert_many(
            rows.iter()
                .flatten()
                .cloned()
                .map(|m| message::Model::from(m).into_active_model()),
        )
        .exec_without_returning(&txn)
        .await;
        let inserted = match inserted {
            Ok(_) => insert_mentions(&txn, rows.iter().flatten()).await,
            Err(e) => Err(e),
        };
        let inserted = match inserted {
            Ok(()) => insert_message_files(&txn, rows.iter().flatten()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = inserted {
            txn.rollback().await?;
            return Err(e.into());
        }
        // Sending implies having seen the chat up to one's own message.
        let mut seen: Vec<(&str, &str, i64)> = Vec::new();
        for m in rows.iter().flatten() {
            match seen
                .iter_mut()
                .find(|(c, u, _)| *c == m.chat_id && *u == m.sender_id)
            {
                Some((_, _, seq)) => *seq = std::cmp::max(*seq, m.seq),
                None => seen.push((&m.chat_id, &m.sender_id, m.seq)),
            }
        }
        if !seen.is_empty() {
            let this = |chat_id: &str, user_id: &str| {
                Condition::all()
                    .add(chat_member::Column::ChatId.eq(chat_id))
                    .add(chat_member::Column::UserId.eq(user_id))
            };
            let to = seen
                .iter()
                .fold(CaseStatement::new(), |case, (chat_id, user_id, seq)| {
                    case.case(this(chat_id, user_id), Expr::val(*seq))
                });
            let moved = chat_member::Entity::update_many()
                .col_expr(
                    chat_member::Column::DeliveredSeq,
                    to.clone()
                        .finally(Expr::col(chat_member::Column::DeliveredSeq))
                        .into(),
                )
                .col_expr(
                    chat_member::Column::ReadSeq,
                    to.finally(Expr::col(chat_member::Column::ReadSeq)).into(),
                )
                .filter(
                    seen.iter()
                        .fold(Condition::any(), |c, (chat_id, user_id, _)| {
                            c.add(this(chat_id, user_id))
                        }),
                )
                .exec(&txn)
                .await;
            if let Err(e) = moved {
                txn.rollback().await?;
                return Err(e.into());
            }
        }
        txn.commit().await?;
        Ok(rows
            .into_iter()
            .map(|row| match row {
                Some(message) => Ok(Appended::Inserted {
                    username: names.get(&message.sender_id).cloned().unwrap_or_default(),
                    message,
                }),
                None => Err(StoreError::Other(sea_orm::DbErr::RecordNotFound(
                    "chat".into(),
                ))),
            })
            .collect())
    }

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
        let row = message::Model::from(new.stored_as(seq)).into_active_model();
        let inserted = match row.insert(&txn).await {
            Ok(m) => Message::from(m),
            Err(err) => {
                txn.rollback().await?;
                return Err(err.into());
            }
        };
        insert_mentions(&txn, std::iter::once(&inserted)).await?;
        if let Err(err) = insert_message_files(&txn, std::iter::once(&inserted)).await {
            txn.rollback().await?;
            return Err(err.into());
        }
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

    /// One message in its own transaction, a stored key answered with the
    /// stored message (the slow path of [`Store::append_batch`]).
    pub(super) async fn append_one(
        &self,
        new: &NewMessage,
        names: &HashMap<String, String>,
    ) -> StoreResult<Appended> {
        match self.append_message(new.clone()).await {
            Ok(message) => Ok(Appended::Inserted {
                username: names.get(&message.sender_id).cloned().unwrap_or_default(),
                message,
            }),
            Err(StoreError::Conflict(text)) => {
                let key = new.idempotency_key.as_deref().unwrap_or_default();
                match self.message_by_sender_key(&new.sender_id, key).await? {
                    Some(m) => Ok(Appended::Existing(m)),
                    None => Err(StoreError::Conflict(text)),
                }
            }
            Err(e) => Err(e),
        }
    }
}
