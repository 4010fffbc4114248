//! Messages: sending (with idempotency, through the group committer),
//! history, receipts and typing.

pub mod commit;

use crate::domain::{
    AppError, AppResult, Content, IdempotencyKey, Member, Message, MessageView, Status,
    clamp_limit, new_id, now_micros, parse_id,
};
use crate::fanout::{Event, Fanout, MessageEvent};
use crate::idempotency::{Claim, IdempotencyCache};
use crate::store::Store;
use crate::store::messages::{Appended, NewMessage, Window};
use commit::Committer;

#[derive(Clone)]
pub struct MessageService {
    store: Store,
    fanout: Fanout,
    idempotency: IdempotencyCache,
    /// Stores sends in batches (group commit) and publishes them in order.
    committer: Committer,
    /// Recent typing=true announcements per (user, chat), to rate-limit them.
    typing: moka::sync::Cache<(String, String), ()>,
}

/// At most one typing=true per user and chat is passed on within this window.
pub const TYPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl MessageService {
    /// `committers`: how many group-commit tasks store sends (0: the
    /// default, [`commit::DEFAULT_SHARDS`]).
    pub fn new(
        store: Store,
        fanout: Fanout,
        idempotency: IdempotencyCache,
        committers: usize,
    ) -> MessageService {
        let committers = match committers {
            0 => commit::DEFAULT_SHARDS,
            n => n,
        };
        MessageService {
            committer: Committer::start(
                store.clone(),
                fanout.clone(),
                idempotency.clone(),
                committers,
            ),
            store,
            fanout,
            idempotency,
            typing: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(TYPING_INTERVAL)
                .build(),
        }
    }

    async fn require_member(&self, chat_id: &str, user_id: &str) -> AppResult<Member> {
        self.store
            .membership(chat_id, user_id)
            .await?
            .ok_or(AppError::NotFound("chat"))
    }

    /// Sends a message. A repeated key returns the original message; the same
    /// key for a different chat or content is refused.
    ///
    /// Membership, the sender's username and the idempotency key are checked
    /// by the committer, for the whole batch at once (see [`commit`]).
    pub async fn send(
        &self,
        sender_id: &str,
        chat_id: &str,
        content: String,
        idempotency_key: String,
    ) -> AppResult<MessageView> {
        let chat_id = parse_id("chat_id", chat_id)?;
        let content = Content::parse(content)?;
        let key = IdempotencyKey::parse_optional(idempotency_key)?.map(IdempotencyKey::into_string);

        let claim = match &key {
            Some(key) => Some(self.idempotency.claim(sender_id, key).await),
            None => None,
        };
        if let Some(Claim::Done(message_id)) = &claim
            && let Some(existing) = self.store.message_by_id(message_id).await?
            && existing.sender_id == sender_id
        {
            self.require_member(&chat_id, sender_id).await?;
            return self.replay(existing, &chat_id, content.as_str()).await;
        }
        // Not known to the cache (or the cache is stale, flushed or down):
        // the committer asks the database.
        let outcome = self
            .committer
            .submit(NewMessage {
                id: new_id(),
                chat_id: chat_id.clone(),
                sender_id: sender_id.to_owned(),
                idempotency_key: key.clone(),
                content: content.as_str().to_owned(),
                created_at: now_micros(),
            })
            .await;
        // What the idempotency cache must learn from this caller: a stored
        // id, or nothing. The committer records what it inserted itself,
        // once per batch.
        let (view, stored_id) = match outcome {
            Ok(Appended::Inserted { message, username }) => {
                tracing::debug!(chat_id, seq = message.seq, "message stored");
                let view = MessageView {
                    message,
                    status: Status::Sent,
                    username,
                };
                return Ok(view);
            }
            Ok(Appended::Existing(existing)) => {
                let id = existing.id.clone();
                (
                    self.replay(existing, &chat_id, content.as_str()).await,
                    Some(id),
                )
            }
            Ok(Appended::NotMember) => (Err(AppError::NotFound("chat")), None),
            Ok(Appended::UnknownSender) => (
                Err(AppError::Unauthenticated("user no longer exists".into())),
                None,
            ),
            Err(err) => (Err(err), None),
        };
        if let Some(key) = &key {
            match &stored_id {
                Some(id) => self.idempotency.complete(sender_id, key, id).await,
                None if claim == Some(Claim::Acquired) => {
                    self.idempotency.release(sender_id, key).await
                }
                None => {}
            }
        }
        view
    }

    /// Answers a repeated key with the original message, if it matches, and
    /// announces it again: a retry means the client got no answer, and the
    /// node that stored it may have died before announcing it. Streams skip
    /// what they already delivered, so a second announcement costs nothing.
    async fn replay(
        &self,
        existing: Message,
        chat_id: &str,
        content: &str,
    ) -> AppResult<MessageView> {
        if existing.chat_id != chat_id || existing.content != content {
            return Err(AppError::FailedPrecondition(
                "idempotency_key: already used for a different message".into(),
            ));
        }
        let members = self.store.members(chat_id).await?;
        let status = Status::of(&members, &existing.sender_id, existing.seq);
        let username = self
            .store
            .user_by_id(&existing.sender_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        self.fanout
            .publish(Event::Message(std::sync::Arc::new(MessageEvent::stored(
                existing.clone(),
                username.clone(),
            ))));
        Ok(MessageView {
            message: existing,
            status,
            username,
        })
    }

    /// History: a page (newest first) or a seq cursor (`after_seq` set, 0
    /// included, reads oldest first from there). Returns the messages and
    /// the chat's message count.
    pub async fn list(
        &self,
        caller: &str,
        chat_id: &str,
        page: i32,
        limit: i32,
        before_seq: i64,
        after_seq: Option<i64>,
    ) -> AppResult<(Vec<MessageView>, i64)> {
        let chat_id = parse_id("chat_id", chat_id)?;
        if before_seq < 0 {
            return Err(AppError::invalid("before_seq", "must not be negative"));
        }
        if after_seq.is_some_and(|a| a < 0) {
            return Err(AppError::invalid("after_seq", "must not be negative"));
        }
        if before_seq > 0 && after_seq.is_some() {
            return Err(AppError::invalid(
                "before_seq",
                "cannot be combined with after_seq",
            ));
        }
        let (chat, _) = self
            .store
            .chat_for_member(&chat_id, caller)
            .await?
            .ok_or(AppError::NotFound("chat"))?;
        let limit = clamp_limit(limit, 50);
        let window = if before_seq > 0 {
            Window::Before(before_seq)
        } else if let Some(after) = after_seq {
            Window::After(after)
        } else {
            let page = i64::from(page.max(1));
            Window::Newest {
                offset: (page - 1).saturating_mul(limit) as u64,
            }
        };
        let messages = self.store.messages(&chat_id, window, limit as u64).await?;
        let members = self.store.members(&chat_id).await?;
        let mut senders: Vec<String> = messages.iter().map(|m| m.sender_id.clone()).collect();
        senders.sort();
        senders.dedup();
        let names: std::collections::HashMap<String, String> = self
            .store
            .users_by_ids(&senders)
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect();
        let views = messages
            .into_iter()
            .map(|message| MessageView {
                status: Status::of(&members, &message.sender_id, message.seq),
                username: names.get(&message.sender_id).cloned().unwrap_or_default(),
                message,
            })
            .collect();
        // Messages are never deleted, so the last seq is the count.
        Ok((views, chat.last_seq))
    }

    /// Moves the caller's delivered (or read) watermark up to this message.
    pub async fn update_status(
        &self,
        caller: &str,
        message_id: &str,
        status: &str,
    ) -> AppResult<Status> {
        let message_id = parse_id("message_id", message_id)?;
        let status = Status::parse(status)?;
        let message = self
            .store
            .message_by_id(&message_id)
            .await?
            .ok_or(AppError::NotFound("message"))?;
        self.require_member(&message.chat_id, caller)
            .await
            .map_err(|_| AppError::NotFound("message"))?;
        if status != Status::Sent {
            self.raise(
                &message.chat_id,
                caller,
                message.seq,
                status == Status::Read,
            )
            .await?;
        }
        Ok(status)
    }

    /// Moves watermarks and tells the chat when they moved.
    async fn raise(&self, chat_id: &str, user_id: &str, seq: i64, read: bool) -> AppResult<()> {
        if let Some(m) = self
            .store
            .raise_watermarks(chat_id, user_id, seq, read)
            .await?
        {
            self.fanout.publish(Event::Receipt {
                chat_id: m.chat_id,
                user_id: m.user_id,
                delivered_seq: m.delivered_seq,
                read_seq: m.read_seq,
            });
        }
        Ok(())
    }

    /// Marks the chat read up to `seq` (clamped to the chat's last message).
    /// Returns the read watermark and the unread count after it.
    pub async fn mark_read(
        &self,
        caller: &str,
        chat_id: &str,
        seq: i64,
    ) -> AppResult<(String, i64, i64)> {
        let chat_id = parse_id("chat_id", chat_id)?;
        if seq < 0 {
            return Err(AppError::invalid("seq", "must not be negative"));
        }
        let (chat, _) = self
            .store
            .chat_for_member(&chat_id, caller)
            .await?
            .ok_or(AppError::NotFound("chat"))?;
        let seq = seq.min(chat.last_seq);
        if seq > 0 {
            self.raise(&chat_id, caller, seq, true).await?;
        }
        let me = self
            .store
            .membership(&chat_id, caller)
            .await?
            .ok_or(AppError::NotFound("chat"))?;
        let (chat, _) = self
            .store
            .chat_for_member(&chat_id, caller)
            .await?
            .ok_or(AppError::NotFound("chat"))?;
        Ok((chat_id, me.read_seq, (chat.last_seq - me.read_seq).max(0)))
    }

    /// "Typing" (or stopped). typing=true is passed on at most once per
    /// [`TYPING_INTERVAL`] per user and chat; the rest are absorbed.
    pub async fn typing(&self, caller: &str, chat_id: &str, typing: bool) -> AppResult<()> {
        let chat_id = parse_id("chat_id", chat_id)?;
        self.require_member(&chat_id, caller).await?;
        let key = (caller.to_owned(), chat_id.clone());
        if typing {
            let entry = self.typing.entry(key).or_insert(());
            if !entry.is_fresh() {
                return Ok(());
            }
        } else {
            self.typing.invalidate(&key);
        }
        let username = self
            .store
            .user_by_id(caller)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        self.fanout.publish(Event::Typing {
            chat_id,
            user_id: caller.to_owned(),
            username,
            typing,
        });
        Ok(())
    }
}
