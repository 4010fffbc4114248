//! Users: registration, login, profiles and tokens.

use crate::auth::{Passwords, Tokens};
use crate::domain::{AppError, AppResult, Email, Password, User, Username, new_id, now_micros};
use crate::store::{Store, StoreError};

/// A signed-in user with a fresh token.
pub struct Session {
    pub user: User,
    pub token: String,
    pub expires_at: std::time::SystemTime,
}

#[derive(Clone)]
pub struct UserService {
    store: Store,
    passwords: Passwords,
    tokens: Tokens,
}

const BAD_CREDENTIALS: &str = "invalid email or password";

impl UserService {
    pub fn new(store: Store, passwords: Passwords, tokens: Tokens) -> UserService {
        UserService {
            store,
            passwords,
            tokens,
        }
    }

    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> AppResult<Session> {
        let username = Username::parse(username)?;
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let hash = self.passwords.hash(password.into_string()).await?;
        let user = User {
            id: new_id(),
            username_lower: username.as_str().to_lowercase(),
            username: username.into_string(),
            email: email.into_string(),
            password_hash: hash,
            created_at: now_micros(),
            token_generation: 0,
        };
        let user = self.store.insert_user(user).await.map_err(|e| match e {
            StoreError::Conflict(text) if text.contains("email") => AppError::AlreadyExists {
                field: "email",
                message: "is already registered".into(),
            },
            StoreError::Conflict(_) => AppError::AlreadyExists {
                field: "username",
                message: "is already taken".into(),
            },
            other => other.into(),
        })?;
        tracing::info!(user_id = %user.id, "user registered");
        self.session(user)
    }

    /// Unknown email and wrong password get the same answer after the same
    /// amount of work.
    pub async fn login(&self, email: &str, password: &str) -> AppResult<Session> {
        if email.is_empty() {
            return Err(AppError::invalid("email", "is required"));
        }
        if password.is_empty() {
            return Err(AppError::invalid("password", "is required"));
        }
        let user = self.store.user_by_email(&email.to_lowercase()).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self.passwords.verify(password.to_owned(), hash).await?;
        match user {
            Some(user) if ok => self.session(user),
            _ => Err(AppError::Unauthenticated(BAD_CREDENTIALS.into())),
        }
    }

    /// A user's profile as `caller` may see it: the e-mail address only to
    /// the user themselves and to people who share a chat with them.
    pub async fn get(&self, caller: &str, user_id: &str) -> AppResult<User> {
        if user_id.is_empty() {
            return Err(AppError::invalid("user_id", "is required"));
        }
        let mut user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        if caller != user_id && !self.store.share_a_chat(caller, user_id).await? {
            user.email.clear();
        }
        Ok(user)
    }

    /// The caller's own row; a token whose user no longer exists is refused.
    pub async fn me(&self, user_id: &str) -> AppResult<User> {
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AppError::Unauthenticated("user no longer exists".into()))
    }

    pub async fn refresh(&self, user_id: &str) -> AppResult<Session> {
        let user = self.me(user_id).await?;
        self.session(user)
    }

    /// Replaces the caller's password, given the current one, and ends
    /// every token issued so far; answers a new token for this device.
    pub async fn change_password(
        &self,
        user_id: &str,
        old_password: &str,
        new_password: &str,
    ) -> AppResult<Session> {
        if old_password.is_empty() {
            return Err(AppError::invalid("old_password", "is required"));
        }
        let new_password =
            Password::parse(new_password).map_err(|e| e.for_field("new_password"))?;
        let user = self.me(user_id).await?;
        let ok = self
            .passwords
            .verify(old_password.to_owned(), Some(user.password_hash.clone()))
            .await?;
        if !ok {
            return Err(AppError::invalid(
                "old_password",
                "is not the current password",
            ));
        }
        let hash = self.passwords.hash(new_password.into_string()).await?;
        self.end_sessions(user, Some(hash)).await
    }

    /// Ends every token of the caller issued so far (every device is
    /// logged out); answers a new token for this device.
    pub async fn logout_everywhere(&self, user_id: &str) -> AppResult<Session> {
        let user = self.me(user_id).await?;
        self.end_sessions(user, None).await
    }

    async fn end_sessions(
        &self,
        mut user: User,
        password_hash: Option<String>,
    ) -> AppResult<Session> {
        user.token_generation = self
            .store
            .bump_token_generation(&user.id, password_hash)
            .await?
            .ok_or_else(|| AppError::Unauthenticated("user no longer exists".into()))?;
        tracing::info!(user_id = %user.id, generation = user.token_generation, "sessions ended");
        self.session(user)
    }

    fn session(&self, user: User) -> AppResult<Session> {
        let (token, expires_at) = self.tokens.issue(&user.id, user.token_generation)?;
        Ok(Session {
            user,
            token,
            expires_at,
        })
    }
}
