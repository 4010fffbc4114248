//! The command line. Global flags are also environment variables so scripts
//! and tests can set them once.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The Tidings terminal client: chat interactively, or script it with
/// `send` and `tail`.
#[derive(Debug, Parser)]
#[command(name = "tidings-chat", version, about, long_about = None)]
pub struct Cli {
    /// Server URL. Defaults to the server of the saved session, else
    /// http://127.0.0.1:8080.
    #[arg(long, global = true, env = "TIDINGS_SERVER")]
    pub server: Option<String>,

    /// Where the session (token) and the resume cursors are kept. Defaults
    /// to `tidings` in the user's config dir (e.g. ~/.config/tidings).
    #[arg(long, global = true, env = "TIDINGS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account and log in as it.
    Register(RegisterArgs),
    /// Log in; the token is kept in the config dir.
    Login(LoginArgs),
    /// Forget the saved token.
    Logout,
    /// Show who you are logged in as (asks the server).
    Whoami,
    /// List your chats: id, name, unread count and last message.
    Chats,
    /// Open (or create) the direct chat with someone; prints its id.
    Open(OpenArgs),
    /// Create a group room; prints its id.
    Room(RoomArgs),
    /// Send one message; prints `seq<TAB>message id` once the server has it.
    Send(SendArgs),
    /// Print new messages as `chat_id<TAB>seq<TAB>username<TAB>content` lines.
    Tail(TailArgs),
    /// Chat interactively: messages, typing and read receipts appear live.
    Chat(ChatArgs),
}

#[derive(Debug, Args)]
pub struct Password {
    /// The password. Without it (and without TIDINGS_PASSWORD) it is asked
    /// for without echo when stdin is a terminal.
    #[arg(long, env = "TIDINGS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// 3-32 characters of letters, digits, `_`, `.` and `-`.
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub password: Password,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub password: Password,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The other person's email.
    pub email: String,
    /// A name for the chat (default: the other person's username).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct RoomArgs {
    /// The room's name (1-50 characters).
    pub name: String,
    /// A member besides you, by email; repeat for more.
    #[arg(long = "member", value_name = "EMAIL", required = true)]
    pub members: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    pub chat_id: String,
    /// The message, sent byte for byte; `-` reads it from stdin.
    pub text: String,
    /// Give up after this long (e.g. `30s`); by default a send whose server
    /// is unreachable is retried until it is acknowledged.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only these chats (default: every chat you are in, including chats
    /// you join while tailing).
    pub chat_ids: Vec<String>,
    /// Print every chat's whole history first, ignoring saved cursors.
    #[arg(long)]
    pub from_start: bool,
    /// Exit after printing this many messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    pub chat_id: String,
    /// How many earlier messages to show when the chat opens.
    #[arg(long, default_value_t = 20)]
    pub history: i32,
}
