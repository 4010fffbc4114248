//! A message's status: how far the other members of its chat have got.

use super::error::{AppError, AppResult};
use super::model::Member;

/// How far the other members of a chat have got with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Sent,
    Delivered,
    Read,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "SENT",
            Status::Delivered => "DELIVERED",
            Status::Read => "READ",
        }
    }

    /// 0, 1, 2 for SENT, DELIVERED, READ (the order of the wire's
    /// pre-encoded status fields).
    pub fn index(self) -> usize {
        match self {
            Status::Sent => 0,
            Status::Delivered => 1,
            Status::Read => 2,
        }
    }

    pub fn parse(raw: &str) -> AppResult<Status> {
        match raw.to_ascii_uppercase().as_str() {
            "SENT" => Ok(Status::Sent),
            "DELIVERED" => Ok(Status::Delivered),
            "READ" => Ok(Status::Read),
            _ => Err(AppError::invalid(
                "status",
                "must be one of SENT, DELIVERED, READ",
            )),
        }
    }

    /// READ once every other member has read it, DELIVERED once every other
    /// member has received it, SENT before that (and in a chat of one).
    pub fn of(members: &[Member], sender_id: &str, seq: i64) -> Status {
        let mut others = members.iter().filter(|m| m.user_id != sender_id).peekable();
        if others.peek().is_none() {
            return Status::Sent;
        }
        let (mut read, mut delivered) = (true, true);
        for m in others {
            read &= m.read_seq >= seq;
            delivered &= m.delivered_seq.max(m.read_seq) >= seq;
        }
        if read {
            Status::Read
        } else if delivered {
            Status::Delivered
        } else {
            Status::Sent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: &str, delivered: i64, read: i64) -> Member {
        Member {
            chat_id: "c".into(),
            user_id: user.into(),
            joined_at: 0,
            delivered_seq: delivered,
            read_seq: read,
        }
    }

    #[test]
    fn status_needs_every_other_member() {
        let members = [member("a", 5, 5), member("b", 5, 3), member("c", 4, 4)];
        assert_eq!(Status::of(&members, "a", 3), Status::Read);
        assert_eq!(Status::of(&members, "a", 4), Status::Delivered);
        assert_eq!(Status::of(&members, "a", 5), Status::Sent);
        // The sender's own watermark does not count: c lags, but c sent it.
        assert_eq!(Status::of(&members, "c", 5), Status::Delivered);
        assert_eq!(Status::of(&members, "a", 6), Status::Sent);
        assert_eq!(Status::of(&[member("a", 0, 0)], "a", 1), Status::Sent);
    }

    #[test]
    fn status_names() {
        assert_eq!(Status::parse("read").unwrap(), Status::Read);
        assert!(Status::parse("SEEN").is_err());
        assert_eq!(Status::Delivered.as_str(), "DELIVERED");
        let indexes: Vec<usize> = [Status::Sent, Status::Delivered, Status::Read]
            .into_iter()
            .map(Status::index)
            .collect();
        assert_eq!(indexes, [0, 1, 2]);
    }
}
