//! Chats and their members.

use sea_orm::sea_query::{CaseStatement, Expr, Order};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, TransactionTrait,
};

use super::entities::{chat, chat_member, message, models, user};
use super::{Store, StoreError, StoreResult};
use crate::domain::{Chat, Member, Message, User};

pub(super) fn member(chat_id: &str, user_id: &str, now: i64) -> chat_member::ActiveModel {
    chat_member::Model {
        chat_id: chat_id.to_owned(),
        user_id: user_id.to_owned(),
        joined_at: now,
        delivered_seq: 0,
        read_seq: 0,
    }
    .into_active_model()
}

/// Watermarks per statement in [`Store::raise_delivered_many`].
pub const DELIVERED_CHUNK: usize = 256;

impl Store {
    /// Creates a chat and its members in one transaction (the chat row first,
    /// so the transaction starts with a write). For a direct chat whose pair
    /// already has one, returns the existing chat instead.
    pub async fn create_chat(&self, chat: Chat, member_ids: &[String]) -> StoreResult<Chat> {
        let txn = self.conn().begin().await?;
        let inserted = chat::Model::from(chat.clone())
            .into_active_model()
            .insert(&txn)
            .await;
        let chat = match inserted {
            Ok(row) => Chat::from(row),
            Err(err) => {
                let err = StoreError::from(err);
                txn.rollback().await?;
                if let (StoreError::Conflict(_), Some(key)) = (&err, &chat.direct_key)
                    && let Some(existing) = self.direct_chat(key).await?
                {
                    return Ok(existing);
                }
                return Err(err);
            }
        };
        let now = chat.created_at;
        chat_member::Entity::insert_many(member_ids.iter().map(|id| member(&chat.id, id, now)))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(chat)
    }

    pub async fn direct_chat(&self, key: &str) -> StoreResult<Option<Chat>> {
        Ok(chat::Entity::find()
            .filter(chat::Column::DirectKey.eq(key))
            .all(self.conn())
            .await?
            .into_iter()
            .next()
            .map(Chat::from))
    }

    pub async fn chat_by_id(&self, chat_id: &str) -> StoreResult<Option<Chat>> {
        Ok(chat::Entity::find_by_id(chat_id.to_owned())
            .all(self.conn())
            .await?
            .into_iter()
            .next()
            .map(Chat::from))
    }

    /// The caller's membership row, or `None` when not a member (or no chat).
    /// Whether `a` and `b` are members of at least one chat together.
    pub async fn share_a_chat(&self, a: &str, b: &str) -> StoreResult<bool> {
        let chats_of_a = sea_orm::sea_query::Query::select()
            .column(chat_member::Column::ChatId)
            .from(chat_member::Entity)
            .and_where(chat_member::Column::UserId.eq(a))
            .to_owned();
        Ok(chat_member::Entity::find()
            .filter(chat_member::Column::UserId.eq(b))
            .filter(chat_member::Column::ChatId.in_subquery(chats_of_a))
            .count(self.conn())
            .await?
            > 0)
    }

    pub async fn membership(&self, chat_id: &str, user_id: &str) -> StoreResult<Option<Member>> {
        Ok(
            chat_member::Entity::find_by_id((chat_id.to_owned(), user_id.to_owned()))
                .all(self.conn())
                .await?
                .into_iter()
                .next()
                .map(Member::from),
        )
    }

