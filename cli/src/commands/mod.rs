//! One module per group of subcommands. Each is a short script over
//! [`crate::api`]; what they print is meant to be read by people and, for
//! `send`, `tail`, `open` and `room`, by scripts.

pub mod account;
pub mod chats;
pub mod send;
pub mod tail;

/// Stops a long-running command cleanly on Ctrl-C or SIGTERM: the command
/// only looks at it between two messages, so what it printed and what it
/// saved always agree.
pub struct StopSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignal {
    pub fn new() -> StopSignal {
        StopSignal {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    pub async fn recv(&mut self) {
        #[cfg(unix)]
        let term = async {
            match &mut self.term {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal::new()
    }
}
