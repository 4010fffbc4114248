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

    /// Ends every token issued so far: bumps the user's token generation
    /// (and, if given, sets a new password hash in the same update). The
    /// new generation, or None if the user is gone.
    pub async fn bump_token_generation(
        &self,
        id: &str,
        password_hash: Option<String>,
    ) -> StoreResult<Option<i64>> {
        use sea_orm::sea_query::{Expr, ExprTrait as _};
        let mut update = user::Entity::update_many()
            .col_expr(
                user::Column::TokenGeneration,
                Expr::col(user::Column::TokenGeneration).add(1),
            )
            .filter(user::Column::Id.eq(id));
        if let Some(hash) = password_hash {
            update = update.col_expr(user::Column::PasswordHash, Expr::value(hash));
        }
        Ok(update
            .exec_with_returning(self.conn())
            .await?
            .into_iter()
            .next()
            .map(|u| u.token_generation))
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
