//! Reading: history, watermarks and receipts, typing.

use super::MessageService;
use crate::domain::{AppError, AppResult, MessageView, Status, clamp_limit, parse_id};
use crate::fanout::Event;
use crate::services::views::message_views;
use crate::store::messages::Window;

impl MessageService {
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
        let mut views = message_views(&self.store, caller, &members, messages).await?;
        let blocks = self.blocks.set(caller).await?;
        for view in &mut views {
            blocks.redact_view(view);
        }
        // Deleted messages stay as tombstones, so the last seq is the count.
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
    pub(super) async fn raise(
        &self,
        chat_id: &str,
        user_id: &str,
        seq: i64,
        read: bool,
    ) -> AppResult<()> {
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
