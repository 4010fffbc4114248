//! Domain values → protobuf messages. (Their pre-encoded stream form is
//! [`super::wire`]'s, built on these.)

use std::sync::Arc;
use std::time::SystemTime;

use prost_types::Timestamp;
use tidings_proto as proto;

use crate::domain::{
    Attachment, ChangeKind, ChatView, Message, MessageView, Quote, Reactions, User,
};
use crate::fanout::ChangeEvent;
use crate::streams::{StreamItem, UserItem};

pub fn timestamp_micros(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

pub fn user(u: User) -> proto::User {
    proto::User {
        id: u.id,
        username: u.username,
        email: u.email,
        created_at: Some(timestamp_micros(u.created_at)),
    }
}

/// The one place a `Message`'s fields are filled in, whatever the message
/// comes from (a reply, a list, a stream).
pub fn message_of(
    m: Message,
    username: String,
    status: &str,
    quote: Option<Quote>,
    reactions: Vec<Reactions>,
) -> proto::Message {
    proto::Message {
        id: m.id,
        chat_id: m.chat_id,
        user_id: m.sender_id,
        content: m.content,
        sent_at: Some(timestamp_micros(m.created_at)),
        status: status.to_owned(),
        seq: m.seq,
        username,
        edited_at: m.edited_at.map(timestamp_micros),
        deleted_at: m.deleted_at.map(timestamp_micros),
        reply_to_id: m.reply_to_id.unwrap_or_default(),
        reply_to: quote.map(|q| proto::Quote {
            message_id: q.message_id,
            user_id: q.user_id,
            username: q.username,
            excerpt: q.excerpt,
            deleted: q.deleted,
            hidden: q.hidden,
        }),
        mentions: m.mentions,
        reactions: reactions.into_iter().map(reaction).collect(),
        hidden: m.hidden,
        attachments: m.attachments.into_iter().map(attachment).collect(),
    }
}

pub fn attachment(a: Attachment) -> proto::Attachment {
    proto::Attachment {
        id: a.id,
        name: a.name,
        content_type: a.content_type,
        size: a.size,
        width: a.width,
        height: a.height,
        has_thumbnail: a.has_thumbnail,
    }
}

pub fn reaction(r: Reactions) -> proto::Reaction {
    proto::Reaction {
        emoji: r.emoji,
        count: r.count.clamp(0, i64::from(i32::MAX)) as i32,
        mine: r.mine,
        user_ids: r.user_ids,
    }
}

/// The one place a `ChatMessage`'s (the original stream item's) fields are
/// filled in.
pub fn chat_message_of(m: Message, username: String, status: &str) -> proto::ChatMessage {
    proto::ChatMessage {
        message_id: m.id,
        chat_id: m.chat_id,
        user_id: m.sender_id,
        username,
        content: m.content,
        sent_at: Some(timestamp_micros(m.created_at)),
        status: status.to_owned(),
        seq: m.seq,
        hidden: m.hidden,
        attachments: m.attachments.into_iter().map(attachment).collect(),
    }
}

pub fn message(v: MessageView) -> proto::Message {
    message_of(
        v.message,
        v.username,
        v.status.as_str(),
        v.quote,
        v.reactions,
    )
}

/// A logged change as the user stream's `ChatChange` (`member`: the
/// profile of the member a membership change is about).
pub fn change(event: ChangeEvent, member: Option<User>) -> proto::ChatChange {
    use proto::chat_change::Kind;
    let ChangeEvent { change, edited } = event;
    let chat_id = change.chat_id.clone();
    let kind = match change.kind {
        // The edited message as it is now; no status (the event is the same
        // for every member).
        ChangeKind::Edited { .. } => {
            edited.map(|(m, username)| Kind::Edited(message_of(m, username, "", None, Vec::new())))
        }
        ChangeKind::Deleted { message_id } => Some(Kind::Deleted(proto::MessageDeleted {
            message_id,
            deleted_at: Some(timestamp_micros(change.at)),
        })),
        ChangeKind::Reaction {
            message_id,
            emoji,
            added,
            count,
        } => Some(Kind::Reaction(proto::ReactionChanged {
            message_id,
            emoji,
            added,
            count: count.clamp(0, i64::from(i32::MAX)) as i32,
        })),
        ChangeKind::Renamed { name } => Some(Kind::Renamed(proto::ChatRenamed { name })),
        ChangeKind::Member { joined, .. } => Some(Kind::Member(proto::MemberChanged {
            chat_id: chat_id.clone(),
            user: member.map(user),
            joined,
        })),
    };
    proto::ChatChange {
        chat_id,
        change_seq: change.seq,
        at: Some(timestamp_micros(change.at)),
        user_id: change.user_id,
        kind,
    }
}

pub fn chat(v: ChatView) -> proto::Chat {
    let owner_id = v.chat.owner().unwrap_or_default().to_owned();
    proto::Chat {
        id: v.chat.id,
        name: v.display_name,
        created_at: Some(timestamp_micros(v.chat.created_at)),
        members: v.members.into_iter().map(user).collect(),
        last_message: v.last_message.map(message),
        is_group: v.chat.is_group,
        last_seq: v.chat.last_seq,
        unread_count: v.unread_count.clamp(0, i64::from(i32::MAX)) as i32,
        read_seq: v.read_seq,
        unread_mentions: v.unread_mentions.clamp(0, i64::from(i32::MAX)) as i32,
        owner_id,
        last_change: v.chat.last_change,
    }
}

pub fn user_item(item: UserItem) -> proto::Event {
    use proto::event::Kind;
    let kind = match item {
        UserItem::Connected { user_id } => Kind::Connected(proto::Connected {
            user_id,
            server_time: Some(timestamp(SystemTime::now())),
        }),
        UserItem::Message { message, status } => {
            let event = Arc::unwrap_or_clone(message);
            Kind::Message(message_of(
                event.message,
                event.sender_username,
                status.as_str(),
                event.quote,
                Vec::new(),
            ))
        }
        UserItem::Change { change, member } => {
            Kind::Change(self::change(Arc::unwrap_or_clone(change), member))
        }
        UserItem::Receipt {
            chat_id,
            user_id,
            delivered_seq,
            read_seq,
        } => Kind::Receipt(proto::Receipt {
            chat_id,
            user_id,
            delivered_seq,
            read_seq,
        }),
        UserItem::Typing {
            chat_id,
            user_id,
            username,
            typing,
        } => Kind::Typing(proto::Typing {
            chat_id,
            user_id,
            username,
            typing,
        }),
        UserItem::Presence {
            user_id,
            online,
            at,
        } => Kind::Presence(proto::Presence {
            user_id,
            online,
            at: Some(timestamp_micros(at)),
        }),
        UserItem::ChatAdded(view) => Kind::ChatAdded(chat(*view)),
        UserItem::ChatRemoved { chat_id } => Kind::ChatRemoved(proto::ChatRemoved { chat_id }),
        UserItem::MemberChanged {
            chat_id,
            user: u,
            joined,
        } => Kind::MemberChanged(proto::MemberChanged {
            chat_id,
            user: Some(user(u)),
            joined,
        }),
        UserItem::BlockChanged { user_id, blocked } => {
            Kind::BlockChanged(proto::BlockChanged { user_id, blocked })
        }
        UserItem::Heartbeat => Kind::Heartbeat(proto::Heartbeat {
            server_time: Some(timestamp(SystemTime::now())),
        }),
    };
    proto::Event { kind: Some(kind) }
}

/// The synthetic first frame of SubscribeToChat (contract).
pub const CONNECTION_ID: &str = "connection";
pub const CONNECTED: &str = "CONNECTED";

pub fn stream_item(item: StreamItem) -> proto::ChatMessage {
    match item {
        StreamItem::Connected { chat_id } => proto::ChatMessage {
            message_id: CONNECTION_ID.into(),
            chat_id,
            status: CONNECTED.into(),
            sent_at: Some(timestamp(SystemTime::now())),
            ..Default::default()
        },
        StreamItem::Message { message, status } => {
            let event = Arc::unwrap_or_clone(message);
            chat_message_of(event.message, event.sender_username, status.as_str())
        }
    }
}

/// A search hit: the message as the caller sees it, its chat, the snippet.
pub fn search_hit(h: crate::domain::search::SearchHit) -> proto::SearchHit {
    proto::SearchHit {
        chat_id: h.view.message.chat_id.clone(),
        message: Some(message(h.view)),
        chat_name: h.chat_name,
        snippet: h.snippet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_to_timestamp() {
        let t = timestamp_micros(1_700_000_000_123_456);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_456_000));
        let t = timestamp_micros(-1);
        assert_eq!((t.seconds, t.nanos), (-1, 999_999_000));
    }
}
