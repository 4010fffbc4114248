//! Blocks: who blocked whom (see `crate::domain::blocks`).

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
};

use super::entities::block;
use super::{Store, StoreResult};
use crate::domain::{BlockSet, User};

/// What became of a block.
#[derive(Debug, PartialEq, Eq)]
pub enum Blocked {
    /// Stored now, or already there (then `at` is when it was made).
    Done { at: i64, new: bool },
    /// The blocker has the most blocks one may have.
    TooMany,
}

impl Store {
    /// Stores that `blocker` blocked `blocked` (idempotent), unless the
    /// blocker has `max` blocks already.
    pub async fn insert_block(
        &self,
        blocker: &str,
        blocked: &str,
        at: i64,
        max: u64,
    ) -> StoreResult<Blocked> {
        if let Some(row) = self.block_row(blocker, blocked).await? {
            return Ok(Blocked::Done {
                at: row.created_at,
                new: false,
            });
        }
        let count = block::Entity::find()
            .filter(block::Column::BlockerId.eq(blocker))
            .count(self.conn())
            .await?;
        if count >= max {
            return Ok(Blocked::TooMany);
        }
        let inserted = block::Entity::insert(
            block::Model {
                blocker_id: blocker.to_owned(),
                blocked_id: blocked.to_owned(),
                created_at: at,
            }
            .into_active_model(),
        )
        .on_conflict(
            OnConflict::columns([block::Column::BlockerId, block::Column::BlockedId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self.conn())
        .await?;
        if inserted == 0 {
            // A concurrent identical block won: report that one.
            let at = self
                .block_row(blocker, blocked)
                .await?
                .map_or(at, |r| r.created_at);
            return Ok(Blocked::Done { at, new: false });
        }
        Ok(Blocked::Done { at, new: true })
    }

    async fn block_row(&self, blocker: &str, blocked: &str) -> StoreResult<Option<block::Model>> {
        Ok(
            block::Entity::find_by_id((blocker.to_owned(), blocked.to_owned()))
                .all(self.conn())
                .await?
                .into_iter()
                .next(),
        )
    }

    /// Removes a block; true if there was one.
    pub async fn delete_block(&self, blocker: &str, blocked: &str) -> StoreResult<bool> {
        let done = block::Entity::delete_many()
            .filter(block::Column::BlockerId.eq(blocker))
            .filter(block::Column::BlockedId.eq(blocked))
            .exec(self.conn())
            .await?;
        Ok(done.rows_affected > 0)
    }

    /// The users `blocker` blocked, with when, most recent first.
    pub async fn blocked_users(&self, blocker: &str) -> StoreResult<Vec<(User, i64)>> {
        let rows = block::Entity::find()
            .filter(block::Column::BlockerId.eq(blocker))
            .order_by_desc(block::Column::CreatedAt)
            .order_by_asc(block::Column::BlockedId)
            .all(self.conn())
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.blocked_id.clone()).collect();
        let mut users: std::collections::HashMap<String, User> = self
            .users_by_ids(&ids)
            .await?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect();
        Ok(rows
            .into_iter()
            .filter_map(|r| users.remove(&r.blocked_id).map(|u| (u, r.created_at)))
            .collect())
    }

    /// `user_id`'s blocks both ways, in one query.
    pub async fn block_set(&self, user_id: &str) -> StoreResult<BlockSet> {
        let rows = block::Entity::find()
            .filter(
                Condition::any()
                    .add(block::Column::BlockerId.eq(user_id))
                    .add(block::Column::BlockedId.eq(user_id)),
            )
            .all(self.conn())
            .await?;
        let mut set = BlockSet::default();
        for r in rows {
            if r.blocker_id == user_id {
                set.blocked.insert(r.blocked_id);
            } else {
                set.blocked_by.insert(r.blocker_id);
            }
        }
        Ok(set)
    }

    /// Those of `among` who blocked `user_id`.
    pub async fn blockers_among(
        &self,
        user_id: &str,
        among: &[String],
    ) -> StoreResult<Vec<String>> {
        if among.is_empty() {
            return Ok(Vec::new());
        }
        Ok(block::Entity::find()
            .filter(block::Column::BlockedId.eq(user_id))
            .filter(block::Column::BlockerId.is_in(among.iter().cloned()))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|r| r.blocker_id)
            .collect())
    }
}
