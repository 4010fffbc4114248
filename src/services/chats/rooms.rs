//! Group rooms: membership (any member adds, anyone leaves) and what only
//! the owner may do (rename, remove members). Membership changes are in the
//! chat's change log, so a stream that was away learns of them on resume.

use super::{ChatService, MAX_GROUP_MEMBERS};
use crate::domain::{AppError, AppResult, Change, Chat, ChatName, ChatView, now_micros, parse_id};
use crate::fanout::{ChangeEvent, Event};

impl ChatService {
    /// Tells each new member's streams to start delivering the chat, from
    /// its message `from_seq` and change `from_change` on.
    pub(super) fn announce_added(
        &self,
        chat_id: &str,
        members: &[String],
        from_seq: i64,
        from_change: i64,
    ) {
        for user_id in members {
            self.fanout.publish(Event::ChatAdded {
                user_id: user_id.clone(),
                chat_id: chat_id.to_owned(),
                from_seq,
                from_change,
            });
        }
    }

    fn publish_change(&self, change: Change) {
        self.fanout
            .publish(Event::Change(std::sync::Arc::new(ChangeEvent {
                change,
                edited: None,
            })));
    }

    /// A member left or was removed: their streams stop delivering the chat
    /// at once, and the others hear of it (live, and in the change log).
    fn announce_left(&self, chat_id: &str, user_id: &str, change: Change) {
        self.fanout.publish(Event::ChatRemoved {
            user_id: user_id.to_owned(),
            chat_id: chat_id.to_owned(),
        });
        self.fanout.publish(Event::MemberChanged {
            chat_id: chat_id.to_owned(),
            user_id: user_id.to_owned(),
            joined: false,
        });
        self.publish_change(change);
    }

    /// A group room the caller is a member of; a direct chat is refused with
    /// `direct_refusal`.
    async fn group_of_member(
        &self,
        caller: &str,
        chat_id: &str,
        direct_refusal: &str,
    ) -> AppResult<Chat> {
        let chat_id = parse_id("chat_id", chat_id)?;
        let (chat, _) = self
            .store
            .chat_for_member(&chat_id, caller)
            .await?
            .ok_or(AppError::NotFound("chat"))?;
        if !chat.is_group {
            return Err(AppError::FailedPrecondition(format!(
                "chat_id: {direct_refusal}"
            )));
        }
        Ok(chat)
    }

    /// A group room the caller owns; another member gets PERMISSION_DENIED.
    async fn owned_group(&self, caller: &str, chat_id: &str, what: &str) -> AppResult<Chat> {
        let chat = self
            .group_of_member(caller, chat_id, &format!("a direct chat cannot be {what}"))
            .await?;
        if chat.owner() != Some(caller) {
            return Err(AppError::PermissionDenied(format!(
                "chat_id: only the room's owner may do this ({what})"
            )));
        }
        Ok(chat)
    }

    /// Adds people to a group room; any member may. Returns the room.
    pub async fn add_members(
        &self,
        caller: &str,
        chat_id: &str,
        member_emails: &[String],
        member_ids: &[String],
    ) -> AppResult<ChatView> {
        let chat_id = self
            .group_of_member(caller, chat_id, "a direct chat cannot take more members")
            .await?
            .id;
        if member_emails.is_empty() && member_ids.is_empty() {
            return Err(AppError::invalid(
                "member_emails",
                "give at least one member email or id",
            ));
        }
        let raw_emails: Vec<(String, &String)> = member_emails
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("member_emails[{i}]"), e))
            .collect();
        let wanted = self.resolve_users(&raw_emails, member_ids).await?;
        self.refuse_blockers(caller, &wanted, member_ids).await?;
        let current = self.store.members(&chat_id).await?.len();
        if current + wanted.len() > MAX_GROUP_MEMBERS {
            return Err(AppError::invalid(
                "member_ids",
                format!("a group has at most {MAX_GROUP_MEMBERS} members"),
            ));
        }
        let (chat, changes) = self
            .store
            .add_members(&chat_id, &wanted, caller, now_micros())
            .await?
            .ok_or(AppError::NotFound("chat"))?;
        let mut added = Vec::with_capacity(changes.len());
        for change in changes {
            if let crate::domain::ChangeKind::Member { user_id, .. } = &change.kind {
                self.fanout.publish(Event::MemberChanged {
                    chat_id: chat_id.clone(),
                    user_id: user_id.clone(),
                    joined: true,
                });
                added.push(user_id.clone());
            }
            self.publish_change(change);
        }
        self.announce_added(&chat_id, &added, chat.last_seq, chat.last_change);
        self.get(caller, &chat_id).await
    }

    /// Leaves a group room. The caller's streams stop delivering it at once.
    pub async fn leave(&self, caller: &str, chat_id: &str) -> AppResult<()> {
        let chat = self
            .group_of_member(caller, chat_id, "a direct chat cannot be left")
            .await?;
        if let Some(change) = self
            .store
            .remove_member(&chat.id, caller, caller, now_micros())
            .await?
        {
            self.announce_left(&chat.id, caller, change);
        }
        Ok(())
    }

    /// Renames a group room; its owner only. Returns the room.
    pub async fn rename(&self, caller: &str, chat_id: &str, name: &str) -> AppResult<ChatView> {
        let name = ChatName::parse_optional(name)?
            .ok_or_else(|| AppError::invalid("name", "is required"))?;
        let chat = self.owned_group(caller, chat_id, "renamed").await?;
        if let Some(change) = self
            .store
            .rename_chat(&chat.id, &name.into_string(), caller, now_micros())
            .await?
        {
            self.publish_change(change);
        }
        self.get(caller, &chat.id).await
    }

    /// Removes a member from a group room; its owner only (the owner leaves
    /// with LeaveChat). Removing a non-member is NOT_FOUND. Returns the room.
    pub async fn remove_member(
        &self,
        caller: &str,
        chat_id: &str,
        user_id: &str,
    ) -> AppResult<ChatView> {
        let chat = self.owned_group(caller, chat_id, "left by removal").await?;
        let user_id = parse_id("user_id", user_id)?;
        if user_id == caller {
            return Err(AppError::invalid(
                "user_id",
                "the owner leaves with LeaveChat, not RemoveMember",
            ));
        }
        let change = self
            .store
            .remove_member(&chat.id, &user_id, caller, now_micros())
            .await?
            .ok_or(AppError::NotFound("user_id: member"))?;
        tracing::info!(chat_id = %chat.id, "member removed");
        self.announce_left(&chat.id, &user_id, change);
        self.get(caller, &chat.id).await
    }
}
