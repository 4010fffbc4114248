//! Blocking: BlockUser / UnblockUser / ListBlocked, and the block sets the
//! other services check (a direct chat, a send, adding someone to a room).
//!
//! A user's [`BlockSet`] is cached per node. A block or unblock is
//! published as [`Event::BlockChanged`] to every node (with Redis, through
//! the broker); each node's watcher ([`BlockService::spawn_watcher`])
//! forgets both users' cached sets and tells both users' local streams
//! ([`Event::BlocksOf`]), so every node applies it at once. Should an
//! announcement be lost (Redis down), a cached set is re-read after
//! `ttl` anyway.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{AppError, AppResult, BlockSet, MAX_BLOCKS, User, now_micros, parse_id};
use crate::fanout::{Event, Fanout, Topic};
use crate::store::Store;
use crate::store::blocks::Blocked;

#[derive(Clone)]
pub struct BlockService {
    store: Store,
    fanout: Fanout,
    cache: moka::sync::Cache<String, Arc<BlockSet>>,
}

/// A blocked user as ListBlocked shows them.
#[derive(Debug, Clone)]
pub struct BlockedUser {
    pub user: User,
    pub at: i64,
}

impl BlockService {
    pub fn new(store: Store, fanout: Fanout, ttl: Duration) -> BlockService {
        BlockService {
            store,
            fanout,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl.max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// `user_id`'s blocks both ways (cached; see the module docs).
    pub async fn set(&self, user_id: &str) -> AppResult<Arc<BlockSet>> {
        if let Some(set) = self.cache.get(user_id) {
            return Ok(set);
        }
        let set = Arc::new(self.store.block_set(user_id).await?);
        self.cache.insert(user_id.to_owned(), set.clone());
        Ok(set)
    }

    /// `user_id`'s blocks both ways, read from storage now.
    pub async fn fresh_set(&self, user_id: &str) -> AppResult<BlockSet> {
        Ok(self.store.block_set(user_id).await?)
    }

    async fn target(&self, caller: &str, user_id: &str) -> AppResult<User> {
        let user_id = parse_id("user_id", user_id)?;
        if user_id == caller {
            return Err(AppError::invalid("user_id", "you cannot block yourself"));
        }
        self.store
            .user_by_id(&user_id)
            .await?
            .ok_or(AppError::NotFound("user"))
    }

    /// Blocks `user_id` for `caller`; blocking again answers the first block.
    pub async fn block(&self, caller: &str, user_id: &str) -> AppResult<BlockedUser> {
        let user = self.target(caller, user_id).await?;
        match self
            .store
            .insert_block(caller, &user.id, now_micros(), MAX_BLOCKS)
            .await?
        {
            Blocked::TooMany => Err(AppError::ResourceExhausted(format!(
                "you may block at most {MAX_BLOCKS} people; unblock someone first"
            ))),
            Blocked::Done { at, new } => {
                if new {
                    tracing::info!(blocker = caller, blocked = %user.id, "user blocked");
                    self.announce(caller, &user.id, true);
                }
                Ok(BlockedUser { user, at })
            }
        }
    }

    /// Takes back a block; unblocking someone not blocked is not an error.
    pub async fn unblock(&self, caller: &str, user_id: &str) -> AppResult<()> {
        let user = self.target(caller, user_id).await?;
        if self.store.delete_block(caller, &user.id).await? {
            tracing::info!(blocker = caller, blocked = %user.id, "user unblocked");
            self.announce(caller, &user.id, false);
        }
        Ok(())
    }

    pub async fn list(&self, caller: &str) -> AppResult<Vec<BlockedUser>> {
        Ok(self
            .store
            .blocked_users(caller)
            .await?
            .into_iter()
            .map(|(user, at)| BlockedUser { user, at })
            .collect())
    }

    fn announce(&self, blocker: &str, blocked: &str, on: bool) {
        // This node first, before the call returns: its next check sees it.
        self.forget(blocker, blocked);
        self.fanout.publish(Event::BlockChanged {
            blocker: blocker.to_owned(),
            blocked: blocked.to_owned(),
            on,
        });
    }

    fn forget(&self, blocker: &str, blocked: &str) {
        self.cache.invalidate(blocker);
        self.cache.invalidate(blocked);
    }

    /// Follows every node's block changes until shutdown: forgets the two
    /// users' cached sets and tells their streams on this node.
    pub fn spawn_watcher(&self, shutdown: CancellationToken) {
        let mut changes = self.fanout.hub.subscribe(Topic::Blocks);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = changes.recv() => event,
                };
                match event {
                    Ok(event) => {
                        if let Event::BlockChanged {
                            blocker,
                            blocked,
                            on,
                        } = &*event
                        {
                            this.forget(blocker, blocked);
                            for (user, other, by_me) in
                                [(blocker, blocked, true), (blocked, blocker, false)]
                            {
                                this.fanout.hub.publish(Arc::new(Event::BlocksOf {
                                    user_id: user.clone(),
                                    other: other.clone(),
                                    on: *on,
                                    by_me,
                                }));
                            }
                        }
                    }
                    // Missed some: every cached set may be stale.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        this.cache.invalidate_all()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}
