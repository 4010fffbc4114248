//! Chats: direct chats (unique per pair of people) and group rooms, and the
//! views of them a member sees.

use std::collections::HashMap;

use crate::domain::{
    AppError, AppResult, Chat, ChatName, ChatView, Email, Member, MessageView, Status, User,
    canonical_id, clamp_limit, direct_key, new_id, now_micros, parse_id,
};
use crate::fanout::Fanout;
use crate::services::blocks::BlockService;
use crate::store::Store;

/// What an unknown member id is told (in a BadRequest, beside NOT_FOUND).
const NO_SUCH_USER: &str = "no user has this id";

/// Most members a group may be created with.
pub const MAX_GROUP_MEMBERS: usize = 256;

/// What CreateChat asks for.
#[derive(Debug, Default, Clone)]
pub struct NewChat {
    pub name: String,
    pub email: String,
    pub member_emails: Vec<String>,
    pub member_ids: Vec<String>,
    pub is_group: bool,
}

#[derive(Clone)]
pub struct ChatService {
    store: Store,
    fanout: Fanout,
    blocks: BlockService,
}

mod rooms;

impl ChatService {
    pub fn new(store: Store, fanout: Fanout, blocks: BlockService) -> ChatService {
        ChatService {
            store,
            fanout,
            blocks,
        }
    }

