//! Stream items as pre-encoded protobuf, so a message delivered to many
//! streams is encoded once, not once per stream.
//!
//! A [`Frame`] is one response message of a stream, already in protobuf wire
//! form, in three parts written back to back:
//! - `head`: the tags and lengths of the messages that enclose the body
//!   (`Event.message`, `ServerFrame.event`), a few bytes made per frame;
//! - `body`: shared bytes (the server caches the encoding of a message,
//!   without its `status` field, the first time a stream delivers it);
//! - `tail`: a few more static bytes (the `status` field: one of three
//!   pre-encoded strings, since each stream decides the status on its own).
//!
//! Protobuf parsers must accept fields in any order, so "every field but
//! `status`, then `status`" decodes to the same message as prost's own
//! encoding (which orders fields by number); the server's tests decode every
//! form with prost and compare it with the message prost would have sent.
//!
//! [`FrameCodec`] writes frames as they are and decodes requests with prost.
//! The streaming methods are served through it (see `build.rs`: the servers
//! in [`crate::streaming`] use this codec on their streaming methods and
//! prost's on the rest).

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use prost::encoding::{WireType, encode_key, encode_varint};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

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

    /// A message made of `body` (encoded fields, shared) followed by `tail`
    /// (more encoded fields).
    pub fn parts(body: Bytes, tail: &'static [u8]) -> Frame {
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

    /// The shared part (tests compare its address to see it was shared).
    pub fn body(&self) -> &Bytes {
        &self.body
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

    /// The frame's bytes, as the codec writes them.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.write(&mut v);
        v
    }
}

/// `Message.status` (field 6) pre-encoded, for SENT, DELIVERED and READ in
/// that order.
pub const MESSAGE_STATUS: [&[u8]; 3] = [b"\x32\x04SENT", b"\x32\x09DELIVERED", b"\x32\x04READ"];
/// `ChatMessage.status` (field 7), likewise.
pub const CHAT_MESSAGE_STATUS: [&[u8]; 3] =
    [b"\x3a\x04SENT", b"\x3a\x09DELIVERED", b"\x3a\x04READ"];

/// `Event.message`: the field number of the message case of an `Event`.
pub const EVENT_MESSAGE: u32 = 2;
/// `ServerFrame.event`: the field number of the event case of a `ServerFrame`.
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
    use prost::Message as _;

    #[test]
    fn whole_messages_encode_as_prost_does() {
        let beat = crate::Event {
            kind: Some(crate::event::Kind::Heartbeat(crate::Heartbeat {
                server_time: Some(prost_types::Timestamp {
                    seconds: 5,
                    nanos: 0,
                }),
            })),
        };
        assert_eq!(Frame::encode(&beat).to_vec(), beat.encode_to_vec());
        assert!(Frame::encode(&crate::Event::default()).is_empty());
    }

    #[test]
    fn a_wrapped_frame_is_the_enclosing_message() {
        let receipt = crate::Event {
            kind: Some(crate::event::Kind::Receipt(crate::Receipt {
                chat_id: "c".repeat(200),
                ..Default::default()
            })),
        };
        let session = crate::ServerFrame {
            kind: Some(crate::server_frame::Kind::Event(receipt.clone())),
        };
        let frame = Frame::encode(&receipt).wrap(SERVER_FRAME_EVENT);
        assert_eq!(frame.len(), session.encoded_len());
        assert_eq!(
            crate::ServerFrame::decode(&frame.to_vec()[..]).unwrap(),
            session
        );
    }

    #[test]
    fn status_tails_are_the_status_fields() {
        for (i, text) in ["SENT", "DELIVERED", "READ"].into_iter().enumerate() {
            let m = crate::Message {
                status: text.into(),
                ..Default::default()
            };
            assert_eq!(m.encode_to_vec(), MESSAGE_STATUS[i]);
            let c = crate::ChatMessage {
                status: text.into(),
                ..Default::default()
            };
            assert_eq!(c.encode_to_vec(), CHAT_MESSAGE_STATUS[i]);
        }
    }
}
