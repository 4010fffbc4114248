use tidings_proto::{self as proto, users_service_server::UsersService};
use tonic::{Request, Response, Status};

use super::auth::Authenticator;
use super::convert;
use super::status::reply;
use crate::domain::parse_id;
use crate::limits::Limits;
use crate::services::blocks::{BlockService, BlockedUser};
use crate::services::users::UserService;

pub struct Users {
    pub users: UserService,
    pub blocks: BlockService,
    pub auth: Authenticator,
    pub limits: Limits,
}

#[tonic::async_trait]
impl UsersService for Users {
    #[tracing::instrument(skip_all, fields(rpc = "CreateUser"))]
    async fn create_user(
        &self,
        request: Request<proto::CreateUserRequest>,
    ) -> Result<Response<proto::CreateUserResponse>, Status> {
        self.limits.auth(self.auth.client_ip(&request))?;
        let r = request.into_inner();
        let result = self
            .users
            .register(&r.username, &r.email, &r.password)
            .await;
        reply(result, |s| proto::CreateUserResponse {
            user: Some(convert::user(s.user)),
            token: s.token,
            expires_at: Some(convert::timestamp(s.expires_at)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "Login"))]
    async fn login(
        &self,
        request: Request<proto::LoginRequest>,
    ) -> Result<Response<proto::LoginResponse>, Status> {
        self.limits.auth(self.auth.client_ip(&request))?;
        let r = request.into_inner();
        let result = self.users.login(&r.email, &r.password).await;
        reply(result, |s| proto::LoginResponse {
            user: Some(convert::user(s.user)),
            token: s.token,
            expires_at: Some(convert::timestamp(s.expires_at)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetUser", user_id = tracing::field::Empty))]
    async fn get_user(
        &self,
        request: Request<proto::GetUserRequest>,
    ) -> Result<Response<proto::GetUserResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = match parse_id("user_id", &r.user_id) {
            Ok(id) => self.users.get(&caller.user_id, &id).await,
            Err(e) => Err(e),
        };
        reply(result, |u| proto::GetUserResponse {
            user: Some(convert::user(u)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetMe", user_id = tracing::field::Empty))]
    async fn get_me(
        &self,
        request: Request<proto::GetMeRequest>,
    ) -> Result<Response<proto::GetMeResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let result = self.users.me(&caller.user_id).await;
        reply(result, |u| proto::GetMeResponse {
            user: Some(convert::user(u)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "RefreshToken", user_id = tracing::field::Empty))]
    async fn refresh_token(
        &self,
        request: Request<proto::RefreshTokenRequest>,
    ) -> Result<Response<proto::RefreshTokenResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let result = self.users.refresh(&caller.user_id).await;
        reply(result, |s| proto::RefreshTokenResponse {
            token: s.token,
            expires_at: Some(convert::timestamp(s.expires_at)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "ChangePassword", user_id = tracing::field::Empty))]
    async fn change_password(
        &self,
        request: Request<proto::ChangePasswordRequest>,
    ) -> Result<Response<proto::ChangePasswordResponse>, Status> {
        // A password check, so the same budget as Login.
        self.limits.auth(self.auth.client_ip(&request))?;
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = self
            .users
            .change_password(&caller.user_id, &r.old_password, &r.new_password)
            .await;
        if result.is_ok() {
            self.auth.forget(&caller.user_id);
        }
        reply(result, |s| proto::ChangePasswordResponse {
            token: s.token,
            expires_at: Some(convert::timestamp(s.expires_at)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "LogoutEverywhere", user_id = tracing::field::Empty))]
    async fn logout_everywhere(
        &self,
        request: Request<proto::LogoutEverywhereRequest>,
    ) -> Result<Response<proto::LogoutEverywhereResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let result = self.users.logout_everywhere(&caller.user_id).await;
        if result.is_ok() {
            self.auth.forget(&caller.user_id);
        }
        reply(result, |s| proto::LogoutEverywhereResponse {
            token: s.token,
            expires_at: Some(convert::timestamp(s.expires_at)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "BlockUser"))]
    async fn block_user(
        &self,
        request: Request<proto::BlockUserRequest>,
    ) -> Result<Response<proto::BlockUserResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let result = self
            .blocks
            .block(&caller.user_id, &request.get_ref().user_id)
            .await;
        reply(result, |b| proto::BlockUserResponse {
            blocked: Some(blocked_user(b)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "UnblockUser"))]
    async fn unblock_user(
        &self,
        request: Request<proto::UnblockUserRequest>,
    ) -> Result<Response<proto::UnblockUserResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let result = self
            .blocks
            .unblock(&caller.user_id, &request.get_ref().user_id)
            .await;
        reply(result, |()| proto::UnblockUserResponse {})
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListBlocked"))]
    async fn list_blocked(
        &self,
        request: Request<proto::ListBlockedRequest>,
    ) -> Result<Response<proto::ListBlockedResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let result = self.blocks.list(&caller.user_id).await;
        reply(result, |list| proto::ListBlockedResponse {
            users: list.into_iter().map(blocked_user).collect(),
        })
    }
}

fn blocked_user(b: BlockedUser) -> proto::BlockedUser {
    proto::BlockedUser {
        user_id: b.user.id,
        username: b.user.username,
        blocked_at: Some(convert::timestamp_micros(b.at)),
    }
}
