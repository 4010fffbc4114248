//! "Does this token's user still exist?", asked on every authenticated call.
//!
//! A token stays cryptographically valid until it expires, even after its
//! user's row is gone (deleted by an operator: there is no delete RPC). So
//! the authenticator also checks the row. Positive answers are remembered
//! for a short TTL (`AUTH_CACHE_TTL`, 30 s by default) so a busy client
//! costs one indexed primary-key read per TTL instead of one per call; a
//! deleted user's tokens therefore stop working within that TTL, and so do
//! the tokens a user ended (ChangePassword, LogoutEverywhere: the cached
//! value is the user's token generation; on the node that ended them, at
//! once). Negative
//! answers are not cached: they are rare (the token had to be signed by us)
//! and a deleted user must never come back from the cache.

use std::time::Duration;

use crate::domain::{AppError, AppResult};
use crate::store::Store;

#[derive(Clone)]
pub struct KnownUsers {
    store: Store,
    ttl: Duration,
    /// The token generation of users seen to exist recently; None when the
    /// TTL is zero.
    cache: Option<moka::sync::Cache<String, i64>>,
}

impl KnownUsers {
    pub fn new(store: Store, ttl: Duration) -> KnownUsers {
        let cache = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build()
        });
        KnownUsers { store, ttl, cache }
    }

    /// Ok when `user_id` exists and `generation` (the token's) is not older
    /// than the user's, as of at most the TTL ago; UNAUTHENTICATED when the
    /// user is gone or the token was ended; UNAVAILABLE when storage cannot
    /// say.
    pub async fn check(&self, user_id: &str, generation: i64) -> AppResult<()> {
        match self.cache.as_ref().and_then(|c| c.get(user_id)) {
            Some(current) => refuse_older(generation, current),
            None => self.check_fresh(user_id, generation).await,
        }
    }

    /// [`KnownUsers::check`] asking the database, whatever is cached (and
    /// caching its answer): streams ask this every TTL, so one that outlives
    /// its token's end on another node stops within the TTL.
    pub async fn check_fresh(&self, user_id: &str, generation: i64) -> AppResult<()> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AppError::Unauthenticated("user no longer exists".into()))?;
        if let Some(cache) = &self.cache {
            cache.insert(user_id.to_owned(), user.token_generation);
        }
        refuse_older(generation, user.token_generation)
    }

    /// How long an answer is remembered (`AUTH_CACHE_TTL`).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The user's generation moved (on this node): forget what was cached,
    /// so this node refuses the older tokens at once.
    pub fn forget(&self, user_id: &str) {
        if let Some(cache) = &self.cache {
            cache.invalidate(user_id);
        }
    }
}

/// A token issued under an older generation than the user's is refused.
fn refuse_older(generation: i64, current: i64) -> AppResult<()> {
    if generation < current {
        return Err(AppError::Unauthenticated(
            "token ended (password changed or logged out everywhere); log in again".into(),
        ));
    }
    Ok(())
}
