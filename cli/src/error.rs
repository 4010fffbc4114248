//! The failures that decide an exit code. Everything else is an
//! `anyhow::Error` with context and exits with 1.

use std::error::Error as _;

use tonic::{Code, Status};

/// Exit code for a failure not listed below.
pub const EXIT_FAILURE: u8 = 1;
/// Not logged in, or the server refused the token: log in again.
pub const EXIT_AUTH: u8 = 3;
/// The server could not be reached.
pub const EXIT_UNREACHABLE: u8 = 4;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("not logged in; run `tidings-chat login --email EMAIL` (or `register`) first")]
    NotLoggedIn,
    #[error("the saved session of {username} has expired; log in again")]
    SessionExpired { username: String },
    /// The server answered with an error status; `message` is its own words.
    #[error("{message} ({})", code_name(*code))]
    Server { code: Code, message: String },
    /// The call never got an answer: connection refused, reset, timed out.
    #[error("cannot reach the server: {detail}")]
    Unreachable { code: Code, detail: String },
}

impl CliError {
    pub fn code(&self) -> Option<Code> {
        match self {
            CliError::NotLoggedIn | CliError::SessionExpired { .. } => None,
            CliError::Server { code, .. } | CliError::Unreachable { code, .. } => Some(*code),
        }
    }
}

impl From<Status> for CliError {
    /// A status that carries a source error was made on this side from a
    /// transport failure; one without came from the server.
    fn from(status: Status) -> CliError {
        match status.source() {
            Some(source) => {
                let mut detail = status.message().to_owned();
                let mut next: Option<&dyn std::error::Error> = Some(source);
                while let Some(err) = next {
                    let text = err.to_string();
                    if !detail.contains(&text) {
                        detail = format!("{detail}: {text}");
                    }
                    next = err.source();
                }
                CliError::Unreachable {
                    code: status.code(),
                    detail,
                }
            }
            None => CliError::Server {
                code: status.code(),
                message: status.message().to_owned(),
            },
        }
    }
}

/// The exit code for a failed command.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return match e {
                CliError::NotLoggedIn | CliError::SessionExpired { .. } => EXIT_AUTH,
                CliError::Server {
                    code: Code::Unauthenticated,
                    ..
                } => EXIT_AUTH,
                CliError::Server { .. } => EXIT_FAILURE,
                CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            };
        }
    }
    EXIT_FAILURE
}

/// The gRPC name of a status code, as servers and grpcurl print it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_statuses_keep_the_server_message_and_pick_the_exit_code() {
        let err: anyhow::Error =
            CliError::from(Status::invalid_argument("email: is not valid")).into();
        assert_eq!(err.to_string(), "email: is not valid (INVALID_ARGUMENT)");
        assert_eq!(exit_code(&err), EXIT_FAILURE);

        let err: anyhow::Error = CliError::from(Status::unauthenticated("token expired")).into();
        assert_eq!(exit_code(&err.context("listing chats")), EXIT_AUTH);
    }

    #[test]
    fn a_status_with_a_source_is_a_connection_failure() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let status = Status::from_error(Box::new(io));
        let err = CliError::from(status);
        assert!(matches!(err, CliError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("connection refused"), "{err}");
    }
}
