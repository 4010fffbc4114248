//! Changing messages that were sent (`/edit`, `/delete`, `/react`) and
//! showing the changes the stream delivers, mine included: what the server
//! logged is what is shown, once, in the order it happened.

use tidings_proto::{
    AddReactionRequest, ChatChange, DeleteMessageRequest, EditMessageRequest,
    RemoveReactionRequest, chat_change,
};

use super::Room;
use super::command::Command;
use crate::api::{Api, call};
use crate::format::content_preview;

impl Room {
    /// The id of the message shown as `#seq`, or says there is none.
    pub(super) fn id_of(&mut self, seq: i64) -> Option<String> {
        let id = self.ids.get(&seq).cloned();
        if id.is_none() {
            self.ui
                .print(format!("· no message #{seq} has been shown here"));
        }
        id
    }

    /// Runs one of the commands that change a message. Success shows when
    /// the change comes back on the stream; a refusal is shown here.
    pub(super) async fn act(&mut self, api: &mut Api, command: Command<'_>) {
        let (seq, what) = match &command {
            Command::Edit { seq, .. } => (*seq, "edit"),
            Command::Delete { seq } => (*seq, "delete"),
            Command::React { seq, .. } => (*seq, "react to"),
            Command::Unreact { seq, .. } => (*seq, "take back the reaction on"),
            _ => return,
        };
        let Some(message_id) = self.id_of(seq) else {
            return;
        };
        let messages = &mut api.messages;
        let outcome = match command {
            Command::Edit { text, .. } => call(messages.edit_message(EditMessageRequest {
                message_id,
                content: text.to_owned(),
            }))
            .await
            .map(drop),
            Command::Delete { .. } => {
                call(messages.delete_message(DeleteMessageRequest { message_id }))
                    .await
                    .map(drop)
            }
            Command::React { emoji, .. } => call(messages.add_reaction(AddReactionRequest {
                message_id,
                emoji: emoji.to_owned(),
            }))
            .await
            .map(drop),
            Command::Unreact { emoji, .. } => {
                call(messages.remove_reaction(RemoveReactionRequest {
                    message_id,
                    emoji: emoji.to_owned(),
                }))
                .await
                .map(drop)
            }
            _ => return,
        };
        if let Err(err) = outcome {
            self.ui.print(format!("✗ could not {what} #{seq}: {err}"));
        }
    }

    /// One logged change of this chat; a change already shown (the replay
    /// after a reconnect overlapping what came live) is skipped.
    pub(super) fn on_change(&mut self, c: ChatChange) {
        if c.change_seq <= self.last_change {
            return;
        }
        self.last_change = c.change_seq;
        let who = if c.user_id == self.me {
            "you".to_owned()
        } else {
            self.name(&c.user_id).to_owned()
        };
        let line = match c.kind {
            Some(chat_change::Kind::Edited(m)) => {
                self.remember(&m.id, m.seq);
                format!("· {who} edited #{}: {}", m.seq, content_preview(&m, 60))
            }
            Some(chat_change::Kind::Deleted(d)) => {
                format!("· {who} deleted {}", self.named(&d.message_id))
            }
            Some(chat_change::Kind::Reaction(r)) => {
                let target = self.named(&r.message_id);
                let verb = if r.added { "reacted" } else { "took back" };
                let prep = if r.added { "to" } else { "on" };
                format!("· {who} {verb} {} {prep} {target} ({})", r.emoji, r.count)
            }
            Some(chat_change::Kind::Renamed(r)) => {
                format!("· {who} renamed the room to #{}", r.name)
            }
            Some(chat_change::Kind::Member(m)) => {
                let Some(user) = m.user else { return };
                let line = match (m.joined, user.id == c.user_id) {
                    (true, true) => format!("· {} joined", user.username),
                    (true, false) => format!("· {who} added {}", user.username),
                    (false, true) => format!("· {} left", user.username),
                    (false, false) => format!("· {who} removed {}", user.username),
                };
                if m.joined {
                    self.names.insert(user.id, user.username);
                } else {
                    self.names.remove(&user.id);
                }
                line
            }
            None => return,
        };
        self.ui.print(line);
    }

    /// `#seq` of a message shown here, else "an earlier message".
    fn named(&self, message_id: &str) -> String {
        self.seqs
            .get(message_id)
            .map_or_else(|| "an earlier message".to_owned(), |seq| format!("#{seq}"))
    }
}