    /// The chat, if `user_id` is one of its members.
    pub async fn chat_for_member(
        &self,
        chat_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<(Chat, Member)>> {
        let Some(m) = self.membership(chat_id, user_id).await? else {
            return Ok(None);
        };
        Ok(self.chat_by_id(chat_id).await?.map(|c| (c, m)))
    }

    /// Membership rows of a chat (with watermarks).
    pub async fn members(&self, chat_id: &str) -> StoreResult<Vec<Member>> {
        Ok(models(
            chat_member::Entity::find()
                .filter(chat_member::Column::ChatId.eq(chat_id))
                .all(self.conn())
                .await?,
        ))
    }

    /// Members of several chats with their user rows, in one query.
    pub async fn members_with_users(
        &self,
        chat_ids: &[String],
    ) -> StoreResult<Vec<(Member, User)>> {
        if chat_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = chat_member::Entity::find()
            .filter(chat_member::Column::ChatId.is_in(chat_ids.iter().cloned()))
            .order_by_asc(chat_member::Column::JoinedAt)
            .find_also_related(user::Entity)
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(m, u)| u.map(|u| (m.into(), u.into())))
            .collect())
    }

    /// One page of a user's chats, most recently active first, and how many
    /// chats the user has in all.
    pub async fn chats_of_user(
        &self,
        user_id: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<(Chat, Member)>, u64)> {
        let base = chat::Entity::find()
            .join(JoinType::InnerJoin, chat::Relation::Members.def())
            .filter(chat_member::Column::UserId.eq(user_id));
        let total = base.clone().count(self.conn()).await?;
        let chats = base
            .order_by(chat::Column::LastActivityAt, Order::Desc)
            .order_by(chat::Column::Id, Order::Desc)
            .offset(offset)
            .limit(limit)
            .all(self.conn())
            .await?;
        let ids: Vec<String> = chats.iter().map(|c| c.id.clone()).collect();
        let mut mine: Vec<chat_member::Model> = if ids.is_empty() {
            Vec::new()
        } else {
            chat_member::Entity::find()
                .filter(chat_member::Column::UserId.eq(user_id))
                .filter(chat_member::Column::ChatId.is_in(ids))
                .all(self.conn())
                .await?
        };
        let out = chats
            .into_iter()
            .filter_map(|c| {
                let i = mine.iter().position(|m| m.chat_id == c.id)?;
                Some((Chat::from(c), Member::from(mine.swap_remove(i))))
            })
            .collect();
        Ok((out, total))
    }

    /// The newest message of each given chat (`(chat_id, last_seq)` pairs).
    pub async fn last_messages(&self, chats: &[(String, i64)]) -> StoreResult<Vec<Message>> {
        let mut cond = Condition::any();
        let mut any = false;
        for (chat_id, seq) in chats.iter().filter(|(_, seq)| *seq > 0) {
            any = true;
            cond = cond.add(
                Condition::all()
                    .add(message::Column::ChatId.eq(chat_id.as_str()))
                    .add(message::Column::Seq.eq(*seq)),
            );
        }
        if !any {
            return Ok(Vec::new());
        }
        Ok(models(
            message::Entity::find()
                .filter(cond)
                .all(self.conn())
                .await?,
        ))
    }

    /// Moves a member's watermarks up to `seq`; never moves them down.
    /// `read` also moves the delivered watermark. Returns the member's row
    /// when anything moved.
    pub async fn raise_watermarks(
        &self,
        chat_id: &str,
        user_id: &str,
        seq: i64,
        read: bool,
    ) -> StoreResult<Option<Member>> {
        let this = || {
            Condition::all()
                .add(chat_member::Column::ChatId.eq(chat_id))
                .add(chat_member::Column::UserId.eq(user_id))
        };
        let mut moved = chat_member::Entity::update_many()
            .col_expr(chat_member::Column::DeliveredSeq, Expr::value(seq))
            .filter(this())
            .filter(chat_member::Column::DeliveredSeq.lt(seq))
            .exec(self.conn())
            .await?
            .rows_affected
            > 0;
        if read {
            moved |= chat_member::Entity::update_many()
                .col_expr(chat_member::Column::ReadSeq, Expr::value(seq))
                .filter(this())
                .filter(chat_member::Column::ReadSeq.lt(seq))
                .exec(self.conn())
                .await?
                .rows_affected
                > 0;
        }
        if !moved {
            return Ok(None);
        }
        self.membership(chat_id, user_id).await
    }

    /// Raises many delivered watermarks at once (each only upwards), in one
    /// statement per [`DELIVERED_CHUNK`] entries. Returns the rows that moved.
    pub async fn raise_delivered_many(
        &self,
        marks: &[(String, String, i64)],
    ) -> StoreResult<Vec<Member>> {
        let mut moved = Vec::new();
        for chunk in marks.chunks(DELIVERED_CHUNK) {
            let this = |chat_id: &str, user_id: &str| {
                Condition::all()
                    .add(chat_member::Column::ChatId.eq(chat_id))
                    .add(chat_member::Column::UserId.eq(user_id))
            };
            let to = chunk
                .iter()
                .fold(CaseStatement::new(), |case, (chat_id, user_id, seq)| {
                    case.case(this(chat_id, user_id), Expr::val(*seq))
                })
                .finally(Expr::col(chat_member::Column::DeliveredSeq));
            let rows = chat_member::Entity::update_many()
                .col_expr(chat_member::Column::DeliveredSeq, to.into())
                .filter(
                    chunk
                        .iter()
                        .fold(Condition::any(), |c, (chat_id, user_id, seq)| {
                            c.add(
                                this(chat_id, user_id)
                                    .add(chat_member::Column::DeliveredSeq.lt(*seq)),
                            )
                        }),
                )
                .exec_with_returning(self.conn())
                .await?;
            moved.extend(rows.into_iter().map(Member::from));
        }
        Ok(moved)
    }

    /// Every chat the user is a member of.
    pub async fn chats_of_member(&self, user_id: &str) -> StoreResult<Vec<Chat>> {
        Ok(models(
            chat::Entity::find()
                .join(JoinType::InnerJoin, chat::Relation::Members.def())
                .filter(chat_member::Column::UserId.eq(user_id))
                .all(self.conn())
                .await?,
        ))
    }
}
