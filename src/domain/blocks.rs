//! Blocking, as one user's streams and reads apply it: whom the user
//! blocked (their messages reach the user hidden) and who blocked the user
//! (the user does not see their presence or typing). Either way the two
//! cannot write to each other in a direct chat.

use std::collections::HashSet;

use super::model::Message;
use super::views::{MessageView, Quote};

/// Most users one user may block.
pub const MAX_BLOCKS: u64 = 1000;

/// One user's blocks, both ways.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockSet {
    /// Users this user blocked.
    pub blocked: HashSet<String>,
    /// Users who blocked this user.
    pub blocked_by: HashSet<String>,
}

impl BlockSet {
    /// Nothing either way: the common case, checked first everywhere.
    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty() && self.blocked_by.is_empty()
    }

    /// Whether `user_id`'s messages reach this user hidden.
    pub fn hides(&self, user_id: &str) -> bool {
        self.blocked.contains(user_id)
    }

    /// Whether a block stands between this user and `user_id`, either way:
    /// no presence, no typing, no writing in a direct chat.
    pub fn walls(&self, user_id: &str) -> bool {
        self.blocked.contains(user_id) || self.blocked_by.contains(user_id)
    }

    /// Withholds what this user must not see of a message: its content and
    /// mentions if its sender is blocked, and the quote's excerpt if the
    /// quoted sender is. True if anything was withheld.
    pub fn redact(&self, message: &mut Message, quote: Option<&mut Quote>) -> bool {
        let mut changed = false;
        if self.hides(&message.sender_id) {
            message.hidden = true;
            message.content.clear();
            message.mentions.clear();
            message.attachments.clear();
            changed = true;
        }
        if let Some(q) = quote
            && self.hides(&q.user_id)
        {
            q.hidden = true;
            q.excerpt.clear();
            changed = true;
        }
        changed
    }

    /// [`BlockSet::redact`] on a view.
    pub fn redact_view(&self, view: &mut MessageView) -> bool {
        !self.blocked.is_empty() && self.redact(&mut view.message, view.quote.as_mut())
    }

    /// Whether [`BlockSet::redact`] would withhold anything.
    pub fn would_redact(&self, message: &Message, quote: Option<&Quote>) -> bool {
        !self.blocked.is_empty()
            && (self.hides(&message.sender_id) || quote.is_some_and(|q| self.hides(&q.user_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(blocked: &[&str], blocked_by: &[&str]) -> BlockSet {
        BlockSet {
            blocked: blocked.iter().map(|s| s.to_string()).collect(),
            blocked_by: blocked_by.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_blocked_senders_message_loses_its_content_and_mentions_only() {
        let mut m = Message {
            id: "m".into(),
            sender_id: "bob".into(),
            content: "hello @carol".into(),
            mentions: vec!["carol".into()],
            seq: 7,
            ..Default::default()
        };
        let blocks = set(&["bob"], &[]);
        assert!(blocks.would_redact(&m, None));
        assert!(blocks.redact(&mut m, None));
        assert!(m.hidden && m.content.is_empty() && m.mentions.is_empty());
        assert_eq!((m.id.as_str(), m.seq), ("m", 7));
    }

    #[test]
    fn only_the_blocker_hides_and_both_sides_are_walled() {
        let m = Message {
            sender_id: "bob".into(),
            content: "x".into(),
            ..Default::default()
        };
        // Bob was blocked *by* alice: alice's messages are not hidden from bob.
        let bobs = set(&[], &["alice"]);
        assert!(!bobs.would_redact(&m, None));
        assert!(bobs.walls("alice") && !bobs.hides("alice"));
        assert!(set(&["bob"], &[]).walls("bob"));
        assert!(!set(&["bob"], &[]).walls("carol"));
        assert!(BlockSet::default().is_empty());
    }

    #[test]
    fn a_quote_of_a_blocked_sender_loses_its_excerpt() {
        let mut m = Message {
            sender_id: "carol".into(),
            content: "answer".into(),
            ..Default::default()
        };
        let mut q = Quote {
            message_id: "q".into(),
            user_id: "bob".into(),
            username: "bob".into(),
            excerpt: "secret".into(),
            deleted: false,
            hidden: false,
        };
        let blocks = set(&["bob"], &[]);
        assert!(blocks.would_redact(&m, Some(&q)));
        assert!(blocks.redact(&mut m, Some(&mut q)));
        assert_eq!(m.content, "answer");
        assert!(!m.hidden && q.hidden && q.excerpt.is_empty());
    }
}
