//! The one error type of the layers below the transport, and what each case
//! means for a client. The gRPC layer maps it to a status (`grpc::status`);
//! clients get a clear, stable message (validation errors name the field),
//! internal details go to the log only.

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
    /// NOT_FOUND for one entry of a list field: the message as for
    /// `NotFound(what)`, and a BadRequest naming the entry (`member_emails[2]`)
    /// so a client can point at it.
    #[error("{what} not found")]
    NotFoundAt {
        what: &'static str,
        field: String,
        description: &'static str,
    },
    /// A member may see it but not do this to it (someone else's message).
    #[error("{0}")]
    PermissionDenied(String),
    /// Not allowed because of what one of the request's fields names (a
    /// person who blocked the caller, say): PERMISSION_DENIED naming it.
    #[error("{field}: {message}")]
    Refused {
        field: &'static str,
        message: String,
    },
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

    /// The same validation error, about another field (a rule shared by
    /// two fields, such as a password's).
    pub fn for_field(self, field: &'static str) -> Self {
        match self {
            AppError::Invalid { message, .. } => AppError::Invalid { field, message },
            other => other,
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }
}

pub type AppResult<T> = Result<T, AppError>;
