use tonic::{Request, Response, Status};

use super::{convert, reply};
use crate::app::AppState;
use crate::proto::{self, users_service_server::UsersService};

pub struct Users(pub AppState);

#[tonic::async_trait]
impl UsersService for Users {
    #[tracing::instrument(skip_all, fields(rpc = "CreateUser"))]
    async fn create_user(
        &self,
        request: Request<proto::CreateUserRequest>,
    ) -> Result<Response<proto::CreateUserResponse>, Status> {
        self.0.limits.auth(&request)?;
        let r = request.into_inner();
        let result = self
            .0
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
        self.0.limits.auth(&request)?;
        let r = request.into_inner();
        let result = self.0.users.login(&r.email, &r.password).await;
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
        self.0.caller(&request).await?;
        let r = request.into_inner();
        let id = crate::chats::parse_id("user_id", &r.user_id);
        let result = match id {
            Ok(id) => self.0.users.get(&id).await,
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
        let caller = self.0.caller(&request).await?;
        let result = self.0.users.me(&caller.user_id).await;
        reply(result, |u| proto::GetMeResponse {
            user: Some(convert::user(u)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "RefreshToken", user_id = tracing::field::Empty))]
    async fn refresh_token(
        &self,
        request: Request<proto::RefreshTokenRequest>,
    ) -> Result<Response<proto::RefreshTokenResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let result = self.0.users.refresh(&caller.user_id).await;
        reply(result, |s| proto::RefreshTokenResponse {
            token: s.token,
            expires_at: Some(convert::timestamp(s.expires_at)),
        })
    }
}
