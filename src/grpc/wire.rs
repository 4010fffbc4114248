//! Stream items as pre-encoded protobuf, so a message delivered to many
//! streams is encoded once, not once per stream.
//!
//! A [`Frame`] is one response message of a stream, already in protobuf wire
//! form, in three parts written back to back:
//! - `head`: the tags and lengths of the messages that enclose the body
//!   (`Event.message`, `ServerFrame.event`), a few bytes made per frame;
//! - `body`: the shared bytes, cached on the [`MessageEvent`] the first time a
//!   stream delivers it (the message without its `status` field);
//! - `tail`: the `status` field, one of three static byte strings, since each
//!   stream decides the status on its own.
//!
//! Protobuf parsers must accept fields in any order, so "every field but
//! `status`, then `status`" decodes to the same message as prost's own
//! encoding (which orders fields by number); the tests decode every form
//! with prost and compare it with the message prost would have sent.
//!
//! [`FrameCodec`] writes frames as they are and decodes requests with prost.
//! The streaming methods are served through it (see `build.rs`: the
//! `MessagesService` and `EventsService` servers are generated with this
//! codec on their streaming methods and prost's on the rest).

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

use super::convert::timestamp_micros;
use crate::messages::Status as MessageStatus;
use crate::proto;
use crate::realtime::MessageEvent;

/// Room for the enclosing tags and lengths: two levels of one-byte tags and
/// five-byte lengths.
const HEAD: usize = 12;

/// One stream response message in wire form (see the module docs).
#[derive(Clone, Debug)]
pub struct Frame {
    head: [u8; HEAD],
    /// `head[head_at..]` is in use: heads are built back to front.
    head_at: u8,
    body: Bytes,
    tail: &'static [u8],
}

impl Frame {
    /// A whole message, encoded by prost (for the rarer items).
    pub fn encode(message: &impl prost::Message) -> Frame {
        Frame::parts(Bytes::from(message.encode_to_vec()), &[])
    }

    fn parts(body: Bytes, tail: &'static [u8]) -> Frame {
        Frame {
            head: [0; HEAD],
            head_at: HEAD as u8,
            body,
            tail,
        }
    }

    /// The encoded length.
    pub fn len(&self) -> usize {
        (HEAD - self.head_at as usize) + self.body.len() + self.tail.len()
    }

    /// Whether the frame encodes an empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This frame as field `tag` (a message field) of an enclosing message
    /// that has no other field set, as for a `oneof` case.
    pub fn wrap(mut self, tag: u32) -> Frame {
        let len = self.len() as u64;
        let mut key = Vec::with_capacity(HEAD);
        encode_key(tag, WireType::LengthDelimited, &mut key);
        encode_varint(len, &mut key);
        let at = self.head_at as usize;
        assert!(key.len() <= at, "frame nested too deep for its head");
        self.head[at - key.len()..at].copy_from_slice(&key);
        self.head_at = (at - key.len()) as u8;
        self
    }

    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.head[self.head_at as usize..]);
        buf.put_slice(&self.body);
        buf.put_slice(self.tail);
    }

    #[cfg(test)]
    fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.write(&mut v);
        v
    }
}

/// `Message.status` (field 6) with each status's text, pre-encoded.
const MESSAGE_STATUS: [&[u8]; 3] = [b"\x32\x04SENT", b"\x32\x09DELIVERED", b"\x32\x04READ"];
/// `ChatMessage.status` (field 7), likewise.
const CHAT_MESSAGE_STATUS: [&[u8]; 3] = [b"\x3a\x04SENT", b"\x3a\x09DELIVERED", b"\x3a\x04READ"];

fn status_index(status: MessageStatus) -> usize {
    match status {
        MessageStatus::Sent => 0,
        MessageStatus::Delivered => 1,
        MessageStatus::Read => 2,
    }
}

/// The message as a `proto::Message` (the user stream's `Event.message`).
/// The shared part is encoded on the first call for this event.
pub fn message(m: &MessageEvent, status: MessageStatus) -> Frame {
    let body = m.encoded.message.get_or_init(|| {
        let without_status = proto::Message {
            id: m.id.clone(),
            chat_id: m.chat_id.clone(),
            user_id: m.sender_id.clone(),
            content: m.content.clone(),
            sent_at: Some(timestamp_micros(m.created_at)),
            status: String::new(),
            seq: m.seq,
            username: m.sender_username.clone(),
        };
        Bytes::from(without_status.encode_to_vec())
    });
    Frame::parts(body.clone(), MESSAGE_STATUS[status_index(status)])
}

