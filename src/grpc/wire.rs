//! Stream items in wire form ([`Frame`], see `tidings_proto::wire`): a
//! message delivered to many streams is encoded once, and each stream adds
//! only its own status field and the enclosing tags.

use bytes::Bytes;
use prost::Message as _;
use tidings_proto::wire::{
    CHAT_MESSAGE_STATUS, EVENT_MESSAGE, Frame, MESSAGE_STATUS, SERVER_FRAME_EVENT,
};

use super::convert;
use crate::domain::Status;
use crate::fanout::MessageEvent;
use crate::streams::{StreamItem, UserItem};

/// The message as a `Message` (the user stream's `Event.message`). The
/// shared part is encoded on the first call for this event.
pub fn message(m: &MessageEvent, status: Status) -> Frame {
    let body = m.encoded.message.get_or_init(|| {
        let without_status = convert::message_of(
            m.message.clone(),
            m.sender_username.clone(),
            "",
            m.quote.clone(),
            Vec::new(),
        );
        Bytes::from(without_status.encode_to_vec())
    });
    Frame::parts(body.clone(), MESSAGE_STATUS[status.index()])
}

/// The message as a `ChatMessage` (SubscribeToChat's item).
pub fn chat_message(m: &MessageEvent, status: Status) -> Frame {
    let body = m.encoded.chat_message.get_or_init(|| {
        let without_status =
            convert::chat_message_of(m.message.clone(), m.sender_username.clone(), "");
        Bytes::from(without_status.encode_to_vec())
    });
    Frame::parts(body.clone(), CHAT_MESSAGE_STATUS[status.index()])
}

/// A user-stream item (`Event`): a message from its shared encoding,
/// anything else encoded here.
pub fn user_frame(item: UserItem) -> Frame {
    match item {
        UserItem::Message { message, status } => {
            self::message(&message, status).wrap(EVENT_MESSAGE)
        }
        other => Frame::encode(&convert::user_item(other)),
    }
}

/// A user-stream item as the session's `ServerFrame.event`.
pub fn session_frame(item: UserItem) -> Frame {
    user_frame(item).wrap(SERVER_FRAME_EVENT)
}

/// A chat-stream item (`ChatMessage`), likewise.
pub fn chat_frame(item: StreamItem) -> Frame {
    match item {
        StreamItem::Message { message, status } => chat_message(&message, status),
        connected => Frame::encode(&convert::stream_item(connected)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::Message;
    use tidings_proto as proto;

    fn event(content: &str) -> MessageEvent {
        MessageEvent::stored(
            Message {
                id: "0192e3a0-0000-7000-8000-000000000001".into(),
                chat_id: "0192e3a0-0000-7000-8000-000000000002".into(),
                seq: 300,
                sender_id: "0192e3a0-0000-7000-8000-000000000003".into(),
                content: content.into(),
                created_at: 1_700_000_000_123_456,
                ..Default::default()
            },
            "ada".into(),
            None,
        )
    }

    const STATUSES: [Status; 3] = [Status::Sent, Status::Delivered, Status::Read];

    /// The frame is as long as prost's encoding of `expected` and decodes to it.
    fn assert_decodes_to<M: prost::Message + Default + PartialEq + std::fmt::Debug>(
        frame: &Frame,
        expected: &M,
    ) {
        let bytes = frame.to_vec();
        assert_eq!(bytes.len(), frame.len());
        assert_eq!(bytes.len(), expected.encoded_len());
        assert_eq!(&M::decode(&bytes[..]).unwrap(), expected);
    }

    #[test]
    fn user_stream_frames_decode_to_what_prost_would_send() {
        // Long enough content that the lengths take two-byte varints.
        for content in ["hi", &"é".repeat(3000)] {
            let m = Arc::new(event(content));
            for status in STATUSES {
                let item = UserItem::Message {
                    message: m.clone(),
                    status,
                };
                let expected = convert::user_item(item.clone());
                assert_decodes_to(&user_frame(item.clone()), &expected);
                let session = proto::ServerFrame {
                    kind: Some(proto::server_frame::Kind::Event(expected)),
                };
                assert_decodes_to(&session_frame(item), &session);
            }
        }
    }

    #[test]
    fn chat_stream_frames_decode_to_what_prost_would_send() {
        let m = Arc::new(event("hello"));
        for status in STATUSES {
            let item = StreamItem::Message {
                message: m.clone(),
                status,
            };
            assert_decodes_to(&chat_frame(item.clone()), &convert::stream_item(item));
        }
    }

    #[test]
    fn the_shared_part_is_encoded_once() {
        let m = event("once");
        let a = message(&m, Status::Sent);
        let b = message(&m, Status::Read);
        // The same allocation, not an equal copy.
        assert_eq!(a.body().as_ptr(), b.body().as_ptr());
        let c = chat_message(&m, Status::Sent);
        assert_ne!(a.body().as_ptr(), c.body().as_ptr());
        assert_eq!(
            c.body().as_ptr(),
            chat_message(&m, Status::Delivered).body().as_ptr()
        );
    }
}
