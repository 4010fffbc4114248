//! Uploaded files: their rows (`files`), which message holds each one
//! (`message_files`), who may read them, and what is garbage.
//!
//! A file's life: uploaded (a row, unattached), attached by a send (a
//! `message_files` row, in the send's transaction, see
//! [`super::messages`]), released when its message is deleted (the
//! `message_files` row goes and `created_at` is set to 0, in the delete's
//! transaction), and removed by the sweep (object first, then the row) once
//! it is unattached and older than the keep time. A crash between any two
//! steps leaves garbage the next sweep finds, never a row without bytes
//! that someone can still reach.

use sea_orm::sea_query::{Expr, ExprTrait as _, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{chat_member, file, message, message_file};
use super::{Store, StoreResult};
use crate::domain::Attachment;

/// A stored file: what a message shows of it, plus what serving it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    pub attachment: Attachment,
    pub uploader_id: String,
    /// A strong validator for the bytes (a digest of them).
    pub etag: String,
    pub created_at: i64,
}

impl From<file::Model> for StoredFile {
    fn from(m: file::Model) -> Self {
        StoredFile {
            attachment: Attachment {
                id: m.id,
                name: m.name,
                content_type: m.content_type,
                size: m.size,
                width: m.width,
                height: m.height,
                has_thumbnail: m.has_thumbnail,
            },
            uploader_id: m.uploader_id,
            etag: m.etag,
            created_at: m.created_at,
        }
    }
}

/// Lets go of a deleted message's files (in the delete's transaction):
/// they are unattached and dated 0, so the next sweep removes them.
pub(super) async fn release_files_of(
    conn: &impl ConnectionTrait,
    message_id: &str,
) -> Result<(), DbErr> {
    let held: Vec<String> = message_file::Entity::find()
        .filter(message_file::Column::MessageId.eq(message_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.file_id)
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    message_file::Entity::delete_many()
        .filter(message_file::Column::MessageId.eq(message_id))
        .exec(conn)
        .await?;
    file::Entity::update_many()
        .col_expr(file::Column::CreatedAt, Expr::value(0i64))
        .filter(file::Column::Id.is_in(held))
        .exec(conn)
        .await?;
    Ok(())
}

impl Store {
    pub async fn insert_file(&self, stored: &StoredFile) -> StoreResult<()> {
        let a = &stored.attachment;
        file::Model {
            id: a.id.clone(),
            uploader_id: stored.uploader_id.clone(),
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            width: a.width,
            height: a.height,
            has_thumbnail: a.has_thumbnail,
            etag: stored.etag.clone(),
            created_at: stored.created_at,
        }
        .into_active_model()
        .insert(self.conn())
        .await?;
        Ok(())
    }

    pub async fn file_by_id(&self, id: &str) -> StoreResult<Option<StoredFile>> {
        Ok(file::Entity::find_by_id(id.to_owned())
            .all(self.conn())
            .await?
            .into_iter()
            .next()
            .map(StoredFile::from))
    }

    /// Of these files, the ones `uploader_id` uploaded that no message
    /// holds yet, uploaded at or after `since`.
    pub async fn attachable_files(
        &self,
        uploader_id: &str,
        ids: &[String],
        since: i64,
    ) -> StoreResult<Vec<StoredFile>> {
        let held = Query::select()
            .column(message_file::Column::FileId)
            .from(message_file::Entity)
            .and_where(message_file::Column::FileId.is_in(ids.iter().map(String::as_str)))
            .to_owned();
        Ok(file::Entity::find()
            .filter(file::Column::Id.is_in(ids.iter().map(String::as_str)))
            .filter(file::Column::UploaderId.eq(uploader_id))
            .filter(file::Column::CreatedAt.gte(since))
            .filter(file::Column::Id.not_in_subquery(held))
            .all(self.conn())
            .await?
            .into_iter()
            .map(StoredFile::from)
            .collect())
    }

    /// Of these files, the ones `user_id` may read: uploaded by them, or in
    /// a message (not deleted) of a chat they are a member of.
    pub async fn readable_files(
        &self,
        user_id: &str,
        ids: &[String],
    ) -> StoreResult<Vec<StoredFile>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let in_my_chats = Query::select()
            .column((message_file::Entity, message_file::Column::FileId))
            .from(message_file::Entity)
            .inner_join(
                chat_member::Entity,
                Condition::all()
                    .add(
                        Expr::col((chat_member::Entity, chat_member::Column::ChatId))
                            .equals((message_file::Entity, message_file::Column::ChatId)),
                    )
                    .add(Expr::col((chat_member::Entity, chat_member::Column::UserId)).eq(user_id)),
            )
            .inner_join(
                message::Entity,
                Condition::all()
                    .add(
                        Expr::col((message::Entity, message::Column::Id))
                            .equals((message_file::Entity, message_file::Column::MessageId)),
                    )
                    .add(Expr::col((message::Entity, message::Column::DeletedAt)).is_null()),
            )
            .and_where(
                Expr::col((message_file::Entity, message_file::Column::FileId))
                    .is_in(ids.iter().map(String::as_str)),
            )
            .to_owned();
        Ok(file::Entity::find()
            .filter(file::Column::Id.is_in(ids.iter().map(String::as_str)))
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(file::Column::UploaderId.eq(user_id))
                            // Released (its message deleted): nobody's.
                            .add(file::Column::CreatedAt.gt(0)),
                    )
                    .add(file::Column::Id.in_subquery(in_my_chats)),
            )
            .all(self.conn())
            .await?
            .into_iter()
            .map(StoredFile::from)
            .collect())
    }

    /// Bytes `uploader_id` uploaded at or after `since` (the daily quota).
    pub async fn uploaded_since(&self, uploader_id: &str, since: i64) -> StoreResult<i64> {
        let rows = file::Entity::find()
            .select_only()
            .column(file::Column::Size)
            .filter(file::Column::UploaderId.eq(uploader_id))
            .filter(file::Column::CreatedAt.gte(since))
            .into_tuple::<i64>()
            .all(self.conn())
            .await?;
        Ok(rows.into_iter().sum())
    }

    /// Up to `limit` files no message holds that were uploaded before
    /// `before` (released files are dated 0), oldest first.
    pub async fn garbage_files(&self, before: i64, limit: u64) -> StoreResult<Vec<StoredFile>> {
        let held = Query::select()
            .column(message_file::Column::FileId)
            .from(message_file::Entity)
            .to_owned();
        Ok(file::Entity::find()
            .filter(file::Column::CreatedAt.lt(before))
            .filter(file::Column::Id.not_in_subquery(held))
            .order_by_asc(file::Column::CreatedAt)
            .limit(limit)
            .all(self.conn())
            .await?
            .into_iter()
            .map(StoredFile::from)
            .collect())
    }

    /// Removes the rows of files whose bytes are gone (only if still
    /// unattached: a file a send took meanwhile stays).
    pub async fn delete_file_rows(&self, ids: &[String]) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let held = Query::select()
            .column(message_file::Column::FileId)
            .from(message_file::Entity)
            .to_owned();
        Ok(file::Entity::delete_many()
            .filter(file::Column::Id.is_in(ids.iter().map(String::as_str)))
            .filter(file::Column::Id.not_in_subquery(held))
            .exec(self.conn())
            .await?
            .rows_affected)
    }

    /// How many file rows there are (for tests and metrics).
    pub async fn file_count(&self) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait as _;
        Ok(file::Entity::find().count(self.conn()).await?)
    }
}
