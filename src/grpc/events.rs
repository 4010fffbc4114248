//! EventsService: the per-user stream, and the bidirectional session for
//! native clients (the same events, plus send / typing / mark-read in-band).

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use tidings_proto::wire::Frame;
use tidings_proto::{self as proto, streaming::events_service_server::EventsService};

use super::auth::{Authenticator, Caller};
use super::{convert, wire};
use crate::domain::AppError;
use crate::limits::Limits;
use crate::services::messages::MessageService;
use crate::streams::{Streams, UserStream};

pub struct Events {
    pub messages: MessageService,
    pub streams: Streams,
    pub auth: Authenticator,
    pub limits: Limits,
}

/// `Event`s and `ServerFrame`s, pre-encoded (see [`super::wire`]).
type EventStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;
type FrameStream = EventStream;

impl Events {
    async fn open(
        &self,
        caller: &Caller,
        cursors: Vec<proto::ChatCursor>,
    ) -> Result<UserStream, AppError> {
        let cursors = cursors
            .into_iter()
            .map(|c| (c.chat_id, c.after_seq, c.after_change))
            .collect();
        self.streams
            .user(&caller.user_id, cursors, self.auth.grant(caller))
            .await
    }
}

#[tonic::async_trait]
impl EventsService for Events {
    type SubscribeStream = EventStream;

    #[tracing::instrument(skip_all, fields(rpc = "Subscribe", user_id = tracing::field::Empty))]
    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = self.auth.caller(&request).await?;
        let slot = self.limits.open_stream(&caller.user_id)?;
        let rx = self.open(&caller, request.into_inner().cursors).await?;
        let stream = ReceiverStream::new(rx).map(move |item| {
            // The slot lives as long as the response stream.
            let _ = &slot;
            item.map(wire::user_frame).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type SessionStream = FrameStream;

    #[tracing::instrument(skip_all, fields(rpc = "Session", user_id = tracing::field::Empty))]
    async fn session(
        &self,
        request: Request<Streaming<proto::ClientFrame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let caller = self.auth.caller(&request).await?;
        let slot = self.limits.open_stream(&caller.user_id)?;
        let mut inbound = request.into_inner();

        // Events start after the first frame: a `subscribe` (with the
        // client's cursors) or anything else (live from now).
        let first = match inbound.message().await? {
            Some(frame) => frame,
            None => {
                return Err(Status::invalid_argument(
                    "kind: send a first frame, e.g. subscribe",
                ));
            }
        };
        let (cursors, pending) = match first.kind {
            Some(proto::client_frame::Kind::Subscribe(s)) => (s.cursors, None),
            _ => (Vec::new(), Some(first)),
        };
        let mut events = self.open(&caller, cursors).await?;
        let (tx, rx) = mpsc::channel::<Result<Frame, Status>>(128);

        let (messages, limits) = (self.messages.clone(), self.limits.clone());
        tokio::spawn(async move {
            if let Some(frame) = pending {
                let reply = handle_frame(&messages, &limits, &caller, frame).await;
                if tx.send(Ok(Frame::encode(&reply))).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    event = events.recv() => {
                        let frame = match event {
                            Some(Ok(item)) => Ok(wire::session_frame(item)),
                            Some(Err(e)) => Err(Status::from(e)),
                            None => return,
                        };
                        let end = frame.is_err();
                        if tx.send(frame).await.is_err() || end {
                            return;
                        }
                    }
                    frame = inbound.message() => match frame {
                        Ok(Some(frame)) => {
                            let reply = handle_frame(&messages, &limits, &caller, frame).await;
                            if tx.send(Ok(Frame::encode(&reply))).await.is_err() {
                                return;
                            }
                        }
                        // The client closed its side: keep delivering events
                        // until it goes away entirely.
                        Ok(None) => {
                            while let Some(item) = events.recv().await {
                                let frame = item.map(wire::session_frame).map_err(Status::from);
                                let end = frame.is_err();
                                if tx.send(frame).await.is_err() || end {
                                    return;
                                }
                            }
                            return;
                        }
                        Err(_) => return,
                    },
                }
            }
        });
        let frames = ReceiverStream::new(rx).map(move |frame| {
            // The slot lives as long as the response stream.
            let _ = &slot;
            frame
        });
        Ok(Response::new(Box::pin(frames)))
    }
}

/// Carries out one client frame; the answer is an ack or an error frame,
/// never the end of the session.
async fn handle_frame(
    messages: &MessageService,
    limits: &Limits,
    caller: &Caller,
    frame: proto::ClientFrame,
) -> proto::ServerFrame {
    use proto::client_frame::Kind;
    use proto::server_frame::Kind as Out;
    let r#ref = frame.r#ref;
    let result: Result<Option<proto::Message>, AppError> = match frame.kind {
        Some(Kind::Send(s)) => match limits.send(&caller.user_id) {
            Ok(()) => messages
                .send(
                    &caller.user_id,
                    &s.chat_id,
                    s.content,
                    s.idempotency_key,
                    &s.reply_to_id,
                    &s.attachment_ids,
                )
                .await
                .map(|m| Some(convert::message(m))),
            Err(limited) => Err(limited.into()),
        },
        Some(Kind::Typing(t)) => match limits.typing(&caller.user_id) {
            Ok(()) => messages
                .typing(&caller.user_id, &t.chat_id, t.typing)
                .await
                .map(|()| None),
            Err(limited) => Err(limited.into()),
        },
        Some(Kind::MarkRead(m)) => messages
            .mark_read(&caller.user_id, &m.chat_id, m.seq)
            .await
            .map(|_| None),
        Some(Kind::Subscribe(_)) => Err(AppError::FailedPrecondition(
            "kind: subscribe is only valid as the first frame".into(),
        )),
        None => Err(AppError::invalid("kind", "is required")),
    };
    let kind = match result {
        Ok(message) => Out::Ack(proto::Ack { r#ref, message }),
        Err(e) => {
            let status = Status::from(e);
            Out::Error(proto::FrameError {
                r#ref,
                code: status.code() as i32,
                message: status.message().to_owned(),
            })
        }
    };
    proto::ServerFrame { kind: Some(kind) }
}
