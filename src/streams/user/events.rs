//! What each event of a followed chat becomes on the user stream.

use super::{Forwarder, UserItem};
use crate::fanout::Event;
use crate::streams::Stop;

impl Forwarder {
    pub(super) async fn on_chat_event(&mut self, chat_id: &str, event: &Event) -> Result<(), Stop> {
        match event {
            Event::Message(m) => match self.cursors.get_mut(chat_id) {
                Some(cursor) => cursor.live(m, &mut self.backfill, &mut self.out).await,
                None => Ok(()),
            },
            Event::Change(c) => match self.cursors.get_mut(chat_id) {
                Some(cursor) => {
                    cursor
                        .live_change(c, &mut self.backfill, &mut self.out)
                        .await
                }
                None => Ok(()),
            },
            Event::Receipt {
                chat_id,
                user_id,
                delivered_seq,
                read_seq,
            } => {
                self.out
                    .emit(UserItem::Receipt {
                        chat_id: chat_id.clone(),
                        user_id: user_id.clone(),
                        delivered_seq: *delivered_seq,
                        read_seq: *read_seq,
                    })
                    .await
            }
            Event::Typing {
                chat_id,
                user_id,
                username,
                typing,
            } => {
                if user_id == self.user_id() || self.out.blocks.walls(user_id) {
                    return Ok(());
                }
                self.out
                    .emit(UserItem::Typing {
                        chat_id: chat_id.clone(),
                        user_id: user_id.clone(),
                        username: username.clone(),
                        typing: *typing,
                    })
                    .await
            }
            Event::Presence {
                user_id,
                online,
                at,
                ..
            } => {
                if user_id == self.user_id()
                    || self.online.get(user_id) == Some(online)
                    || self.out.blocks.walls(user_id)
                {
                    return Ok(());
                }
                self.online.insert(user_id.clone(), *online);
                self.out
                    .emit(UserItem::Presence {
                        user_id: user_id.clone(),
                        online: *online,
                        at: *at,
                    })
                    .await
            }
            Event::MemberChanged {
                chat_id,
                user_id,
                joined,
            } => {
                if user_id == self.user_id() {
                    if !joined {
                        return self.removed(chat_id).await;
                    }
                    return Ok(());
                }
                let Some(user) = Box::pin(self.store.user_by_id(user_id)).await? else {
                    return Ok(());
                };
                self.out
                    .emit(UserItem::MemberChanged {
                        chat_id: chat_id.clone(),
                        user,
                        joined: *joined,
                    })
                    .await
            }
            Event::Resync { .. } => self.catch_up_all(chat_id).await,
            Event::ChatAdded { .. }
            | Event::ChatRemoved { .. }
            | Event::BlockChanged { .. }
            | Event::BlocksOf { .. } => Ok(()),
        }
    }
}
