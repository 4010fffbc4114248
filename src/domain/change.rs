//! Changes to a chat or its messages after they were sent: each chat
//! numbers them 1, 2, 3, … without gaps (its change log), so streams
//! deliver and resume them exactly like messages, by a second per-chat
//! counter beside `seq`.

use serde::{Deserialize, Serialize};

/// One entry of a chat's change log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub chat_id: String,
    /// 1, 2, 3, … per chat, without gaps.
    pub seq: i64,
    /// When it happened (µs).
    pub at: i64,
    /// Who made it.
    pub user_id: String,
    pub kind: ChangeKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// The message's content changed (its current text is read from the
    /// message: the log never holds message text, so a delete erases it).
    Edited {
        message_id: String,
    },
    Deleted {
        message_id: String,
    },
    /// `Change::user_id` added or took back `emoji`; `count` have it now.
    Reaction {
        message_id: String,
        emoji: String,
        added: bool,
        count: i64,
    },
    Renamed {
        name: String,
    },
    /// `user_id` joined (added by the change's user) or left (or was
    /// removed).
    Member {
        user_id: String,
        joined: bool,
    },
}

impl ChangeKind {
    /// The log's `kind` column.
    pub fn name(&self) -> &'static str {
        match self {
            ChangeKind::Edited { .. } => "edited",
            ChangeKind::Deleted { .. } => "deleted",
            ChangeKind::Reaction { .. } => "reaction",
            ChangeKind::Renamed { .. } => "renamed",
            ChangeKind::Member { .. } => "member",
        }
    }

    /// The message the change is about, if any.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            ChangeKind::Edited { message_id }
            | ChangeKind::Deleted { message_id }
            | ChangeKind::Reaction { message_id, .. } => Some(message_id),
            ChangeKind::Renamed { .. } | ChangeKind::Member { .. } => None,
        }
    }
}
