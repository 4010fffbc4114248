//! Messages: sending (with idempotency, through the group committer) here;
//! history, receipts and typing in [`reading`]; edits, deletes and
//! reactions in [`changes`].

pub mod changes;
pub mod commit;
pub mod reading;
pub mod search;

use crate::domain::{
    AppError, AppResult, Content, IdempotencyKey, Member, Message, MessageView, Quote,
    mentioned_names, new_id, now_micros, parse_id,
};
use crate::fanout::{Event, Fanout, MessageEvent};
use crate::idempotency::{Claim, IdempotencyCache};
use crate::services::blocks::BlockService;
use crate::services::files::FileService;
use crate::services::views::{message_views, sent_view};
use crate::store::Store;
use crate::store::messages::{Appended, NewMessage};
use commit::Committer;

#[derive(Clone)]
pub struct MessageService {
    store: Store,
    fanout: Fanout,
    idempotency: IdempotencyCache,
    blocks: BlockService,
    /// Checks the files a send attaches; removes a deleted message's.
    files: FileService,
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
        blocks: BlockService,
        files: FileService,
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
            blocks,
            files,
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

    /// Sends a message, optionally answering `reply_to_id` (a message of
    /// the same chat), with files the sender uploaded (`attachment_ids`;
    /// the content may then be empty). A repeated key returns the original
    /// message; the same key for a different chat or content is refused.
    ///
    /// Membership, the sender's username and the idempotency key are checked
    /// by the committer, for the whole batch at once (see [`commit`]).
    pub async fn send(
        &self,
        sender_id: &str,
        chat_id: &str,
        content: String,
        idempotency_key: String,
        reply_to_id: &str,
        attachment_ids: &[String],
    ) -> AppResult<MessageView> {
        let chat_id = parse_id("chat_id", chat_id)?;
        let content = if content.is_empty() && !attachment_ids.is_empty() {
            Content::empty()
        } else {
            Content::parse(content)?
        };
        let key = IdempotencyKey::parse_optional(idempotency_key)?.map(IdempotencyKey::into_string);
        let reply_to_id = match reply_to_id {
            "" => None,
            raw => Some(
                parse_id("reply_to_id", raw)
                    .map_err(|_| AppError::NotFound("reply_to_id: message"))?,
            ),
        };

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
        self.check_blocks(sender_id, &chat_id).await?;
        let attachments = match self.files.attachable(sender_id, attachment_ids).await {
            Ok(a) => a,
            Err(err) => {
                // A retry whose first try stored the message: its files are
                // in that message now, which is the answer.
                if let Some(key) = &key
                    && let Some(existing) = self.store.message_by_sender_key(sender_id, key).await?
                {
                    self.require_member(&chat_id, sender_id).await?;
                    return self.replay(existing, &chat_id, content.as_str()).await;
                }
                return Err(err);
            }
        };
        let quote = match &reply_to_id {
            Some(id) => Some(self.quote(sender_id, &chat_id, id).await?),
            None => None,
        };
        let mentions = self.mentions(&chat_id, sender_id, content.as_str()).await?;
        // Not known to the cache (or the cache is stale, flushed or down):
        // the committer asks the database.
        let outcome = self
            .committer
            .submit(
                NewMessage {
                    id: new_id(),
                    chat_id: chat_id.clone(),
                    sender_id: sender_id.to_owned(),
                    idempotency_key: key.clone(),
                    content: content.as_str().to_owned(),
                    created_at: now_micros(),
                    reply_to_id,
                    mentions,
                    attachments,
                },
                quote.clone(),
            )
            .await;
        // What the idempotency cache must learn from this caller: a stored
        // id, or nothing. The committer records what it inserted itself,
        // once per batch.
        let (view, stored_id) = match outcome {
            Ok(Appended::Inserted { message, username }) => {
                tracing::debug!(chat_id, seq = message.seq, "message stored");
                return Ok(sent_view(message, username, quote));
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
        // An edited or deleted message no longer holds what was sent: the
        // chat is all that can still be compared.
        let changed = existing.edited_at.is_some() || existing.deleted_at.is_some();
        if existing.chat_id != chat_id || (!changed && existing.content != content) {
            return Err(AppError::FailedPrecondition(
                "idempotency_key: already used for a different message".into(),
            ));
        }
        let members = self.store.members(chat_id).await?;
        let sender = existing.sender_id.clone();
        let view = message_views(&self.store, &sender, &members, vec![existing])
            .await?
            .pop()
            .ok_or(AppError::NotFound("message"))?;
        self.fanout
            .publish(Event::Message(std::sync::Arc::new(MessageEvent::stored(
                view.message.clone(),
                view.username.clone(),
                view.quote.clone(),
            ))));
        Ok(view)
    }

    /// Refuses a send in a direct chat when a block stands between the two
    /// (the common case, a sender with no blocks either way, costs a cache
    /// look-up). A chat the sender is not in is left to the committer.
    async fn check_blocks(&self, sender_id: &str, chat_id: &str) -> AppResult<()> {
        let blocks = self.blocks.set(sender_id).await?;
        if blocks.is_empty() {
            return Ok(());
        }
        let Some((chat, _)) = self.store.chat_for_member(chat_id, sender_id).await? else {
            return Ok(());
        };
        if chat.is_group {
            return Ok(());
        }
        let members = self.store.members(chat_id).await?;
        let Some(peer) = members.iter().find(|m| m.user_id != sender_id) else {
            return Ok(());
        };
        if blocks.hides(&peer.user_id) {
            return Err(AppError::FailedPrecondition(
                "you blocked this person: unblock them to write here".into(),
            ));
        }
        if blocks.walls(&peer.user_id) {
            return Err(AppError::PermissionDenied(
                "this person does not accept messages from you".into(),
            ));
        }
        Ok(())
    }

    /// The quote of `reply_to_id` for a message to `chat_id`: a message of
    /// that chat, which the sender must be a member of. A message of
    /// another chat is INVALID_ARGUMENT if the sender can see it there,
    /// NOT_FOUND otherwise (as for one that does not exist).
    async fn quote(&self, sender_id: &str, chat_id: &str, reply_to_id: &str) -> AppResult<Quote> {
        self.require_member(chat_id, sender_id).await?;
        let quoted = self
            .store
            .message_by_id(reply_to_id)
            .await?
            .ok_or(AppError::NotFound("reply_to_id: message"))?;
        if quoted.chat_id != chat_id {
            let visible = self
                .store
                .membership(&quoted.chat_id, sender_id)
                .await?
                .is_some();
            return Err(if visible {
                AppError::invalid("reply_to_id", "must be a message of the same chat")
            } else {
                AppError::NotFound("reply_to_id: message")
            });
        }
        let username = self
            .store
            .user_by_id(&quoted.sender_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        Ok(Quote::of(&quoted, username))
    }

    /// The members of `chat_id` (other than the author) that `content`
    /// names with `@username`; other names stay plain text.
    pub(super) async fn mentions(
        &self,
        chat_id: &str,
        author: &str,
        content: &str,
    ) -> AppResult<Vec<String>> {
        let names = mentioned_names(content);
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let members = self
            .store
            .members_with_users(std::slice::from_ref(&chat_id.to_owned()))
            .await?;
        let mut ids: Vec<String> = Vec::new();
        for name in &names {
            if let Some((m, _)) = members
                .iter()
                .find(|(m, u)| u.username_lower == *name && m.user_id != author)
                && !ids.contains(&m.user_id)
            {
                ids.push(m.user_id.clone());
            }
        }
        Ok(ids)
    }
}
