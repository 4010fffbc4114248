//! `tidings-chat`: the native terminal client of Tidings.
//!
//! Layout (from the command line down to the wire):
//! - [`args`]: the clap command line; every global flag is also an env var.
//! - [`commands`]: one function per subcommand (`register`, `chats`,
//!   `send`, `tail`, ...), each a short script over the API.
//! - [`chat`]: the interactive chat: one bidirectional `Session` stream,
//!   a line editor that prints incoming events above the prompt, idempotent
//!   sends that survive reconnects.
//! - [`api`]: the channel, the bearer-token interceptor and the generated
//!   clients of `tidings_proto`.
//! - [`retry`]: which failures are worth retrying, and the backoff.
//! - [`store`]: `session.json` (the token) and `cursors.json` (last seq seen
//!   per chat) in the user's config dir.
//! - [`format`]: how messages and errors are written for people and scripts.
//! - [`error`]: the few failures that choose an exit code.

pub mod api;
pub mod args;
pub mod chat;
pub mod commands;
pub mod error;
pub mod format;
pub mod retry;
pub mod store;

use args::{Cli, Command};

/// Runs one command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = api::Context::new(cli.server, cli.config_dir)?;
    match cli.command {
        Command::Register(a) => commands::account::register(&ctx, a).await,
        Command::Login(a) => commands::account::login(&ctx, a).await,
        Command::Logout => commands::account::logout(&ctx),
        Command::Whoami => commands::account::whoami(&ctx).await,
        Command::Chats => commands::chats::list(&ctx).await,
        Command::Open(a) => commands::chats::open(&ctx, a).await,
        Command::Room(a) => commands::chats::room(&ctx, a).await,
        Command::Send(a) => commands::send::run(&ctx, a).await,
        Command::Tail(a) => commands::tail::run(&ctx, a).await,
        Command::Chat(a) => chat::run(&ctx, a).await,
    }
}
