//! Thin tonic services: authenticate, parse the request, call the domain
//! service, map the result. No business logic lives here.

pub mod chats;
pub mod convert;
pub mod events;
pub mod messages;
pub mod users;
pub mod wire;

use crate::app::AppState;
use crate::auth::{Caller, authenticate};
use crate::error::AppError;

impl AppState {
    /// The one authenticator every authenticated RPC calls: a valid token
    /// whose user still exists (see [`crate::auth::KnownUsers`]). Records the
    /// caller on the RPC's span (each RPC declares a `user_id` field).
    pub(crate) async fn caller<T>(
        &self,
        request: &tonic::Request<T>,
    ) -> Result<Caller, tonic::Status> {
        let caller = authenticate(&self.tokens, request).map_err(tonic::Status::from)?;
        self.known_users
            .check(&caller.user_id)
            .await
            .map_err(tonic::Status::from)?;
        tracing::Span::current().record("user_id", caller.user_id.as_str());
        Ok(caller)
    }
}

/// Records the chat an RPC is about on its span.
pub(crate) fn record_chat(chat_id: &str) {
    tracing::Span::current().record("chat_id", chat_id);
}

/// Converts a domain result into a tonic response.
pub(crate) fn reply<T, U>(
    result: Result<T, AppError>,
    f: impl FnOnce(T) -> U,
) -> Result<tonic::Response<U>, tonic::Status> {
    result
        .map(|v| tonic::Response::new(f(v)))
        .map_err(tonic::Status::from)
}
