//! Messages: sending (with idempotency), history, receipts and the per-chat
//! live stream.

pub mod commit;
pub mod stream;

use crate::chats::{clamp_limit, parse_id};
use crate::error::{AppError, AppResult};
use crate::idempotency::{Claim, IdempotencyCache};
use crate::realtime::{Event, MessageEvent, Realtime};
use crate::store::chats::Member;
use crate::store::messages::{Appended, Message, NewMessage, Window};
use crate::store::{Store, new_id, now_micros};
use commit::Committer;

pub use stream::{ChatStream, StreamItem};

/// Message content: 1–4096 characters, not blank, kept byte for byte.
pub struct Content(String);

pub const MAX_CONTENT_CHARS: usize = 4096;

impl Content {
    pub fn parse(raw: String) -> AppResult<Content> {
        if raw.is_empty() {
            return Err(AppError::invalid("content", "is required"));
        }
        // Cheap bound first: more than 4 bytes per character is impossible.
        if raw.len() > MAX_CONTENT_CHARS * 4 || raw.chars().count() > MAX_CONTENT_CHARS {
            return Err(AppError::invalid(
                "content",
                format!("must be at most {MAX_CONTENT_CHARS} characters"),
            ));
        }
        if raw.trim().is_empty() {
            return Err(AppError::invalid("content", "must not be blank"));
        }
        // PostgreSQL text cannot hold NUL; refuse it on every backend alike.
        if raw.contains('\0') {
            return Err(AppError::invalid(
                "content",
                "must not contain NUL characters",
            ));
        }
        Ok(Content(raw))
    }
}

/// An idempotency key: up to 128 printable characters; empty means none.
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse_optional(raw: String) -> AppResult<Option<IdempotencyKey>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > 128 {
            return Err(AppError::invalid(
                "idempotency_key",
                "must be at most 128 characters",
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "idempotency_key",
                "must not contain control characters",
            ));
        }
        Ok(Some(IdempotencyKey(raw)))
    }
}

/// How far the other members of a chat have got with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Sent,
    Delivered,
    Read,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "SENT",
            Status::Delivered => "DELIVERED",
            Status::Read => "READ",
        }
    }

    pub fn parse(raw: &str) -> AppResult<Status> {
        match raw.to_ascii_uppercase().as_str() {
            "SENT" => Ok(Status::Sent),
            "DELIVERED" => Ok(Status::Delivered),
            "READ" => Ok(Status::Read),
            _ => Err(AppError::invalid(
                "status",
                "must be one of SENT, DELIVERED, READ",
            )),
        }
    }

    /// READ once every other member has read it, DELIVERED once every other
    /// member has received it, SENT before that (and in a chat of one).
    pub fn of(members: &[Member], sender_id: &str, seq: i64) -> Status {
        let mut others = members.iter().filter(|m| m.user_id != sender_id).peekable();
        if others.peek().is_none() {
            return Status::Sent;
        }
        let (mut read, mut delivered) = (true, true);
        for m in others {
            read &= m.read_seq >= seq;
            delivered &= m.delivered_seq.max(m.read_seq) >= seq;
        }
        if read {
            Status::Read
        } else if delivered {
            Status::Delivered
        } else {
            Status::Sent
        }
    }
}

/// A message with its status as the chat's watermarks say.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub message: Message,
    pub status: Status,
    /// The sender's username.
    pub username: String,
}

