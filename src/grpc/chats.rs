use tidings_proto::{self as proto, chats_service_server::ChatsService};
use tonic::{Request, Response, Status};

use super::auth::Authenticator;
use super::convert;
use super::status::reply;
use crate::limits::Limits;
use crate::services::chats::{ChatService, NewChat};

pub struct Chats {
    pub chats: ChatService,
    pub auth: Authenticator,
    pub limits: Limits,
}

#[tonic::async_trait]
impl ChatsService for Chats {
    #[tracing::instrument(skip_all, fields(rpc = "CreateChat", user_id = tracing::field::Empty))]
    async fn create_chat(
        &self,
        request: Request<proto::CreateChatRequest>,
    ) -> Result<Response<proto::CreateChatResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let emails = r.member_emails.len() + usize::from(!r.email.is_empty());
        self.limits.rooms(&caller.user_id, emails)?;
        let new = NewChat {
            name: r.name,
            email: r.email,
            member_emails: r.member_emails,
            member_ids: r.member_ids,
            is_group: r.is_group,
        };
        let result = self.chats.create(&caller.user_id, new).await;
        reply(result, |chat_id| proto::CreateChatResponse { chat_id })
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetChat", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn get_chat(
        &self,
        request: Request<proto::GetChatRequest>,
    ) -> Result<Response<proto::GetChatResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let result = self.chats.get(&caller.user_id, &r.chat_id).await;
        reply(result, |c| proto::GetChatResponse {
            chat: Some(convert::chat(c)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListChats", user_id = tracing::field::Empty))]
    async fn list_chats(
        &self,
        request: Request<proto::ListChatsRequest>,
    ) -> Result<Response<proto::ListChatsResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = self.chats.list(&caller.user_id, r.page, r.limit).await;
        reply(result, |(chats, total)| proto::ListChatsResponse {
            chats: chats.into_iter().map(convert::chat).collect(),
            total: total.clamp(0, i64::from(i32::MAX)) as i32,
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "AddMembers", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn add_members(
        &self,
        request: Request<proto::AddMembersRequest>,
    ) -> Result<Response<proto::AddMembersResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        self.limits.rooms(&caller.user_id, r.member_emails.len())?;
        let result = self
            .chats
            .add_members(&caller.user_id, &r.chat_id, &r.member_emails, &r.member_ids)
            .await;
        reply(result, |c| proto::AddMembersResponse {
            chat: Some(convert::chat(c)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "LeaveChat", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn leave_chat(
        &self,
        request: Request<proto::LeaveChatRequest>,
    ) -> Result<Response<proto::LeaveChatResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let result = self.chats.leave(&caller.user_id, &r.chat_id).await;
        reply(result, |()| proto::LeaveChatResponse {})
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpdateChat", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn update_chat(
        &self,
        request: Request<proto::UpdateChatRequest>,
    ) -> Result<Response<proto::UpdateChatResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let result = self
            .chats
            .rename(&caller.user_id, &r.chat_id, &r.name)
            .await;
        reply(result, |c| proto::UpdateChatResponse {
            chat: Some(convert::chat(c)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "RemoveMember", user_id = tracing::field::Empty, chat_id = tracing::field::Empty))]
    async fn remove_member(
        &self,
        request: Request<proto::RemoveMemberRequest>,
    ) -> Result<Response<proto::RemoveMemberResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        super::record_chat(&r.chat_id);
        let result = self
            .chats
            .remove_member(&caller.user_id, &r.chat_id, &r.user_id)
            .await;
        reply(result, |c| proto::RemoveMemberResponse {
            chat: Some(convert::chat(c)),
        })
    }
}
