//! The idempotency fast path: remembers which message a (sender, key) pair
//! produced, so a retry is answered without touching the write path.
//!
//! This is only a cache. The unique index on `messages (sender_id,
//! idempotency_key)` is the truth: when the cache is flushed, down or simply
//! wrong, the send path still looks the key up in the database and a
//! concurrent duplicate insert still fails on the index.

use std::time::Duration;

use deadpool_redis::redis;

/// What the cache knows about a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody had claimed the key: this caller now owns it.
    Acquired,
    /// Another send with this key is in flight (or crashed mid-way).
    InFlight,
    /// The key already produced this message id.
    Done(String),
    /// The cache could not be asked (Redis down); go to the database.
    Unknown,
}

const PENDING: &str = "pending";
/// How long a claim stays if its owner dies before completing or releasing.
const PENDING_TTL: Duration = Duration::from_secs(30);
/// Memory the in-process cache may use: each key is weighed as its strings
/// plus [`ENTRY_OVERHEAD`]. A count bound (it was a million entries) let a
/// busy server's RSS grow by ~8 MiB a minute towards ~700 MiB. This is
/// about 90,000 keys: minutes of retries even at a thousand sends a second,
/// and an evicted key is still answered from the database.
const LOCAL_BYTES: u64 = 64 * 1024 * 1024;
/// RSS per cached key beyond its strings, as measured: the soak grew
/// ~8 MiB a minute while adding ~12,000 keys a minute (~700 bytes each).
const ENTRY_OVERHEAD: usize = 600;

#[derive(Clone)]
pub enum IdempotencyCache {
    Local(moka::sync::Cache<String, String>),
    Redis {
        pool: deadpool_redis::Pool,
        prefix: String,
        ttl: Duration,
    },
}

impl IdempotencyCache {
    pub fn local(ttl: Duration) -> IdempotencyCache {
        IdempotencyCache::Local(
            moka::sync::Cache::builder()
                .weigher(|k: &String, v: &String| {
                    u32::try_from(k.len() + v.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .max_capacity(LOCAL_BYTES)
                .time_to_live(ttl)
                .build(),
        )
    }

    pub fn redis(pool: deadpool_redis::Pool, prefix: &str, ttl: Duration) -> IdempotencyCache {
        IdempotencyCache::Redis {
            pool,
            prefix: format!("{prefix}idem:"),
            ttl,
        }
    }

    fn key(sender_id: &str, key: &str) -> String {
        format!("{sender_id}:{key}")
    }

    pub async fn claim(&self, sender_id: &str, key: &str) -> Claim {
        match self {
            IdempotencyCache::Local(cache) => {
                let entry = cache
                    .entry(Self::key(sender_id, key))
                    .or_insert(PENDING.to_owned());
                if entry.is_fresh() {
                    Claim::Acquired
                } else if entry.value() == PENDING {
                    Claim::InFlight
                } else {
                    Claim::Done(entry.into_value())
                }
            }
            IdempotencyCache::Redis { pool, prefix, .. } => {
                let k = format!("{prefix}{}", Self::key(sender_id, key));
                let result: redis::RedisResult<Claim> = async {
                    let mut conn = pool.get().await.map_err(pool_err)?;
                    // SET NX is the atomic claim; EXISTS-then-SET would race.
                    let set: Option<String> = redis::cmd("SET")
                        .arg(&k)
                        .arg(PENDING)
                        .arg("NX")
                        .arg("PX")
                        .arg(PENDING_TTL.as_millis() as u64)
                        .query_async(&mut conn)
                        .await?;
                    if set.is_some() {
                        return Ok(Claim::Acquired);
                    }
                    let value: Option<String> =
                        redis::cmd("GET").arg(&k).query_async(&mut conn).await?;
                    Ok(match value {
                        Some(v) if v != PENDING => Claim::Done(v),
                        _ => Claim::InFlight,
                    })
                }
                .await;
                result.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "idempotency cache unavailable; using the database");
                    Claim::Unknown
                })
            }
        }
    }

