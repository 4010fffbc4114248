//! Reading a chat's stored messages for streams: replay on resume, gap fill,
//! and catching up after a lag.

use std::collections::HashMap;

use crate::domain::Status;
use crate::fanout::MessageEvent;
use crate::store::{Store, StoreResult};

/// Rows read from storage per query.
pub const PAGE: i64 = 500;

/// Reads history, per stream; usernames are looked up once per sender.
pub struct History {
    store: Store,
    usernames: HashMap<String, String>,
}

impl History {
    pub fn new(store: Store) -> History {
        History {
            store,
            usernames: HashMap::new(),
        }
    }

    /// Up to [`PAGE`] stored messages with `from <= seq < until`, oldest first,
    /// each with its status as the chat's watermarks say now.
    pub async fn page(
        &mut self,
        chat_id: &str,
        from: i64,
        until: i64,
    ) -> StoreResult<Vec<(MessageEvent, Status)>> {
        let to = until.min(from.saturating_add(PAGE));
        let rows = self.store.messages_between(chat_id, from, to).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut missing: Vec<String> = rows
            .iter()
            .filter(|m| !self.usernames.contains_key(&m.sender_id))
            .map(|m| m.sender_id.clone())
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            for user in self.store.users_by_ids(&missing).await? {
                self.usernames.insert(user.id, user.username);
            }
        }
        let members = self.store.members(chat_id).await?;
        Ok(rows
            .into_iter()
            .map(|m| {
                let status = Status::of(&members, &m.sender_id, m.seq);
                let username = self
                    .usernames
                    .get(&m.sender_id)
                    .cloned()
                    .unwrap_or_default();
                (MessageEvent::stored(m, username), status)
            })
            .collect())
    }
}