#[derive(Clone)]
pub struct MessageService {
    store: Store,
    realtime: Realtime,
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
        realtime: Realtime,
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
                realtime.clone(),
                idempotency.clone(),
                committers,
            ),
            store,
            realtime,
            idempotency,
            typing: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(TYPING_INTERVAL)
                .build(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn realtime(&self) -> &Realtime {
        &self.realtime
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
        let key = IdempotencyKey::parse_optional(idempotency_key)?.map(|k| k.0);

        let claim = match &key {
            Some(key) => Some(self.idempotency.claim(sender_id, key).await),
            None => None,
        };
        if let Some(Claim::Done(message_id)) = &claim
            && let Some(existing) = self.store.message_by_id(message_id).await?
            && existing.sender_id == sender_id
        {
            self.require_member(&chat_id, sender_id).await?;
            return self.replay(existing, &chat_id, &content.0).await;
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
                content: content.0.clone(),
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
                (self.replay(existing, &chat_id, &content.0).await, Some(id))
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
        self.realtime
            .publish(Event::Message(std::sync::Arc::new(MessageEvent {
                id: existing.id.clone(),
                chat_id: existing.chat_id.clone(),
                seq: existing.seq,
                sender_id: existing.sender_id.clone(),
                sender_username: username.clone(),
                content: existing.content.clone(),
                created_at: existing.created_at,
                encoded: Default::default(),
            })));
        Ok(MessageView {
            message: existing,
            status,
            username,
        })
    }

    /// History: a page (newest first) or a seq cursor. Returns the messages
    /// and the chat's message count.
    pub async fn list(
        &self,
        caller: &str,
        chat_id: &str,
        page: i32,
        limit: i32,
        before_seq: i64,
        after_seq: i64,
    ) -> AppResult<(Vec<MessageView>, i64)> {
        let chat_id = parse_id("chat_id", chat_id)?;
        if before_seq < 0 {
            return Err(AppError::invalid("before_seq", "must not be negative"));
        }
        if after_seq < 0 {
            return Err(AppError::invalid("after_seq", "must not be negative"));
        }
        if before_seq > 0 && after_seq > 0 {
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
        } else if after_seq > 0 {
            Window::After(after_seq)
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
            self.realtime.publish(Event::Receipt {
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
        self.realtime.publish(Event::Typing {
            chat_id,
            user_id: caller.to_owned(),
            username,
            typing,
        });
        Ok(())
    }

    /// Opens a live stream of a chat's messages (see [`stream`]).
    pub async fn subscribe(
        &self,
        caller: &str,
        chat_id: &str,
        after_seq: i64,
        expires_at: std::time::SystemTime,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> AppResult<ChatStream> {
        let chat_id = parse_id("chat_id", chat_id)?;
        if after_seq < 0 {
            return Err(AppError::invalid("after_seq", "must not be negative"));
        }
        self.require_member(&chat_id, caller).await?;
        stream::open(
            self.clone(),
            caller.to_owned(),
            chat_id,
            after_seq,
            expires_at,
            shutdown,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: &str, delivered: i64, read: i64) -> Member {
        Member {
            chat_id: "c".into(),
            user_id: user.into(),
            joined_at: 0,
            delivered_seq: delivered,
            read_seq: read,
        }
    }

    #[test]
    fn content_rules() {
        assert!(Content::parse(String::new()).is_err());
        assert!(Content::parse(" \n\t ".into()).is_err());
        assert!(Content::parse("a\0b".into()).is_err());
        assert!(Content::parse("é".repeat(4096)).is_ok());
        assert!(Content::parse("é".repeat(4097)).is_err());
        let kept = Content::parse("  padded\r\n ".into()).unwrap();
        assert_eq!(kept.0, "  padded\r\n ");
    }

    #[test]
    fn status_needs_every_other_member() {
        let members = [member("a", 5, 5), member("b", 5, 3), member("c", 4, 4)];
        assert_eq!(Status::of(&members, "a", 3), Status::Read);
        assert_eq!(Status::of(&members, "a", 4), Status::Delivered);
        assert_eq!(Status::of(&members, "a", 5), Status::Sent);
        // The sender's own watermark does not count: c lags, but c sent it.
        assert_eq!(Status::of(&members, "c", 5), Status::Delivered);
        assert_eq!(Status::of(&members, "a", 6), Status::Sent);
        assert_eq!(Status::of(&[member("a", 0, 0)], "a", 1), Status::Sent);
    }

    #[test]
    fn status_names() {
        assert_eq!(Status::parse("read").unwrap(), Status::Read);
        assert!(Status::parse("SEEN").is_err());
        assert_eq!(Status::Delivered.as_str(), "DELIVERED");
    }
}
