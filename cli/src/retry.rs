//! Which failures are worth another try, and how long to wait between tries.

use std::time::Duration;

use rand::Rng as _;
use tonic::Code;

use crate::error::CliError;

/// Failures that say nothing about the request itself: the server or the
/// path to it is down, overloaded or restarting. A request carrying an
/// idempotency key may always be repeated after one of these.
pub fn is_transient(err: &CliError) -> bool {
    match err {
        CliError::NotLoggedIn | CliError::SessionExpired { .. } => false,
        CliError::Unreachable { .. } => true,
        CliError::Server { code, message, .. } => match code {
            Code::Unavailable
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted => true,
            // A connection torn down mid-call (hyper / h2) surfaces as these.
            Code::Internal | Code::Unknown => {
                message.starts_with("h2 protocol error") || message.contains("transport error")
            }
            _ => false,
        },
    }
}

/// Failures after which a stream is not worth reopening: the request or the
/// credentials are wrong, and will be wrong next time too.
pub fn is_final(err: &CliError) -> bool {
    matches!(
        err.code(),
        Some(
            Code::Unauthenticated
                | Code::PermissionDenied
                | Code::InvalidArgument
                | Code::NotFound
                | Code::Unimplemented
        )
    ) && !matches!(err, CliError::Unreachable { .. })
        || matches!(err, CliError::NotLoggedIn | CliError::SessionExpired { .. })
}

/// The longest wait a server's `RetryInfo` is followed for. A longer one is
/// cut to this: the call is asked again then, and a server that still
/// refuses says how much longer.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(30);

/// A rate limit (RESOURCE_EXHAUSTED) that says, in its `RetryInfo`, how long
/// to wait: that wait, capped at [`MAX_SERVER_DELAY`]. `None` for every
/// other failure, which waits out the usual [`Backoff`].
pub fn server_delay(err: &CliError) -> Option<Duration> {
    match err {
        CliError::Server {
            code: Code::ResourceExhausted,
            details,
            ..
        } => details.retry_delay.map(|d| d.min(MAX_SERVER_DELAY)),
        _ => None,
    }
}

/// The wait before the next try after `err`, and the line that tells the
/// person about it when it is the server's own (`rate limited, retrying in
/// 1.2s`). Otherwise the next step of `backoff`, told or not as before.
pub fn wait_after(err: &CliError, backoff: &mut Backoff) -> (Duration, Option<String>) {
    match server_delay(err) {
        Some(delay) => (
            delay,
            Some(format!("rate limited, retrying in {}", seconds(delay))),
        ),
        None => (backoff.next_delay(), None),
    }
}

/// `1.2s`: seconds to a tenth.
pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Exponential backoff with jitter: 100 ms, 200 ms, ... up to `max`, each
/// drawn between half and all of the step so that clients cut off together
/// do not all come back in the same instant.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            step: initial,
            initial,
            max,
            failures: 0,
        }
    }

    /// The wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    /// After a success: the next failure starts again from the shortest wait.
    pub fn reset(&mut self) {
        self.step = self.initial;
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether this failure is worth telling the person about: the first of
    /// a streak, then every tenth, so a long outage does not flood the
    /// screen.
    pub fn worth_reporting(&self) -> bool {
        self.failures <= 1 || self.failures.is_multiple_of(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[2] >= Duration::from_millis(200));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn unavailable_is_retried_and_bad_input_is_not() {
        let server = |code, message: &str| CliError::server(code, message);
        assert!(is_transient(&server(Code::Unavailable, "storage down")));
        assert!(is_transient(&server(
            Code::Internal,
            "h2 protocol error: reset"
        )));
        assert!(!is_transient(&server(
            Code::InvalidArgument,
            "content: blank"
        )));
        assert!(!is_transient(&server(Code::Internal, "oops")));
        assert!(is_final(&server(Code::Unauthenticated, "token expired")));
        assert!(!is_final(&server(
            Code::Unavailable,
            "server shutting down"
        )));
    }

    #[test]
    fn a_rate_limit_waits_as_long_as_its_retry_info_says_up_to_the_cap() {
        use tonic_types::StatusExt as _;
        let limited = |wait: Duration| {
            CliError::from(tonic::Status::with_error_details(
                Code::ResourceExhausted,
                "send rate limit: at most 1 messages per second (bursts of 1) per user",
                tonic_types::ErrorDetails::with_retry_info(Some(wait)),
            ))
        };
        let mut backoff = Backoff::default();
        let (wait, line) = wait_after(&limited(Duration::from_millis(1234)), &mut backoff);
        assert_eq!(wait, Duration::from_millis(1234));
        assert_eq!(line.as_deref(), Some("rate limited, retrying in 1.2s"));
        // The server's wait is not a failure of the backoff's.
        assert_eq!(backoff.failures(), 0);
        assert!(is_transient(&limited(Duration::from_secs(1))));

        let (wait, line) = wait_after(&limited(Duration::from_secs(3600)), &mut backoff);
        assert_eq!(wait, MAX_SERVER_DELAY);
        assert_eq!(line.as_deref(), Some("rate limited, retrying in 30.0s"));

        // Without RetryInfo (the streams cap, or a server without details):
        // the usual backoff.
        let plain = CliError::from(tonic::Status::resource_exhausted("retry in 900 ms"));
        assert_eq!(server_delay(&plain), None);
        let (wait, line) = wait_after(&plain, &mut backoff);
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(line, None);
        assert_eq!(backoff.failures(), 1);
        // Nor does another code's RetryInfo count.
        let other = CliError::from(tonic::Status::with_error_details(
            Code::Unavailable,
            "down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(9))),
        ));
        assert_eq!(server_delay(&other), None);
    }
}
