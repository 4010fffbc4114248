//! The one error type of the domain layer, and how it reaches clients.
//!
//! Clients get a clear, stable message (validation errors name the field);
//! internal details go to the log only.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input. `field` leads the message so clients know what to fix.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    /// Also used for "exists but you may not see it" (membership).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{field}: {message}")]
    AlreadyExists {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("service unavailable, try again")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => AppError::Unavailable(e.into()),
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<AppError> for tonic::Status {
    fn from(err: AppError) -> Self {
        use tonic::{Code, Status};
        match &err {
            AppError::Invalid { .. } => Status::new(Code::InvalidArgument, err.to_string()),
            AppError::Unauthenticated(_) => Status::new(Code::Unauthenticated, err.to_string()),
            AppError::NotFound(_) => Status::new(Code::NotFound, err.to_string()),
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

pub type AppResult<T> = Result<T, AppError>;
