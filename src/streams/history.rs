//! Reading a chat's stored messages and changes for streams: replay on
//! resume, gap fill, and catching up after a lag.

use std::collections::HashMap;

use crate::domain::{ChangeKind, Message, Quote, Status};
use crate::fanout::{ChangeEvent, MessageEvent};
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

    /// Learns the usernames of these users that it does not know yet.
    async fn learn<'a>(&mut self, ids: impl Iterator<Item = &'a String>) -> StoreResult<()> {
        let mut missing: Vec<String> = ids
            .filter(|id| !self.usernames.contains_key(*id))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            for user in self.store.users_by_ids(&missing).await? {
                self.usernames.insert(user.id, user.username);
            }
        }
        Ok(())
    }

    fn name(&self, id: &str) -> String {
        self.usernames.get(id).cloned().unwrap_or_default()
    }

    /// The quotes these messages carry, by quoted message id.
    async fn quotes(&mut self, rows: &[Message]) -> StoreResult<HashMap<String, Quote>> {
        let ids: Vec<String> = rows.iter().filter_map(|m| m.reply_to_id.clone()).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let quoted = self.store.messages_by_ids(&ids).await?;
        self.learn(quoted.iter().map(|m| &m.sender_id)).await?;
        Ok(quoted
            .iter()
            .map(|q| (q.id.clone(), Quote::of(q, self.name(&q.sender_id))))
            .collect())
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
        self.learn(rows.iter().map(|m| &m.sender_id)).await?;
        let quotes = self.quotes(&rows).await?;
        let members = self.store.members(chat_id).await?;
        Ok(rows
            .into_iter()
            .map(|m| {
                let status = Status::of(&members, &m.sender_id, m.seq);
                let username = self.name(&m.sender_id);
                let quote = m
                    .reply_to_id
                    .as_ref()
                    .and_then(|id| quotes.get(id))
                    .cloned();
                (MessageEvent::stored(m, username, quote), status)
            })
            .collect())
    }

    /// Up to [`PAGE`] logged changes with `from <= change_seq < until`,
    /// oldest first; an edit comes with its message as it is now.
    pub async fn changes(
        &mut self,
        chat_id: &str,
        from: i64,
        until: i64,
    ) -> StoreResult<Vec<ChangeEvent>> {
        let to = until.min(from.saturating_add(PAGE));
        let changes = self.store.changes_between(chat_id, from, to).await?;
        let edited_ids: Vec<String> = changes
            .iter()
            .filter_map(|c| match &c.kind {
                ChangeKind::Edited { message_id } => Some(message_id.clone()),
                _ => None,
            })
            .collect();
        let mut edited: HashMap<String, Message> = HashMap::new();
        if !edited_ids.is_empty() {
            for m in self.store.messages_by_ids(&edited_ids).await? {
                edited.insert(m.id.clone(), m);
            }
            self.learn(edited.values().map(|m| &m.sender_id)).await?;
        }
        Ok(changes
            .into_iter()
            .map(|change| {
                let message = change
                    .kind
                    .message_id()
                    .filter(|_| matches!(change.kind, ChangeKind::Edited { .. }))
                    .and_then(|id| edited.get(id))
                    .map(|m| (m.clone(), self.name(&m.sender_id)));
                ChangeEvent {
                    change,
                    edited: message,
                }
            })
            .collect())
    }
}
