//! Domain values → protobuf messages.

use std::time::SystemTime;

use prost_types::Timestamp;

use crate::chats::ChatView;
use crate::messages::{MessageView, Status, StreamItem};
use crate::proto;
use crate::realtime::MessageEvent;
use crate::realtime::user_stream::UserItem;
use crate::store::users::User;

use super::wire::{self, Frame};

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

pub fn message(v: MessageView) -> proto::Message {
    let m = v.message;
    proto::Message {
        id: m.id,
        chat_id: m.chat_id,
        user_id: m.sender_id,
        content: m.content,
        sent_at: Some(timestamp_micros(m.created_at)),
        status: v.status.as_str().to_owned(),
        seq: m.seq,
        username: v.username,
    }
}

/// A streamed message as the proto Message.
pub fn message_event(m: MessageEvent, status: Status) -> proto::Message {
    proto::Message {
        id: m.id,
        chat_id: m.chat_id,
        user_id: m.sender_id,
        content: m.content,
        sent_at: Some(timestamp_micros(m.created_at)),
        status: status.as_str().to_owned(),
        seq: m.seq,
        username: m.sender_username,
    }
}

pub fn user_item(item: UserItem) -> proto::Event {
    use proto::event::Kind;
    let kind = match item {
        UserItem::Connected { user_id } => Kind::Connected(proto::Connected {
            user_id,
            server_time: Some(timestamp(SystemTime::now())),
        }),
        UserItem::Message { message, status } => Kind::Message(message_event(
            std::sync::Arc::unwrap_or_clone(message),
            status,
        )),
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
        UserItem::Heartbeat => Kind::Heartbeat(proto::Heartbeat {
            server_time: Some(timestamp(SystemTime::now())),
        }),
    };
    proto::Event { kind: Some(kind) }
}

/// A user-stream item in wire form: a message from its shared encoding,
/// anything else encoded here.
pub fn user_frame(item: UserItem) -> Frame {
    match item {
        UserItem::Message { message, status } => {
            wire::message(&message, status).wrap(wire::EVENT_MESSAGE)
        }
        other => Frame::encode(&user_item(other)),
    }
}

/// A chat-stream item in wire form (see [`user_frame`]).
pub fn chat_frame(item: StreamItem) -> Frame {
    match item {
        StreamItem::Message { message, status } => wire::chat_message(&message, status),
        connected => Frame::encode(&stream_item(connected)),
    }
}

pub fn chat(v: ChatView) -> proto::Chat {
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
    }
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
            let message = std::sync::Arc::unwrap_or_clone(message);
            proto::ChatMessage {
                message_id: message.id,
                chat_id: message.chat_id,
                user_id: message.sender_id,
                username: message.sender_username,
                content: message.content,
                sent_at: Some(timestamp_micros(message.created_at)),
                status: status_str(status),
                seq: message.seq,
            }
        }
    }
}

fn status_str(s: Status) -> String {
    s.as_str().to_owned()
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
