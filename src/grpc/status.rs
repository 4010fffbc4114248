//! Domain errors and limit refusals as gRPC statuses, with the standard
//! error details (`google.rpc`, through tonic-types) that gRPC clients read:
//! a validation error carries a `BadRequest` naming the field, a rate limit
//! a `RetryInfo` with the real delay. The message text stays as it is, for
//! people and for clients that read only the text.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::domain::AppError;
use crate::limits::{Limited, RETRY_AFTER};

impl From<AppError> for Status {
    fn from(err: AppError) -> Self {
        match &err {
            AppError::Invalid { field, message } => Status::with_error_details(
                Code::InvalidArgument,
                err.to_string(),
                ErrorDetails::with_bad_request_violation(*field, message.clone()),
            ),
            AppError::Unauthenticated(_) => Status::new(Code::Unauthenticated, err.to_string()),
            AppError::NotFound(_) => Status::new(Code::NotFound, err.to_string()),
            AppError::NotFoundAt {
                field, description, ..
            } => Status::with_error_details(
                Code::NotFound,
                err.to_string(),
                ErrorDetails::with_bad_request_violation(field.clone(), *description),
            ),
            AppError::PermissionDenied(_) => Status::new(Code::PermissionDenied, err.to_string()),
            AppError::Refused { field, message } => Status::with_error_details(
                Code::PermissionDenied,
                err.to_string(),
                ErrorDetails::with_bad_request_violation(*field, message.clone()),
            ),
            AppError::AlreadyExists { .. } => Status::new(Code::AlreadyExists, err.to_string()),
            AppError::FailedPrecondition(_) => {
                Status::new(Code::FailedPrecondition, err.to_string())
            }
            AppError::ResourceExhausted(_) => Status::new(Code::ResourceExhausted, err.to_string()),
            AppError::Unavailable(source) => {
                tracing::warn!(error = %format!("{source:#}"), "storage unavailable");
                Status::new(Code::Unavailable, err.to_string())
            }
            AppError::Internal(source) => {
                tracing::error!(error = %format!("{source:#}"), "internal error");
                Status::new(Code::Internal, err.to_string())
            }
        }
    }
}

impl From<Limited> for Status {
    fn from(l: Limited) -> Self {
        let mut status = match l.retry_after {
            Some(wait) => Status::with_error_details(
                Code::ResourceExhausted,
                l.message,
                ErrorDetails::with_retry_info(Some(wait)),
            ),
            None => Status::resource_exhausted(l.message),
        };
        if let Some(wait) = l.retry_after
            && let Ok(v) = wait.as_millis().to_string().parse()
        {
            status.metadata_mut().insert(RETRY_AFTER, v);
        }
        status
    }
}

/// A domain result as a tonic response.
pub(crate) fn reply<T, U>(
    result: Result<T, AppError>,
    f: impl FnOnce(T) -> U,
) -> Result<tonic::Response<U>, Status> {
    result
        .map(|v| tonic::Response::new(f(v)))
        .map_err(Status::from)
}