    /// Creates a chat and returns its id. `email` alone (no member lists, no
    /// `is_group`) opens the caller's direct chat with that person, reusing
    /// the existing one.
    pub async fn create(&self, caller: &str, req: NewChat) -> AppResult<String> {
        let name = ChatName::parse_optional(&req.name)?;
        let group = req.is_group || !req.member_emails.is_empty() || !req.member_ids.is_empty();
        if !group {
            return self.create_direct(caller, name, &req.email).await;
        }

        let name = name.ok_or_else(|| AppError::invalid("name", "is required for a group"))?;
        let mut raw_emails: Vec<(String, &String)> = req
            .member_emails
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("member_emails[{i}]"), e))
            .collect();
        if !req.email.is_empty() {
            raw_emails.push(("email".into(), &req.email));
        }
        let found = self.resolve_users(&raw_emails, &req.member_ids).await?;
        self.refuse_blockers(caller, &found, &req.member_ids)
            .await?;
        let mut members: Vec<String> = std::iter::once(caller.to_owned()).chain(found).collect();
        members.sort();
        members.dedup();
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(AppError::invalid(
                "member_ids",
                format!("a group has at most {MAX_GROUP_MEMBERS} members"),
            ));
        }
        let now = now_micros();
        let chat = Chat {
            id: new_id(),
            name: name.into_string(),
            is_group: true,
            direct_key: None,
            created_by: caller.to_owned(),
            created_at: now,
            last_seq: 0,
            last_activity_at: now,
            last_change: 0,
        };
        let chat = self.store.create_chat(chat, &members).await?;
        tracing::info!(chat_id = %chat.id, members = members.len(), "group created");
        self.announce_added(&chat.id, &members, 0, 0);
        Ok(chat.id)
    }

    /// Refuses to put into a room anyone of `wanted` who blocked the
    /// caller, naming the first (by username) and the field that named them.
    async fn refuse_blockers(
        &self,
        caller: &str,
        wanted: &[String],
        raw_ids: &[String],
    ) -> AppResult<()> {
        let blockers = self.store.blockers_among(caller, wanted).await?;
        let Some(first) = self
            .store
            .users_by_ids(&blockers)
            .await?
            .into_iter()
            .min_by(|a, b| a.username_lower.cmp(&b.username_lower))
        else {
            return Ok(());
        };
        let by_id = raw_ids
            .iter()
            .any(|raw| canonical_id(raw) == Some(first.id.as_str()));
        Err(AppError::Refused {
            field: if by_id { "member_ids" } else { "member_emails" },
            message: format!("{} does not accept being added by you", first.username),
        })
    }

    /// Resolves member emails and ids to user ids; unknown ones are
    /// NOT_FOUND, naming the first unknown entry (`member_emails[i]`,
    /// `email`, `member_ids[i]`). `raw_emails`: each with the field it came from.
    async fn resolve_users(
        &self,
        raw_emails: &[(String, &String)],
        raw_ids: &[String],
    ) -> AppResult<Vec<String>> {
        let mut emails = Vec::new();
        let mut named: Vec<(String, String)> = Vec::new();
        for (field, raw) in raw_emails {
            let email = Email::parse(raw)?.as_str().to_owned();
            named.push((field.clone(), email.clone()));
            emails.push(email);
        }
        let mut ids = Vec::new();
        for (i, raw) in raw_ids.iter().enumerate() {
            match canonical_id(raw) {
                Some(id) => ids.push(id.to_owned()),
                None if raw.is_empty() => {
                    return Err(AppError::invalid(
                        "member_ids",
                        "must not contain empty ids",
                    ));
                }
                None => {
                    return Err(AppError::NotFoundAt {
                        what: "member_ids: user",
                        field: format!("member_ids[{i}]"),
                        description: NO_SUCH_USER,
                    });
                }
            }
        }
        emails.sort();
        emails.dedup();
        ids.sort();
        ids.dedup();
        if emails.len() + ids.len() > MAX_GROUP_MEMBERS {
            return Err(AppError::invalid(
                "member_ids",
                format!("a group has at most {MAX_GROUP_MEMBERS} members"),
            ));
        }
        let by_email = self.store.users_by_emails(&emails).await?;
        if by_email.len() != emails.len() {
            let first = named
                .into_iter()
                .find(|(_, e)| !by_email.iter().any(|u| u.email == *e));
            return Err(AppError::NotFoundAt {
                what: "member_emails: user",
                field: first.map_or_else(|| "member_emails".into(), |(f, _)| f),
                description: "no one with this address has an account here",
            });
        }
        let by_id = self.store.users_by_ids(&ids).await?;
        if by_id.len() != ids.len() {
            let first = raw_ids.iter().position(|raw| {
                !by_id
                    .iter()
                    .any(|u| canonical_id(raw) == Some(u.id.as_str()))
            });
            return Err(AppError::NotFoundAt {
                what: "member_ids: user",
                field: first.map_or_else(|| "member_ids".into(), |i| format!("member_ids[{i}]")),
                description: NO_SUCH_USER,
            });
        }
        let mut found: Vec<String> = by_email.into_iter().chain(by_id).map(|u| u.id).collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn create_direct(
        &self,
        caller: &str,
        name: Option<ChatName>,
        email: &str,
    ) -> AppResult<String> {
        if email.is_empty() {
            return Err(AppError::invalid(
                "email",
                "is required (or give member_emails / member_ids for a group)",
            ));
        }
        let email = Email::parse(email)?;
        let peer = self
            .store
            .user_by_email(email.as_str())
            .await?
            .ok_or(AppError::NotFound("email: user"))?;
        if peer.id == caller {
            return Err(AppError::invalid(
                "email",
                "must be someone else's (a direct chat has two people)",
            ));
        }
        let blocks = self.blocks.fresh_set(caller).await?;
        if blocks.hides(&peer.id) {
            return Err(AppError::FailedPrecondition(
                "you blocked this person: unblock them to write to them".into(),
            ));
        }
        if blocks.walls(&peer.id) {
            return Err(AppError::Refused {
                field: "email",
                message: "this person does not accept messages from you".into(),
            });
        }
        let now = now_micros();
        let chat = Chat {
            id: new_id(),
            name: name.map(ChatName::into_string).unwrap_or_default(),
            is_group: false,
            direct_key: Some(direct_key(caller, &peer.id)),
            created_by: caller.to_owned(),
            created_at: now,
            last_seq: 0,
            last_activity_at: now,
            last_change: 0,
        };
        let id = chat.id.clone();
        let members = [caller.to_owned(), peer.id.clone()];
        let chat = self.store.create_chat(chat, &members).await?;
        if chat.id == id {
            // New (not the pair's existing chat): both people's streams follow it.
            self.announce_added(&chat.id, &members, 0, 0);
        }
        Ok(chat.id)
    }

    pub async fn get(&self, caller: &str, chat_id: &str) -> AppResult<ChatView> {
        let chat_id = parse_id("chat_id", chat_id)?;
        let (chat, me) = self
            .store
            .chat_for_member(&chat_id, caller)
            .await?
            .ok_or(AppError::NotFound("chat"))?;
        let mut views = self.views(caller, vec![(chat, me)]).await?;
        views.pop().ok_or(AppError::NotFound("chat"))
    }

    /// One page of the caller's chats, most recently active first.
    pub async fn list(
        &self,
        caller: &str,
        page: i32,
        limit: i32,
    ) -> AppResult<(Vec<ChatView>, i64)> {
        let limit = clamp_limit(limit, 20);
        let page = i64::from(page.max(1));
        let offset = (page - 1).saturating_mul(limit) as u64;
        let (rows, total) = self
            .store
            .chats_of_user(caller, offset, limit as u64)
            .await?;
        Ok((self.views(caller, rows).await?, total as i64))
    }

    /// Builds the member's view of several chats with four queries in all.
    /// (Their last messages come without quote and reactions: a chat list
    /// shows neither.)
    async fn views(&self, caller: &str, rows: Vec<(Chat, Member)>) -> AppResult<Vec<ChatView>> {
        let ids: Vec<String> = rows.iter().map(|(c, _)| c.id.clone()).collect();
        let mut members: HashMap<String, Vec<(Member, User)>> = HashMap::new();
        for (m, u) in self.store.members_with_users(&ids).await? {
            members.entry(m.chat_id.clone()).or_default().push((m, u));
        }
        let lasts: Vec<(String, i64)> = rows
            .iter()
            .map(|(c, _)| (c.id.clone(), c.last_seq))
            .collect();
        let reads: Vec<(String, i64)> = rows
            .iter()
            .map(|(c, me)| (c.id.clone(), me.read_seq))
            .collect();
        let mentions: HashMap<String, i64> = self
            .store
            .unread_mentions(caller, &reads)
            .await?
            .into_iter()
            .collect();
        let blocks = self.blocks.set(caller).await?;
        let mut last_messages: HashMap<String, _> = self
            .store
            .last_messages(&lasts)
            .await?
            .into_iter()
            .map(|m| (m.chat_id.clone(), m))
            .collect();

        Ok(rows
            .into_iter()
            .map(|(chat, me)| {
                let chat_members = members.remove(&chat.id).unwrap_or_default();
                let watermarks: Vec<Member> = chat_members.iter().map(|(m, _)| m.clone()).collect();
                let last_message = last_messages.remove(&chat.id).map(|mut message| {
                    blocks.redact(&mut message, None);
                    let status = Status::of(&watermarks, &message.sender_id, message.seq);
                    let username = chat_members
                        .iter()
                        .find(|(_, u)| u.id == message.sender_id)
                        .map(|(_, u)| u.username.clone())
                        .unwrap_or_default();
                    MessageView {
                        message,
                        status,
                        username,
                        quote: None,
                        reactions: Vec::new(),
                    }
                });
                let display_name = if chat.name.is_empty() && !chat.is_group {
                    chat_members
                        .iter()
                        .find(|(_, u)| u.id != caller)
                        .map(|(_, u)| u.username.clone())
                        .unwrap_or_default()
                } else {
                    chat.name.clone()
                };
                ChatView {
                    display_name,
                    members: chat_members.into_iter().map(|(_, u)| u).collect(),
                    last_message,
                    unread_count: (chat.last_seq - me.read_seq).max(0),
                    unread_mentions: mentions.get(&chat.id).copied().unwrap_or(0),
                    read_seq: me.read_seq,
                    chat,
                }
            })
            .collect())
    }
}
