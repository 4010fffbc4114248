//! Search (SearchMessages): the words of a query in the messages of the
//! caller's chats, newest first (a keyset cursor) or best first (rank, then
//! newest; an offset cursor). Members read a chat's whole history, so all
//! of it is searchable; deleted messages never match (their content is
//! erased), edited ones match their current text, and messages of people
//! the caller blocked are left out (quotes of them are withheld as
//! everywhere). The store does the matching, restricted to the caller's
//! chats inside the query.

use std::collections::HashMap;

use super::MessageService;
use crate::domain::search::{
    SearchHit, SearchPosition, SearchQuery, SearchScope, decode_cursor, encode_cursor, search_limit,
};
use crate::domain::{AppError, AppResult, Member, Status, User, parse_id};
use crate::services::views::message_views;
use crate::store::search::SearchFilter;

/// What SearchMessages asks, with times in microseconds.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub query: String,
    /// "" for every chat of the caller.
    pub chat_id: String,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub limit: i32,
    pub cursor: String,
    pub best_first: bool,
}

/// One page of hits, and the cursor of the next ("" when there is none).
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub next_cursor: String,
}

impl MessageService {
    pub async fn search(&self, caller: &str, req: SearchRequest) -> AppResult<SearchPage> {
        let query = SearchQuery::parse(&req.query)?;
        let limit = search_limit(req.limit)?;
        let chat_id = match req.chat_id.as_str() {
            "" => None,
            raw => Some(parse_id("chat_id", raw)?),
        };
        if let (Some(before), Some(after)) = (req.before, req.after)
            && before <= after
        {
            return Err(AppError::invalid("before", "must be later than after"));
        }
        let scope = SearchScope {
            query: &query,
            chat_id: chat_id.as_deref(),
            before: req.before,
            after: req.after,
            best_first: req.best_first,
        };
        let position = decode_cursor(&req.cursor, &scope)?;
        if let Some(chat_id) = &chat_id {
            self.require_member(chat_id, caller).await?;
        }

        let mut found = self
            .store
            .search_messages(&SearchFilter {
                caller,
                words: query.words(),
                chat_id: chat_id.as_deref(),
                before: req.before,
                after: req.after,
                best_first: req.best_first,
                position: &position,
                limit: limit + 1,
            })
            .await?;
        let more = found.len() as u64 > limit;
        found.truncate(limit as usize);
        let next_cursor = match found.last() {
            Some(last) if more => encode_cursor(
                &scope,
                &if req.best_first {
                    let skipped = match position {
                        SearchPosition::Skip(n) => n,
                        _ => 0,
                    };
                    SearchPosition::Skip(skipped + limit)
                } else {
                    SearchPosition::After {
                        created_at: last.message.created_at,
                        id: last.message.id.clone(),
                    }
                },
            ),
            _ => String::new(),
        };

        // The chats' members: each hit's status, and a direct chat's name.
        let mut chat_ids: Vec<String> = found.iter().map(|f| f.message.chat_id.clone()).collect();
        chat_ids.sort_unstable();
        chat_ids.dedup();
        let mut members: HashMap<String, Vec<(Member, User)>> = HashMap::new();
        for (m, u) in self.store.members_with_users(&chat_ids).await? {
            members.entry(m.chat_id.clone()).or_default().push((m, u));
        }
        let messages = found.iter().map(|f| f.message.clone()).collect();
        let views = message_views(&self.store, caller, &[], messages).await?;
        let blocks = self.blocks.set(caller).await?;
        let hits = views
            .into_iter()
            .zip(found)
            .map(|(mut view, f)| {
                let chat = members
                    .get(&f.message.chat_id)
                    .map_or(&[][..], Vec::as_slice);
                let watermarks: Vec<Member> = chat.iter().map(|(m, _)| m.clone()).collect();
                view.status = Status::of(&watermarks, &view.message.sender_id, view.message.seq);
                // The store left out blocked senders; this node's cached
                // set may still know a block the store no longer has.
                let hidden = blocks.redact_view(&mut view) && view.message.hidden;
                let chat_name = if f.chat_name.is_empty() && !f.chat_is_group {
                    chat.iter()
                        .find(|(_, u)| u.id != caller)
                        .map(|(_, u)| u.username.clone())
                        .unwrap_or_default()
                } else {
                    f.chat_name
                };
                SearchHit {
                    view,
                    chat_name,
                    snippet: if hidden { String::new() } else { f.snippet },
                }
            })
            .collect();
        Ok(SearchPage { hits, next_cursor })
    }
}
