use std::pin::Pin;

use futures::Stream;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use tidings_proto::wire::Frame;
use tidings_proto::{self as proto, streaming::messages_service_server::MessagesService};

use super::auth::Authenticator;
use super::status::reply;
use super::{convert, wire};
use crate::limits::Limits;
use crate::services::messages::MessageService;
use crate::streams::Streams;

pub struct Messages {
    pub messages: MessageService,
    pub streams: Streams,
    pub auth: Authenticator,
    pub limits: Limits,
}

/// `ChatMessage`s, pre-encoded (see [`super::wire`]).
type ChatMessageStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

#[tonic::async_trait]
impl MessagesService for Messages {
    #[tracing::instrument(skip_all, fields(rpc = "SearchMessages", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn search_messages(
        &self,
        request: Request<proto::SearchMessagesRequest>,
    ) -> Result<Response<proto::SearchMessagesResponse>, Status> {
        use crate::domain::AppError;
        use crate::services::messages::search::SearchRequest;
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        // A Timestamp as microseconds; out of range or with nanos outside
        // 0..1e9 it is no time at all.
        let micros = |field: &'static str, t: Option<prost_types::Timestamp>| match t {
            None => Ok(None),
            Some(t) => t
                .seconds
                .checked_mul(1_000_000)
                .and_then(|s| s.checked_add(i64::from(t.nanos / 1000)))
                .filter(|_| (0..1_000_000_000).contains(&t.nanos))
                .map(Some)
                .ok_or_else(|| Status::from(AppError::invalid(field, "is not a valid time"))),
        };
        let request = SearchRequest {
            before: micros("before", r.before)?,
            after: micros("after", r.after)?,
            query: r.query,
            chat_id: r.chat_id,
            limit: r.limit,
            cursor: r.cursor,
            best_first: r.best_first,
        };
        let result = self.messages.search(&caller.user_id, request).await;
        reply(result, |page| proto::SearchMessagesResponse {
            hits: page.hits.into_iter().map(convert::search_hit).collect(),
            next_cursor: page.next_cursor,
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "SendMessage", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn send_message(
        &self,
        request: Request<proto::SendMessageRequest>,
    ) -> Result<Response<proto::SendMessageResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        self.limits.send(&caller.user_id)?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let result = self
            .messages
            .send(
                &caller.user_id,
                &r.chat_id,
                r.content,
                r.idempotency_key,
                &r.reply_to_id,
                &r.attachment_ids,
            )
            .await;
        reply(result, |m| proto::SendMessageResponse {
            message: Some(convert::message(m)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListMessages", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn list_messages(
        &self,
        request: Request<proto::ListMessagesRequest>,
    ) -> Result<Response<proto::ListMessagesResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let result = self
            .messages
            .list(
                &caller.user_id,
                &r.chat_id,
                r.page,
                r.limit,
                r.before_seq,
                r.after_seq,
            )
            .await;
        reply(result, |(messages, total)| proto::ListMessagesResponse {
            messages: messages.into_iter().map(convert::message).collect(),
            total: total.clamp(0, i64::from(i32::MAX)) as i32,
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpdateMessageStatus", user_id = tracing::field::Empty))]
    async fn update_message_status(
        &self,
        request: Request<proto::UpdateMessageStatusRequest>,
    ) -> Result<Response<proto::UpdateMessageStatusResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = self
            .messages
            .update_status(&caller.user_id, &r.message_id, &r.status)
            .await;
        reply(result, |status| proto::UpdateMessageStatusResponse {
            message_id: r.message_id,
            status: status.as_str().to_owned(),
        })
    }

    type SubscribeToChatStream = ChatMessageStream;

    #[tracing::instrument(skip_all, fields(rpc = "SubscribeToChat", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn subscribe_to_chat(
        &self,
        request: Request<proto::SubscribeToChatRequest>,
    ) -> Result<Response<Self::SubscribeToChatStream>, Status> {
        let caller = self.auth.caller(&request).await?;
        let slot = self.limits.open_stream(&caller.user_id)?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let rx = self
            .streams
            .chat(
                &caller.user_id,
                &r.chat_id,
                r.after_seq,
                self.auth.grant(&caller),
            )
            .await?;
        let stream = ReceiverStream::new(rx).map(move |item| {
            // The slot lives as long as the response stream.
            let _ = &slot;
            item.map(wire::chat_frame).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(skip_all, fields(rpc = "MarkRead", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn mark_read(
        &self,
        request: Request<proto::MarkReadRequest>,
    ) -> Result<Response<proto::MarkReadResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let result = self
            .messages
            .mark_read(&caller.user_id, &r.chat_id, r.seq)
            .await;
        reply(result, |(chat_id, read_seq, unread)| {
            proto::MarkReadResponse {
                chat_id,
                read_seq,
                unread_count: unread.clamp(0, i64::from(i32::MAX)) as i32,
            }
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "SendTyping", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn send_typing(
        &self,
        request: Request<proto::SendTypingRequest>,
    ) -> Result<Response<proto::SendTypingResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        self.limits.typing(&caller.user_id)?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let result = self
            .messages
            .typing(&caller.user_id, &r.chat_id, r.typing)
            .await;
        reply(result, |()| proto::SendTypingResponse {})
    }

    #[tracing::instrument(skip_all, fields(rpc = "EditMessage", user_id = tracing::field::Empty))]
    async fn edit_message(
        &self,
        request: Request<proto::EditMessageRequest>,
    ) -> Result<Response<proto::EditMessageResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = self
            .messages
            .edit(&caller.user_id, &r.message_id, r.content)
            .await;
        reply(result, |m| proto::EditMessageResponse {
            message: Some(convert::message(m)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "DeleteMessage", user_id = tracing::field::Empty))]
    async fn delete_message(
        &self,
        request: Request<proto::DeleteMessageRequest>,
    ) -> Result<Response<proto::DeleteMessageResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = self.messages.delete(&caller.user_id, &r.message_id).await;
        reply(result, |()| proto::DeleteMessageResponse {})
    }

    #[tracing::instrument(skip_all, fields(rpc = "AddReaction", user_id = tracing::field::Empty))]
    async fn add_reaction(
        &self,
        request: Request<proto::AddReactionRequest>,
    ) -> Result<Response<proto::ReactionsResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = self
            .messages
            .add_reaction(&caller.user_id, &r.message_id, &r.emoji)
            .await;
        reply(result, reactions)
    }

    #[tracing::instrument(skip_all, fields(rpc = "RemoveReaction", user_id = tracing::field::Empty))]
    async fn remove_reaction(
        &self,
        request: Request<proto::RemoveReactionRequest>,
    ) -> Result<Response<proto::ReactionsResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = self
            .messages
            .remove_reaction(&caller.user_id, &r.message_id, &r.emoji)
            .await;
        reply(result, reactions)
    }
}

fn reactions(
    (message_id, reactions): (String, Vec<crate::domain::Reactions>),
) -> proto::ReactionsResponse {
    proto::ReactionsResponse {
        message_id,
        reactions: reactions.into_iter().map(convert::reaction).collect(),
    }
}
