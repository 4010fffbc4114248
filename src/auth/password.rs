//! Password hashing with argon2id, kept off the async runtime.
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU). It runs on the
//! blocking pool behind a semaphore, so a login storm queues instead of
//! starving the runtime threads that carry everyone's messages.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::{OnceCell, Semaphore};
use tracing::Instrument as _;

use crate::domain::{AppError, AppResult};

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the email is
    /// unknown so that "no such user" takes as long as "wrong password".
    dummy: Arc<OnceCell<String>>,
}

impl Passwords {
    pub fn new(concurrency: usize) -> Passwords {
        Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    pub async fn hash(&self, password: String) -> AppResult<String> {
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AppError::internal(anyhow::anyhow!("hashing password: {e}")))
        })
        .await
    }

    /// Checks `password` against `hash`; with no hash (unknown user), checks
    /// against the dummy and returns false, taking the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> AppResult<bool> {
        let known = hash.is_some();
        let hash = match hash {
            Some(h) => h,
            None => self.dummy_hash().await?,
        };
        let ok = self
            .blocking(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|e| AppError::internal(anyhow::anyhow!("stored hash: {e}")))?;
                Ok(Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(ok && known)
    }

    async fn dummy_hash(&self) -> AppResult<String> {
        self.dummy
            .get_or_try_init(|| async {
                let random: [u8; 16] = rand::random();
                self.hash(hex::encode(random)).await
            })
            .await
            .cloned()
    }

    async fn blocking<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce() -> AppResult<T> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(f))
            .instrument(tracing::Span::current())
            .await
            .map_err(AppError::internal)?
    }
}
