//! The domain: what a user, a chat and a message are, the rules their input
//! must follow, the views clients get, and the one error type.
//!
//! Plain values only: no I/O, no storage, no transport. Every layer above
//! uses these types; this module uses none of theirs.

pub mod account;
pub mod blocks;
pub mod change;
pub mod error;
pub mod ids;
pub mod model;
pub mod search;
pub mod status;
pub mod text;
pub mod views;

pub use account::{Email, Password, Username};
pub use blocks::{BlockSet, MAX_BLOCKS};
pub use change::{Change, ChangeKind};
pub use error::{AppError, AppResult};
pub use ids::{canonical_id, clamp_limit, direct_key, new_id, now_micros, parse_id};
pub use model::{Attachment, Chat, Member, Message, User};
pub use status::Status;
pub use text::{ChatName, Content, Emoji, IdempotencyKey, MAX_CONTENT_CHARS, mentioned_names};
pub use views::{ChatView, MessageView, QUOTE_CHARS, Quote, REACTION_USERS, Reactions};
