//! The failures that decide an exit code. Everything else is an
//! `anyhow::Error` with context and exits with 1.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

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
    /// The server answered with an error status; `message` is its own
    /// words, `details` the standard details it attached.
    #[error("{}", ServerError { code: *code, message, details })]
    Server {
        code: Code,
        message: String,
        details: Details,
    },
    /// The call never got an answer: connection refused, reset, timed out.
    #[error("cannot reach the server: {detail}")]
    Unreachable { code: Code, detail: String },
}

/// The standard error details (`google.rpc`) of a status that this client
/// acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// `BadRequest`: which fields were wrong, and how.
    pub violations: Vec<FieldViolation>,
    /// `RetryInfo`: how long the server asked us to wait before trying again.
    pub retry_delay: Option<Duration>,
}

/// One field of the request the server refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl Details {
    /// The details of `status`; none when it has none (or they do not
    /// decode: the message text is still there).
    pub fn of(status: &Status) -> Details {
        let details = status.get_error_details();
        Details {
            violations: details
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| FieldViolation {
                            field: v.field.clone(),
                            description: v.description.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            retry_delay: details.retry_info().and_then(|r| r.retry_delay),
        }
    }
}

/// `message (CODE)`, then one `field: description` line per field the
/// server named, unless the message already says just that.
struct ServerError<'a> {
    code: Code,
    message: &'a str,
    details: &'a Details,
}

impl fmt::Display for ServerError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, code_name(self.code))?;
        for v in &self.details.violations {
            let line = format!("{}: {}", v.field, v.description);
            if line != self.message {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl CliError {
    /// A refusal made up on this side (a stream the server ended, a
    /// session frame's error), without details.
    pub fn server(code: Code, message: impl Into<String>) -> CliError {
        CliError::Server {
            code,
            message: message.into(),
            details: Details::default(),
        }
    }

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
                details: Details::of(&status),
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
    fn field_violations_are_read_from_the_bad_request_details() {
        use tonic_types::{ErrorDetails, FieldViolation as Violation};
        // As the server sends one: the message leads with the field too.
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "content: must not be blank",
            ErrorDetails::with_bad_request_violation("content", "must not be blank"),
        );
        let err = CliError::from(status);
        let CliError::Server { details, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            details.violations,
            [FieldViolation {
                field: "content".into(),
                description: "must not be blank".into()
            }]
        );
        assert_eq!(details.retry_delay, None);
        // Said once, not twice.
        assert_eq!(
            err.to_string(),
            "content: must not be blank (INVALID_ARGUMENT)"
        );

        // Several fields: one line each under the message.
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "the request is not valid",
            ErrorDetails::with_bad_request(vec![
                Violation::new("username", "must be 3-32 characters"),
                Violation::new("email", "is not an e-mail address"),
            ]),
        );
        assert_eq!(
            CliError::from(status).to_string(),
            "the request is not valid (INVALID_ARGUMENT)\n  \
             username: must be 3-32 characters\n  email: is not an e-mail address"
        );
    }

    #[test]
    fn the_retry_delay_is_read_from_the_retry_info_details() {
        let status = Status::with_error_details(
            Code::ResourceExhausted,
            "send rate limit: at most 1 messages per second (bursts of 1) per user; retry in 734 ms",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(734))),
        );
        let err = CliError::from(status);
        let CliError::Server { code, details, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*code, Code::ResourceExhausted);
        assert_eq!(details.retry_delay, Some(Duration::from_millis(734)));
        assert!(details.violations.is_empty());

        // A status without details has none, whatever its text says.
        let plain = CliError::from(Status::resource_exhausted("retry in 500 ms"));
        let CliError::Server { details, .. } = plain else {
            panic!()
        };
        assert_eq!(details, Details::default());
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
