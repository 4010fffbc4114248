//! `/block NAME`, `/unblock NAME` and `/blocked`, and the `block_changed`
//! events that tell every device of the person about a block.
//!
//! The server does the hiding (a blocked sender's messages arrive with
//! `hidden` set and no content); this side names people, keeps the list of
//! the people blocked so that a block made here and echoed back on the
//! stream (or made on another device) is told once, and says so.

use std::collections::HashMap;

use tidings_proto::{BlockChanged, BlockUserRequest, ListBlockedRequest, UnblockUserRequest};

use super::Room;
use crate::api::{Api, call};
use crate::error::CliError;
use crate::format::{block_notice, blocked_list};

/// The member called `name` among `names` (user id → username): the exact
/// username, else the only one that matches ignoring case. Its id and name.
pub(super) fn member_named<'a>(
    names: &'a HashMap<String, String>,
    name: &str,
) -> Option<(&'a str, &'a str)> {
    if let Some((id, n)) = names.iter().find(|(_, n)| *n == name) {
        return Some((id, n));
    }
    let mut folded = names.iter().filter(|(_, n)| n.eq_ignore_ascii_case(name));
    match (folded.next(), folded.next()) {
        (Some((id, n)), None) => Some((id, n)),
        _ => None,
    }
}

impl Room {
    /// Learns whom the person has blocked, so that later notices are told
    /// once. A server without blocking (UNIMPLEMENTED) has nobody blocked.
    pub(super) async fn load_blocked(&mut self, api: &mut Api) {
        match call(api.users.list_blocked(ListBlockedRequest {})).await {
            Ok(reply) => {
                self.blocked = reply
                    .users
                    .into_iter()
                    .map(|u| (u.user_id, u.username))
                    .collect();
            }
            Err(err) if err.code() == Some(tonic::Code::Unimplemented) => {}
            Err(err) => self
                .ui
                .print(format!("· could not list the people you blocked: {err}")),
        }
    }

    /// `/block NAME`: a member of this chat (the peer of a direct chat).
    pub(super) async fn block(&mut self, api: &mut Api, name: &str) {
        let Some((id, username)) = member_named(&self.names, name) else {
            self.ui
                .print(format!("· nobody called {name} is a member of this chat"));
            return;
        };
        if id == self.me {
            self.ui.print("· you cannot block yourself");
            return;
        }
        let (id, username) = (id.to_owned(), username.to_owned());
        match call(api.users.block_user(BlockUserRequest {
            user_id: id.clone(),
        }))
        .await
        {
            Ok(reply) => {
                let username = reply
                    .blocked
                    .map(|b| b.username)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(username);
                self.set_blocked(&id, Some(username));
            }
            Err(err) => self
                .ui
                .print(format!("✗ could not block {username}: {err}")),
        }
    }

    /// `/unblock NAME`: someone on the list of the people blocked (asked
    /// afresh: they need not be a member of this chat), or a member.
    pub(super) async fn unblock(&mut self, api: &mut Api, name: &str) {
        let listed = match self.refresh_blocked(api).await {
            Ok(()) => member_named(&self.blocked, name),
            Err(err) => {
                self.ui
                    .print(format!("✗ could not list the people you blocked: {err}"));
                return;
            }
        };
        let Some((id, username)) = listed.or_else(|| member_named(&self.names, name)) else {
            self.ui.print(format!("· you have not blocked {name}"));
            return;
        };
        let (id, username) = (id.to_owned(), username.to_owned());
        match call(api.users.unblock_user(UnblockUserRequest {
            user_id: id.clone(),
        }))
        .await
        {
            Ok(_) => {
                if self.blocked.contains_key(&id) {
                    self.set_blocked(&id, None);
                } else {
                    self.ui.print(format!("· you had not blocked {username}"));
                }
            }
            Err(err) => self
                .ui
                .print(format!("✗ could not unblock {username}: {err}")),
        }
    }

    /// `/blocked`: the list, as the server has it now.
    pub(super) async fn show_blocked(&mut self, api: &mut Api) {
        match call(api.users.list_blocked(ListBlockedRequest {})).await {
            Ok(reply) => {
                self.blocked = reply
                    .users
                    .iter()
                    .map(|u| (u.user_id.clone(), u.username.clone()))
                    .collect();
                self.ui.print(format!("· {}", blocked_list(&reply.users)));
            }
            Err(err) => self
                .ui
                .print(format!("✗ could not list the people you blocked: {err}")),
        }
    }

    async fn refresh_blocked(&mut self, api: &mut Api) -> Result<(), CliError> {
        let reply = call(api.users.list_blocked(ListBlockedRequest {})).await?;
        self.blocked = reply
            .users
            .into_iter()
            .map(|u| (u.user_id, u.username))
            .collect();
        Ok(())
    }

    /// Why a send in a direct chat was refused with FAILED_PRECONDITION,
    /// when the person blocked the other one there.
    pub(super) fn unblock_hint(&self) -> Option<String> {
        if self.is_group {
            return None;
        }
        let (_, name) = self
            .names
            .iter()
            .find(|(id, _)| **id != self.me && self.blocked.contains_key(*id))?;
        Some(format!(
            "you blocked {name}: /unblock {name} to write to them again"
        ))
    }

    /// A block or unblock on any of the person's devices, this one included
    /// (then it was told already).
    pub(super) fn on_block_changed(&mut self, b: BlockChanged) {
        if b.blocked {
            let name = self.name(&b.user_id).to_owned();
            self.set_blocked(&b.user_id, Some(name));
        } else {
            self.set_blocked(&b.user_id, None);
        }
    }

    /// Records a block (`Some(username)`) or its end (`None`), and tells the
    /// person unless it was known already.
    fn set_blocked(&mut self, user_id: &str, username: Option<String>) {
        let (changed, name) = match username {
            Some(name) => (
                self.blocked
                    .insert(user_id.to_owned(), name.clone())
                    .is_none(),
                name,
            ),
            None => match self.blocked.remove(user_id) {
                Some(name) if !name.is_empty() => (true, name),
                Some(_) => (true, self.name(user_id).to_owned()),
                None => (false, String::new()),
            },
        };
        if changed {
            let blocked = self.blocked.contains_key(user_id);
            self.ui.print(format!("· {}", block_notice(&name, blocked)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_by_exact_name_then_ignoring_case_when_unambiguous() {
        let names: HashMap<String, String> = [
            ("u1", "bob"),
            ("u2", "Carol"),
            ("u3", "dave"),
            ("u4", "Dave"),
        ]
        .into_iter()
        .map(|(id, n)| (id.to_owned(), n.to_owned()))
        .collect();
        assert_eq!(member_named(&names, "bob"), Some(("u1", "bob")));
        assert_eq!(member_named(&names, "BOB"), Some(("u1", "bob")));
        assert_eq!(member_named(&names, "carol"), Some(("u2", "Carol")));
        assert_eq!(member_named(&names, "Dave"), Some(("u4", "Dave")));
        assert_eq!(member_named(&names, "DAVE"), None, "two people fold to it");
        assert_eq!(member_named(&names, "erin"), None);
    }
}