    /// Records the message a key produced.
    pub async fn complete(&self, sender_id: &str, key: &str, message_id: &str) {
        self.complete_many(&[(sender_id, key, message_id)]).await;
    }

    /// Records the messages a batch of keys produced: `(sender_id, key,
    /// message_id)` each. On Redis one pipelined round trip for the whole
    /// batch instead of one per send (the group committer calls it).
    pub async fn complete_many(&self, done: &[(&str, &str, &str)]) {
        if done.is_empty() {
            return;
        }
        match self {
            IdempotencyCache::Local(cache) => {
                for (sender_id, key, message_id) in done {
                    cache.insert(Self::key(sender_id, key), (*message_id).to_owned());
                }
            }
            IdempotencyCache::Redis { pool, prefix, ttl } => {
                let result: redis::RedisResult<()> = async {
                    let mut conn = pool.get().await.map_err(pool_err)?;
                    let mut pipe = redis::pipe();
                    for (sender_id, key, message_id) in done {
                        pipe.cmd("SET")
                            .arg(format!("{prefix}{}", Self::key(sender_id, key)))
                            .arg(*message_id)
                            .arg("PX")
                            .arg(ttl.as_millis() as u64)
                            .ignore();
                    }
                    pipe.query_async::<()>(&mut conn).await
                }
                .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, keys = done.len(), "could not record idempotency keys in the cache");
                }
            }
        }
    }

    /// Gives a claimed key back after a failed send: a failed insert never
    /// consumes the key.
    pub async fn release(&self, sender_id: &str, key: &str) {
        match self {
            IdempotencyCache::Local(cache) => {
                let k = Self::key(sender_id, key);
                if cache.get(&k).as_deref() == Some(PENDING) {
                    cache.invalidate(&k);
                }
            }
            IdempotencyCache::Redis { pool, prefix, .. } => {
                let k = format!("{prefix}{}", Self::key(sender_id, key));
                let result: redis::RedisResult<()> = async {
                    let mut conn = pool.get().await.map_err(pool_err)?;
                    let value: Option<String> =
                        redis::cmd("GET").arg(&k).query_async(&mut conn).await?;
                    if value.as_deref() == Some(PENDING) {
                        redis::cmd("DEL")
                            .arg(&k)
                            .query_async::<()>(&mut conn)
                            .await?;
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not release an idempotency key");
                }
            }
        }
    }
}

fn pool_err(e: deadpool_redis::PoolError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "redis pool", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch completion answers later claims of each key with its message.
    async fn batch_completion_answers_claims(cache: &IdempotencyCache) {
        assert_eq!(cache.claim("u1", "a").await, Claim::Acquired);
        assert_eq!(cache.claim("u2", "a").await, Claim::Acquired);
        assert_eq!(cache.claim("u1", "a").await, Claim::InFlight);
        cache
            .complete_many(&[("u1", "a", "m1"), ("u2", "a", "m2")])
            .await;
        assert_eq!(cache.claim("u1", "a").await, Claim::Done("m1".into()));
        assert_eq!(cache.claim("u2", "a").await, Claim::Done("m2".into()));
        // Nothing to record is not an error.
        cache.complete_many(&[]).await;
        assert_eq!(cache.claim("u3", "a").await, Claim::Acquired);
    }

    #[tokio::test]
    async fn local_batch_completion() {
        batch_completion_answers_claims(&IdempotencyCache::local(Duration::from_secs(60))).await;
    }

    /// Needs TEST_REDIS_URL (CI sets it); keys under a prefix of its own.
    #[tokio::test]
    async fn redis_batch_completion() {
        let Ok(url) = std::env::var("TEST_REDIS_URL") else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI must set TEST_REDIS_URL"
            );
            return;
        };
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("redis pool");
        let prefix = format!("tidings_unit_{}:", uuid::Uuid::new_v4().simple());
        let cache = IdempotencyCache::redis(pool.clone(), &prefix, Duration::from_secs(60));
        batch_completion_answers_claims(&cache).await;
        let mut conn = pool.get().await.expect("redis connection");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        assert_eq!(keys.len(), 3, "{keys:?}");
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}
