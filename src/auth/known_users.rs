//! "Does this token's user still exist?", asked on every authenticated call.
//!
//! A token stays cryptographically valid until it expires, even after its
//! user's row is gone (deleted by an operator: there is no delete RPC). So
//! the authenticator also checks the row. Positive answers are remembered
//! for a short TTL (`AUTH_CACHE_TTL`, 30 s by default) so a busy client
//! costs one indexed primary-key read per TTL instead of one per call; a
//! deleted user's tokens therefore stop working within that TTL. Negative
//! answers are not cached: they are rare (the token had to be signed by us)
//! and a deleted user must never come back from the cache.

use std::time::Duration;

use crate::domain::{AppError, AppResult};
use crate::store::Store;

#[derive(Clone)]
pub struct KnownUsers {
    store: Store,
    /// User ids seen to exist recently; None when the TTL is zero.
    cache: Option<moka::sync::Cache<String, ()>>,
}

impl KnownUsers {
    pub fn new(store: Store, ttl: Duration) -> KnownUsers {
        let cache = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build()
        });
        KnownUsers { store, cache }
    }

    /// Ok when `user_id` exists (as of at most the TTL ago); UNAUTHENTICATED
    /// when it does not; UNAVAILABLE when storage cannot say.
    pub async fn check(&self, user_id: &str) -> AppResult<()> {
        if let Some(cache) = &self.cache
            && cache.contains_key(user_id)
        {
            return Ok(());
        }
        match self.store.user_by_id(user_id).await? {
            Some(_) => {
                if let Some(cache) = &self.cache {
                    cache.insert(user_id.to_owned(), ());
                }
                Ok(())
            }
            None => Err(AppError::Unauthenticated("user no longer exists".into())),
        }
    }
}
