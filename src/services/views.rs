//! Messages as a viewer sees them: status from the watermarks, the
//! sender's name, the quote each answers and its reactions (with the
//! viewer's own marked). Shared by the chats and messages services, which
//! do not import each other.

use std::collections::HashMap;

use crate::domain::{
    AppResult, Member, Message, MessageView, Quote, REACTION_USERS, Reactions, Status,
};
use crate::store::Store;

/// Views of `messages` (in their order) for `viewer`, with four queries in
/// all whatever their number: senders' and quoted senders' names, the
/// quoted messages, the reactions.
pub async fn message_views(
    store: &Store,
    viewer: &str,
    members: &[Member],
    messages: Vec<Message>,
) -> AppResult<Vec<MessageView>> {
    let quoted_ids: Vec<String> = unique(messages.iter().filter_map(|m| m.reply_to_id.clone()));
    let quoted: HashMap<String, Message> = store
        .messages_by_ids(&quoted_ids)
        .await?
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();
    let people = unique(
        messages
            .iter()
            .map(|m| m.sender_id.clone())
            .chain(quoted.values().map(|m| m.sender_id.clone())),
    );
    let names = usernames(store, &people).await?;
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    let mut reactions = summarize(store.reactions_of(&ids).await?, viewer);
    Ok(messages
        .into_iter()
        .map(|message| {
            let quote = message
                .reply_to_id
                .as_ref()
                .and_then(|id| quoted.get(id))
                .map(|q| Quote::of(q, name(&names, &q.sender_id)));
            MessageView {
                status: Status::of(members, &message.sender_id, message.seq),
                username: name(&names, &message.sender_id),
                quote,
                reactions: reactions.remove(&message.id).unwrap_or_default(),
                message,
            }
        })
        .collect())
}

/// A new message as its sender sees it (nothing has happened to it yet).
pub fn sent_view(message: Message, username: String, quote: Option<Quote>) -> MessageView {
    MessageView {
        message,
        status: Status::Sent,
        username,
        quote,
        reactions: Vec::new(),
    }
}

/// One message's reactions for `viewer`.
pub async fn reactions_of(
    store: &Store,
    message_id: &str,
    viewer: &str,
) -> AppResult<Vec<Reactions>> {
    let rows = store.reactions_of(&[message_id.to_owned()]).await?;
    Ok(summarize(rows, viewer)
        .remove(message_id)
        .unwrap_or_default())
}

/// `(message_id, emoji, user_id)` rows, oldest first, into each message's
/// reactions: one entry per emoji in the order each was first used.
fn summarize(rows: Vec<(String, String, String)>, viewer: &str) -> HashMap<String, Vec<Reactions>> {
    let mut out: HashMap<String, Vec<Reactions>> = HashMap::new();
    for (message_id, emoji, user_id) in rows {
        let list = out.entry(message_id).or_default();
        let entry = match list.iter_mut().position(|r| r.emoji == emoji) {
            Some(i) => &mut list[i],
            None => {
                list.push(Reactions {
                    emoji,
                    count: 0,
                    mine: false,
                    user_ids: Vec::new(),
                });
                list.last_mut().expect("just pushed")
            }
        };
        entry.count += 1;
        entry.mine |= user_id == viewer;
        if entry.user_ids.len() < REACTION_USERS {
            entry.user_ids.push(user_id);
        }
    }
    out
}

/// The username of each of these users, by id.
pub async fn usernames(store: &Store, ids: &[String]) -> AppResult<HashMap<String, String>> {
    Ok(store
        .users_by_ids(ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect())
}

fn name(names: &HashMap<String, String>, id: &str) -> String {
    names.get(id).cloned().unwrap_or_default()
}

fn unique(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_group_by_emoji_in_first_use_order() {
        let row = |m: &str, e: &str, u: &str| (m.to_owned(), e.to_owned(), u.to_owned());
        let rows = vec![
            row("m", "👍", "a"),
            row("m", "🎉", "b"),
            row("m", "👍", "me"),
            row("n", "👍", "c"),
        ];
        let out = summarize(rows, "me");
        let m = &out["m"];
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].emoji.as_str(), m[0].count, m[0].mine),
            ("👍", 2, true)
        );
        assert_eq!(m[0].user_ids, ["a", "me"]);
        assert_eq!(
            (m[1].emoji.as_str(), m[1].count, m[1].mine),
            ("🎉", 1, false)
        );
        assert!(!out["n"][0].mine);
    }
}