/// The message as a `proto::ChatMessage` (SubscribeToChat's item).
pub fn chat_message(m: &MessageEvent, status: MessageStatus) -> Frame {
    let body = m.encoded.chat_message.get_or_init(|| {
        let without_status = proto::ChatMessage {
            message_id: m.id.clone(),
            chat_id: m.chat_id.clone(),
            user_id: m.sender_id.clone(),
            username: m.sender_username.clone(),
            content: m.content.clone(),
            sent_at: Some(timestamp_micros(m.created_at)),
            status: String::new(),
            seq: m.seq,
        };
        Bytes::from(without_status.encode_to_vec())
    });
    Frame::parts(body.clone(), CHAT_MESSAGE_STATUS[status_index(status)])
}

/// Field numbers of the enclosing messages (see `proto/messaging.proto`).
pub const EVENT_MESSAGE: u32 = 2;
pub const SERVER_FRAME_EVENT: u32 = 1;

/// Encodes [`Frame`]s as they are; decodes requests (`D`) with prost.
pub struct FrameCodec<D>(PhantomData<D>);

impl<D> Default for FrameCodec<D> {
    fn default() -> Self {
        FrameCodec(PhantomData)
    }
}

impl<D> Codec for FrameCodec<D>
where
    D: prost::Message + Default + Send + 'static,
{
    type Encode = Frame;
    type Decode = D;
    type Encoder = FrameEncoder;
    type Decoder = ProstDecoder<D>;

    fn encoder(&mut self) -> FrameEncoder {
        FrameEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<D> {
        ProstDecoder::new(BufferSettings::default())
    }
}

pub struct FrameEncoder;

/// The encode buffer each stream allocates up front (tonic's default is
/// 8 KiB). Most frames are a few hundred bytes, and idle streams are most
/// streams: a small start keeps an idle stream small; the buffer grows in
/// these steps for a larger frame.
const BUFFER: usize = 512;

impl Encoder for FrameEncoder {
    type Item = Frame;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        // 32 KiB: tonic's default yield threshold.
        BufferSettings::new(BUFFER, 32 * 1024)
    }

    fn encode(&mut self, frame: Frame, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(frame.len());
        frame.write(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::event::Encoded;

    fn event(content: &str) -> MessageEvent {
        MessageEvent {
            id: "0192e3a0-0000-7000-8000-000000000001".into(),
            chat_id: "0192e3a0-0000-7000-8000-000000000002".into(),
            seq: 300,
            sender_id: "0192e3a0-0000-7000-8000-000000000003".into(),
            sender_username: "ada".into(),
            content: content.into(),
            created_at: 1_700_000_000_123_456,
            encoded: Encoded::default(),
        }
    }

    const STATUSES: [MessageStatus; 3] = [
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
    ];

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
            let m = event(content);
            for status in STATUSES {
                let frame = message(&m, status).wrap(EVENT_MESSAGE);
                let expected = proto::Event {
                    kind: Some(proto::event::Kind::Message(
                        super::super::convert::message_event(m.clone(), status),
                    )),
                };
                assert_decodes_to(&frame, &expected);
                let session = proto::ServerFrame {
                    kind: Some(proto::server_frame::Kind::Event(expected)),
                };
                assert_decodes_to(&frame.wrap(SERVER_FRAME_EVENT), &session);
            }
        }
    }

    #[test]
    fn chat_stream_frames_decode_to_what_prost_would_send() {
        let m = event("hello");
        for status in STATUSES {
            let frame = chat_message(&m, status);
            let expected =
                super::super::convert::stream_item(crate::messages::StreamItem::Message {
                    message: std::sync::Arc::new(m.clone()),
                    status,
                });
            assert_decodes_to(&frame, &expected);
        }
    }

    #[test]
    fn the_shared_part_is_encoded_once() {
        let m = event("once");
        let a = message(&m, MessageStatus::Sent);
        let b = message(&m, MessageStatus::Read);
        // The same allocation, not an equal copy.
        assert_eq!(a.body.as_ptr(), b.body.as_ptr());
        let c = chat_message(&m, MessageStatus::Sent);
        assert_ne!(a.body.as_ptr(), c.body.as_ptr());
        assert_eq!(
            c.body.as_ptr(),
            chat_message(&m, MessageStatus::Delivered).body.as_ptr()
        );
    }

    #[test]
    fn whole_messages_encode_as_prost_does() {
        let beat = proto::Event {
            kind: Some(proto::event::Kind::Heartbeat(proto::Heartbeat {
                server_time: Some(timestamp_micros(5)),
            })),
        };
        assert_eq!(Frame::encode(&beat).to_vec(), beat.encode_to_vec());
        assert!(Frame::encode(&proto::Event::default()).is_empty());
    }
}
