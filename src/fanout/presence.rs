//! Presence: a user is online while any of their streams is open on any node.
//!
//! Each node counts its own streams per user. With Redis, the set
//! `presence:<user>` holds the nodes where the user is online, every node
//! keeps a TTL'd liveness key, and any node that finds another node's key
//! expired takes over its users and reports them offline — so a node that
//! dies does not leave its users online for ever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis;

/// How often a node refreshes its liveness key and sweeps for dead nodes.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A node whose liveness key is older than this is considered dead.
pub const NODE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Presence {
    local: Arc<Mutex<HashMap<String, usize>>>,
    redis: Option<RedisPresence>,
}

#[derive(Clone)]
struct RedisPresence {
    pool: deadpool_redis::Pool,
    prefix: String,
    node_id: String,
}

/// A change of a user's presence that this node should announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub user_id: String,
    pub online: bool,
}

impl Presence {
    pub fn local() -> Presence {
        Presence {
            local: Arc::default(),
            redis: None,
        }
    }

    pub fn redis(pool: deadpool_redis::Pool, prefix: &str, node_id: &str) -> Presence {
        Presence {
            local: Arc::default(),
            redis: Some(RedisPresence {
                pool,
                prefix: prefix.to_owned(),
                node_id: node_id.to_owned(),
            }),
        }
    }

    fn bump(&self, user_id: &str, up: bool) -> bool {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if up {
            let n = local.entry(user_id.to_owned()).or_insert(0);
            *n += 1;
            *n == 1
        } else {
            match local.get_mut(user_id) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    local.remove(user_id);
                    true
                }
                None => false,
            }
        }
    }

    /// A stream of `user_id` opened. Returns true when the user just came
    /// online (everywhere, as far as this node can tell).
    pub async fn connect(&self, user_id: &str) -> bool {
        if !self.bump(user_id, true) {
            return false;
        }
        let Some(r) = &self.redis else { return true };
        match r.mark(user_id, true).await {
            Ok(count) => count == 1,
            Err(e) => {
                tracing::warn!(error = %e, "presence update failed");
                true
            }
        }
    }

    /// A stream of `user_id` closed. Returns true when the user just went
    /// offline everywhere.
    pub async fn disconnect(&self, user_id: &str) -> bool {
        if !self.bump(user_id, false) {
            return false;
        }
        let Some(r) = &self.redis else { return true };
        match r.mark(user_id, false).await {
            Ok(count) => count == 0,
            Err(e) => {
                tracing::warn!(error = %e, "presence update failed");
                true
            }
        }
    }

    /// Which of `users` are online.
    pub async fn online(&self, users: &[String]) -> Vec<bool> {
        let Some(r) = &self.redis else {
            let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            return users.iter().map(|u| local.contains_key(u)).collect();
        };
        if users.is_empty() {
            return Vec::new();
        }
        let result: redis::RedisResult<Vec<i64>> = async {
            let mut conn = r.conn().await?;
            let mut pipe = redis::pipe();
            for u in users {
                pipe.cmd("SCARD").arg(r.key_user(u));
            }
            pipe.query_async(&mut conn).await
        }
        .await;
        match result {
            Ok(counts) => counts.into_iter().map(|c| c > 0).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "presence read failed");
                let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                users.iter().map(|u| local.contains_key(u)).collect()
            }
        }
    }

    /// One heartbeat: refresh this node's liveness, and take over the users
    /// of nodes that died. Returns the users that went offline with them.
    pub async fn heartbeat(&self) -> Vec<Change> {
        let Some(r) = &self.redis else {
            return Vec::new();
        };
        match r.heartbeat().await {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(error = %e, "presence heartbeat failed");
                Vec::new()
            }
        }
    }

    /// On shutdown: this node's users are no longer online here.
    pub async fn leave(&self) -> Vec<Change> {
        let users: Vec<String> = {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            local.drain().map(|(u, _)| u).collect()
        };
        let mut changes = Vec::new();
        for user_id in users {
            // Re-add one count so `disconnect` sees the last stream closing.
            self.bump(&user_id, true);
            if self.disconnect(&user_id).await {
                changes.push(Change {
                    user_id,
                    online: false,
                });
            }
        }
        changes
    }
}

impl RedisPresence {
    async fn conn(&self) -> redis::RedisResult<deadpool_redis::Connection> {
        self.pool.get().await.map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Io, "redis pool", e.to_string()))
        })
    }

    /// Adds (or removes) this node to the user's online set and the user to
    /// this node's set; returns how many nodes the user is online on now.
    async fn mark(&self, user_id: &str, online: bool) -> redis::RedisResult<i64> {
        let op = if online { "SADD" } else { "SREM" };
        let mut conn = self.conn().await?;
        let (_, _, count): ((), (), i64) = redis::pipe()
            .cmd(op)
            .arg(self.key_user(user_id))
            .arg(&self.node_id)
            .cmd(op)
            .arg(self.key_node_users(&self.node_id))
            .arg(user_id)
            .cmd("SCARD")
            .arg(self.key_user(user_id))
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }

    fn key_user(&self, user_id: &str) -> String {
        format!("{}presence:{user_id}", self.prefix)
    }

    fn key_node_users(&self, node_id: &str) -> String {
        format!("{}node_users:{node_id}", self.prefix)
    }

    fn key_node(&self, node_id: &str) -> String {
        format!("{}node:{node_id}", self.prefix)
    }

    async fn heartbeat(&self) -> redis::RedisResult<Vec<Change>> {
        let mut conn = self.conn().await?;
        let nodes_key = format!("{}nodes", self.prefix);
        redis::pipe()
            .cmd("SET")
            .arg(self.key_node(&self.node_id))
            .arg(1)
            .arg("PX")
            .arg(NODE_TTL.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(&nodes_key)
            .arg(&self.node_id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&nodes_key)
            .query_async(&mut conn)
            .await?;
        let mut changes = Vec::new();
        for node in nodes.into_iter().filter(|n| *n != self.node_id) {
            let alive: bool = redis::cmd("EXISTS")
                .arg(self.key_node(&node))
                .query_async(&mut conn)
                .await?;
            if alive {
                continue;
            }
            // Only the node whose SREM succeeds takes the dead node over.
            let took: i64 = redis::cmd("SREM")
                .arg(&nodes_key)
                .arg(&node)
                .query_async(&mut conn)
                .await?;
            if took == 0 {
                continue;
            }
            let users: Vec<String> = redis::cmd("SMEMBERS")
                .arg(self.key_node_users(&node))
                .query_async(&mut conn)
                .await?;
            for user_id in users {
                let (_, left): ((), i64) = redis::pipe()
                    .cmd("SREM")
                    .arg(self.key_user(&user_id))
                    .arg(&node)
                    .cmd("SCARD")
                    .arg(self.key_user(&user_id))
                    .query_async(&mut conn)
                    .await?;
                if left == 0 {
                    changes.push(Change {
                        user_id,
                        online: false,
                    });
                }
            }
            redis::cmd("DEL")
                .arg(self.key_node_users(&node))
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_presence_counts_streams() {
        let p = Presence::local();
        assert!(p.connect("u").await);
        assert!(!p.connect("u").await);
        assert_eq!(p.online(&["u".into(), "v".into()]).await, vec![true, false]);
        assert!(!p.disconnect("u").await);
        assert!(p.disconnect("u").await);
        assert_eq!(p.online(&["u".into()]).await, vec![false]);
        assert!(!p.disconnect("u").await);
    }
}
