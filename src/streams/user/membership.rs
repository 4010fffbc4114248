//! The user's membership feed: chats joined and left mid-stream, and the
//! presence of the user's peers.

use std::collections::HashSet;

use futures::future::BoxFuture;

use super::{Forwarder, UserItem};
use crate::domain::{AppError, now_micros};
use crate::fanout::Event;
use crate::streams::Stop;

impl Forwarder {
    pub(super) fn on_membership<'a>(
        &'a mut self,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            match event {
                Event::ChatAdded {
                    chat_id,
                    from_seq,
                    from_change,
                    ..
                } => self.added(chat_id, *from_seq, *from_change).await,
                Event::ChatRemoved { chat_id, .. } => self.removed(chat_id).await,
                Event::BlocksOf {
                    other, on, by_me, ..
                } => self.blocks_changed(other, *on, *by_me).await,
                _ => Ok(()),
            }
        })
    }

    fn added<'a>(
        &'a mut self,
        chat_id: &'a str,
        from_seq: i64,
        from_change: i64,
    ) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            if self.cursors.contains_key(chat_id) {
                return Ok(());
            }
            self.follow(chat_id, from_seq, from_change);
            let user_id = self.user_id().to_owned();
            let peers: Vec<String>;
            match self.chats.get(&user_id, chat_id).await {
                Ok(view) => {
                    peers = view
                        .members
                        .iter()
                        .map(|u| u.id.clone())
                        .filter(|id| *id != user_id)
                        .collect();
                    self.out.emit(UserItem::ChatAdded(Box::new(view))).await?
                }
                // Removed again before we looked: forget it.
                Err(AppError::NotFound(_)) => {
                    self.unfollow(chat_id);
                    return Ok(());
                }
                Err(e) => return Err(Stop::Error(e)),
            }
            // Anything sent or changed between joining and following comes
            // from storage.
            self.catch_up_all(chat_id).await?;
            self.presence_of(peers).await
        })
    }

    /// Tells the client which of `peers` (new to it: the members of a chat
    /// just added) are online; those it already has a state for are left
    /// as they are, the live events keep them current.
    fn presence_of(&mut self, peers: Vec<String>) -> BoxFuture<'_, Result<(), Stop>> {
        Box::pin(async move {
            let new: Vec<String> = peers
                .into_iter()
                .filter(|p| !self.online.contains_key(p) && !self.out.blocks.walls(p))
                .collect();
            if new.is_empty() {
                return Ok(());
            }
            let online = self.fanout.presence.online(&new).await;
            let at = now_micros();
            for (user_id, online) in new.into_iter().zip(online) {
                self.online.insert(user_id.clone(), online);
                if online {
                    self.out
                        .emit(UserItem::Presence {
                            user_id,
                            online,
                            at,
                        })
                        .await?;
                }
            }
            Ok(())
        })
    }

    pub(super) fn removed<'a>(&'a mut self, chat_id: &'a str) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            if self.cursors.contains_key(chat_id) {
                self.unfollow(chat_id);
                self.out
                    .emit(UserItem::ChatRemoved {
                        chat_id: chat_id.to_owned(),
                    })
                    .await?;
            }
            Ok(())
        })
    }

    /// A block between this user and `other` was made (`on`) or taken back:
    /// re-read the user's blocks, tell the client if it is the blocker, and
    /// put presence right (nothing of a walled peer; a peer no longer
    /// walled, as they are now).
    fn blocks_changed<'a>(
        &'a mut self,
        other: &'a str,
        on: bool,
        by_me: bool,
    ) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            self.out.blocks = self
                .blocks
                .fresh_set(self.user_id())
                .await
                .map_err(Stop::Error)?;
            if by_me {
                self.out
                    .emit(UserItem::BlockChanged {
                        user_id: other.to_owned(),
                        blocked: on,
                    })
                    .await?;
            }
            let at = now_micros();
            if self.out.blocks.walls(other) {
                if self.online.insert(other.to_owned(), false) == Some(true) {
                    self.out
                        .emit(UserItem::Presence {
                            user_id: other.to_owned(),
                            online: false,
                            at,
                        })
                        .await?;
                }
            } else if self.store.share_a_chat(self.user_id(), other).await? {
                let online = self.fanout.presence.online(&[other.to_owned()]).await;
                let online = online.first().copied().unwrap_or(false);
                if self.online.insert(other.to_owned(), online) != Some(online) {
                    self.out
                        .emit(UserItem::Presence {
                            user_id: other.to_owned(),
                            online,
                            at,
                        })
                        .await?;
                }
            }
            Ok(())
        })
    }

    /// The membership feed lagged: compare with storage (memberships and blocks).
    pub(super) fn reload_memberships(&mut self) -> BoxFuture<'_, Result<(), Stop>> {
        Box::pin(async move {
            self.out.blocks = self
                .blocks
                .fresh_set(self.user_id())
                .await
                .map_err(Stop::Error)?;
            let now = self.store.chats_of_member(self.user_id()).await?;
            let current: HashSet<&String> = now.iter().map(|c| &c.id).collect();
            let gone: Vec<String> = self
                .cursors
                .keys()
                .filter(|id| !current.contains(id))
                .cloned()
                .collect();
            for chat_id in gone {
                self.removed(&chat_id).await?;
            }
            for chat in &now {
                if !self.cursors.contains_key(&chat.id) {
                    // Missed joining: from where the member has read, and
                    // the changes from now on.
                    let from = self
                        .store
                        .membership(&chat.id, self.user_id())
                        .await?
                        .map_or(0, |m| m.read_seq);
                    self.added(&chat.id, from, chat.last_change).await?;
                }
            }
            Ok(())
        })
    }

    /// Tells the client which of its chat peers are online right now.
    pub(super) fn presence_snapshot(&mut self) -> BoxFuture<'_, Result<(), Stop>> {
        Box::pin(async move {
            let chat_ids: Vec<String> = self.cursors.keys().cloned().collect();
            let me = self.user_id().to_owned();
            let mut peers: Vec<String> = self
                .store
                .members_with_users(&chat_ids)
                .await?
                .into_iter()
                .map(|(m, _)| m.user_id)
                .filter(|u| *u != me)
                .collect();
            peers.sort();
            peers.dedup();
            // Nothing is known yet: every peer is new to the client.
            self.presence_of(peers).await
        })
    }
}
