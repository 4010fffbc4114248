//! Users: insert and look-ups.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};

use super::entities::{models, user};
use super::{Store, StoreResult};
use crate::domain::User;

impl Store {
    /// Inserts a user; a taken email or username is a [`super::StoreError::Conflict`].
    pub async fn insert_user(&self, new: User) -> StoreResult<User> {
        let row = user::Model::from(new).into_active_model();
        Ok(row.insert(self.conn()).await?.into())
    }

    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .all(self.conn())
            .await?
            .into_iter()
            .next()
            .map(User::from))
    }

    pub async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(user::Entity::find_by_id(id.to_owned())
            .all(self.conn())
            .await?
            .into_iter()
            .next()
            .map(User::from))
    }

    pub async fn users_by_ids(&self, ids: &[String]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(models(
            user::Entity::find()
                .filter(user::Column::Id.is_in(ids.iter().cloned()))
                .all(self.conn())
                .await?,
        ))
    }

    pub async fn users_by_emails(&self, emails: &[String]) -> StoreResult<Vec<User>> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        Ok(models(
            user::Entity::find()
                .filter(user::Column::Email.is_in(emails.iter().cloned()))
                .all(self.conn())
                .await?,
        ))
    }
}
