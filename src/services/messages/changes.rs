//! Changing messages after they were sent: edits (the sender's), deletes
//! (the sender's, or a group owner's), reactions (any member's). Each is one
//! transaction with its entry in the chat's change log
//! (`store::changes`), published after it commits like a message.

use std::sync::Arc;

use super::MessageService;
use crate::domain::{
    AppError, AppResult, Change, Content, Emoji, Message, MessageView, Reactions, now_micros,
    parse_id,
};
use crate::fanout::{ChangeEvent, Event};
use crate::services::views::{message_views, reactions_of};
use crate::store::reactions::Reacted;

/// Different emoji one message may carry at most.
pub const MAX_REACTION_EMOJI: u64 = 20;

impl MessageService {
    /// A message the caller may see (a member of its chat), or NOT_FOUND.
    async fn visible_message(&self, caller: &str, message_id: &str) -> AppResult<Message> {
        let message_id = parse_id("message_id", message_id)?;
        let message = self
            .store
            .message_by_id(&message_id)
            .await?
            .ok_or(AppError::NotFound("message"))?;
        self.store
            .membership(&message.chat_id, caller)
            .await?
            .ok_or(AppError::NotFound("message"))?;
        Ok(message)
    }

    fn publish_change(&self, change: Change, edited: Option<(Message, String)>) {
        self.fanout
            .publish(Event::Change(Arc::new(ChangeEvent { change, edited })));
    }

    /// Replaces the content of the caller's own message (same rules as a
    /// send; mentions are resolved again). It keeps its id and seq.
    pub async fn edit(
        &self,
        caller: &str,
        message_id: &str,
        content: String,
    ) -> AppResult<MessageView> {
        let message = self.visible_message(caller, message_id).await?;
        let content = Content::parse(content)?;
        if message.sender_id != caller {
            return Err(AppError::PermissionDenied(
                "message_id: only its sender may edit a message".into(),
            ));
        }
        let deleted = || {
            AppError::FailedPrecondition("message_id: a deleted message cannot be edited".into())
        };
        if message.deleted_at.is_some() {
            return Err(deleted());
        }
        let mentions = self
            .mentions(&message.chat_id, caller, content.as_str())
            .await?;
        let (edited, change) = self
            .store
            .edit_message(&message, content.as_str(), &mentions, now_micros())
            .await?
            .ok_or_else(deleted)?;
        let members = self.store.members(&edited.chat_id).await?;
        let view = message_views(&self.store, caller, &members, vec![edited])
            .await?
            .pop()
            .ok_or(AppError::NotFound("message"))?;
        self.publish_change(change, Some((view.message.clone(), view.username.clone())));
        Ok(view)
    }

    /// Erases a message's content, keeping the tombstone: the sender may,
    /// and so may the owner of a group room. Deleting twice is OK.
    pub async fn delete(&self, caller: &str, message_id: &str) -> AppResult<()> {
        let message = self.visible_message(caller, message_id).await?;
        if message.sender_id != caller {
            let chat = self
                .store
                .chat_by_id(&message.chat_id)
                .await?
                .ok_or(AppError::NotFound("message"))?;
            if chat.owner() != Some(caller) {
                return Err(AppError::PermissionDenied(
                    "message_id: only its sender or the room's owner may delete a message".into(),
                ));
            }
        }
        if message.deleted_at.is_some() {
            return Ok(());
        }
        if let Some((_, change)) = self
            .store
            .delete_message(&message, caller, now_micros())
            .await?
        {
            tracing::info!(chat_id = %message.chat_id, seq = message.seq, "message deleted");
            self.publish_change(change, None);
            if !message.attachments.is_empty() {
                // Its files were let go in the delete's transaction; their
                // bytes go now (or, should this fail, at the next sweep).
                if let Err(e) = self.files.sweep_released().await {
                    tracing::warn!(error = %e, "files of a deleted message left for the sweep");
                }
            }
        }
        Ok(())
    }

    /// Adds the caller's `emoji` to a message: adding twice counts once.
    /// Returns the message's reactions.
    pub async fn add_reaction(
        &self,
        caller: &str,
        message_id: &str,
        emoji: &str,
    ) -> AppResult<(String, Vec<Reactions>)> {
        let message = self.visible_message(caller, message_id).await?;
        let emoji = Emoji::parse(emoji)?;
        if message.deleted_at.is_some() {
            return Err(AppError::FailedPrecondition(
                "message_id: a deleted message takes no reactions".into(),
            ));
        }
        match self
            .store
            .add_reaction(
                &message,
                caller,
                emoji.as_str(),
                MAX_REACTION_EMOJI,
                now_micros(),
            )
            .await?
        {
            Reacted::Added(change) => self.publish_change(change, None),
            Reacted::Already => {}
            Reacted::TooMany => {
                return Err(AppError::FailedPrecondition(format!(
                    "emoji: a message takes at most {MAX_REACTION_EMOJI} different emoji"
                )));
            }
        }
        let reactions = reactions_of(&self.store, &message.id, caller).await?;
        Ok((message.id, reactions))
    }

    /// Takes the caller's `emoji` back (nothing to take back is OK).
    pub async fn remove_reaction(
        &self,
        caller: &str,
        message_id: &str,
        emoji: &str,
    ) -> AppResult<(String, Vec<Reactions>)> {
        let message = self.visible_message(caller, message_id).await?;
        let emoji = Emoji::parse(emoji)?;
        if let Some(change) = self
            .store
            .remove_reaction(&message, caller, emoji.as_str(), now_micros())
            .await?
        {
            self.publish_change(change, None);
        }
        let reactions = reactions_of(&self.store, &message.id, caller).await?;
        Ok((message.id, reactions))
    }
}
