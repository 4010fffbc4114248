//! Thin tonic services: authenticate, parse the request, call the domain
//! service, map the result. No business logic lives here.

pub mod chats;
pub mod convert;
pub mod events;
pub mod messages;
pub mod users;

use crate::app::AppState;
use crate::auth::{Caller, authenticate};
use crate::error::AppError;

impl AppState {
    /// The one authenticator every authenticated RPC calls.
    pub(crate) fn caller<T>(&self, request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
        authenticate(&self.tokens, request).map_err(tonic::Status::from)
    }
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
