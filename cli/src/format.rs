//! How things are written: plain tab-separated lines for scripts, short
//! readable lines for people.

use chrono::{DateTime, Local};
use tidings_proto::{BlockedUser, Message};

/// What is shown for the content of a message whose sender the reader has
/// blocked: the server withholds it (`Message.hidden`).
pub const HIDDEN: &str = "[message from someone you blocked]";

/// The content of `m` for a one-line preview: its text, or [`HIDDEN`].
pub fn content_preview(m: &Message, max: usize) -> String {
    if m.hidden {
        HIDDEN.to_owned()
    } else {
        preview(&m.content, max)
    }
}

/// One `tail` line: `chat_id<TAB>seq<TAB>username<TAB>content`.
pub fn tail_line(m: &Message) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        m.chat_id,
        m.seq,
        escape(&m.username),
        escape(&m.content)
    )
}

/// Keeps one message on one line and its fields apart: backslash, newline,
/// carriage return and tab are written as `\\`, `\n`, `\r` and `\t`, other
/// control characters as `\u{001b}`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Any other control character (an ESC starting a terminal
            // sequence, say) is written as its code, never sent raw.
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The first `max` characters of a message on one line, for listings.
pub fn preview(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `14:03` in local time (or the date too when it is not today).
pub fn clock(at: Option<&prost_types::Timestamp>) -> String {
    let Some(at) = at else {
        return "--:--".into();
    };
    let Some(utc) = DateTime::from_timestamp(at.seconds, at.nanos.max(0) as u32) else {
        return "--:--".into();
    };
    let local = utc.with_timezone(&Local);
    if local.date_naive() == Local::now().date_naive() {
        local.format("%H:%M").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// One message in the interactive chat: `#12 14:03 alice: hello`. Later
/// lines of a multi-line message are indented under the first; the message
/// it answers is quoted on a line above, `(edited)` follows a changed text,
/// a deleted one reads `(deleted)`, one from someone the reader blocked
/// reads [`HIDDEN`], and reactions follow in brackets.
/// Bytes as people read them: `512 B`, `1.5 KiB`, `20.0 MiB`.
pub fn file_size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

pub fn chat_line(m: &Message) -> String {
    let head = format!("#{} {} {}: ", m.seq, clock(m.sent_at.as_ref()), m.username);
    let indent = " ".repeat(head.chars().count());
    let mut out = String::new();
    if let Some(q) = &m.reply_to {
        let quoted = if q.deleted {
            "(deleted)".to_owned()
        } else if q.hidden {
            HIDDEN.to_owned()
        } else {
            preview(&q.excerpt, 50)
        };
        out.push_str(&format!("{indent}┌ {}: {quoted}\n", q.username));
    }
    out.push_str(&head);
    if m.deleted_at.is_some() {
        out.push_str("(deleted)");
        return out;
    }
    if m.hidden {
        out.push_str(HIDDEN);
    } else {
        out.push_str(&m.content.replace('\n', &format!("\n{indent}")));
    }
    if m.edited_at.is_some() {
        out.push_str(" (edited)");
    }
    for f in &m.attachments {
        out.push_str(&format!(
            "\n{indent}📎 {} ({}) /v1/files/{}",
            escape(&f.name),
            file_size(f.size),
            f.id
        ));
    }
    if !m.reactions.is_empty() {
        let counts: Vec<String> = m
            .reactions
            .iter()
            .map(|r| format!("{} {}", r.emoji, r.count))
            .collect();
        out.push_str(&format!("  [{}]", counts.join(" ")));
    }
    out
}

/// `/blocked`: `blocked: bob (since 14:03), carol (since 2026-11-30 09:12)`,
/// most recent first as the server lists them.
pub fn blocked_list(users: &[BlockedUser]) -> String {
    if users.is_empty() {
        return "you have blocked nobody".into();
    }
    let names: Vec<String> = users
        .iter()
        .map(|u| {
            let name = if u.username.is_empty() {
                &u.user_id
            } else {
                &u.username
            };
            format!("{name} (since {})", clock(u.blocked_at.as_ref()))
        })
        .collect();
    format!("blocked: {}", names.join(", "))
}

/// A block or unblock of the reader's, from this device or another one.
pub fn block_notice(name: &str, blocked: bool) -> String {
    if blocked {
        format!("you blocked {name}: their messages reach you hidden; /unblock {name} undoes it")
    } else {
        format!("you unblocked {name}")
    }
}

/// An error and its causes on one line: `listing chats: cannot reach ...`.
pub fn error_chain(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(file_size(0), "0 B");
        assert_eq!(file_size(1023), "1023 B");
        assert_eq!(file_size(1536), "1.5 KiB");
        assert_eq!(file_size(20 * 1024 * 1024), "20.0 MiB");
    }

    #[test]
    fn chat_lines_list_files_with_their_download_path_and_escaped_names() {
        let m = Message {
            seq: 4,
            username: "bob".into(),
            content: "the report".into(),
            attachments: vec![tidings_proto::Attachment {
                id: "f1".into(),
                name: "q3\u{1b}[31m.pdf".into(),
                size: 2048,
                ..Default::default()
            }],
            ..Default::default()
        };
        let line = chat_line(&m);
        assert!(line.contains("📎 "), "{line}");
        assert!(line.contains("(2.0 KiB) /v1/files/f1"), "{line}");
        assert!(
            !line.contains('\u{1b}'),
            "an escape sequence in a file name reached the terminal: {line}"
        );
    }

    #[test]
    fn tail_lines_keep_one_message_per_line_and_four_fields() {
        let m = Message {
            chat_id: "c".into(),
            seq: 7,
            username: "alice".into(),
            content: "a\tb\nc\\n".into(),
            ..Default::default()
        };
        let line = tail_line(&m);
        assert_eq!(line, "c\t7\talice\ta\\tb\\nc\\\\n");
        assert_eq!(line.split('\t').count(), 4);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn chat_lines_show_the_quote_the_edit_the_reactions_and_tombstones() {
        let mut m = Message {
            seq: 3,
            username: "bob".into(),
            content: "sure".into(),
            reply_to: Some(tidings_proto::Quote {
                username: "alice".into(),
                excerpt: "lunch?".into(),
                ..Default::default()
            }),
            edited_at: Some(prost_types::Timestamp::default()),
            reactions: vec![tidings_proto::Reaction {
                emoji: "👍".into(),
                count: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        let line = chat_line(&m);
        let (quote, body) = line.split_once('\n').unwrap();
        assert!(quote.ends_with("┌ alice: lunch?"), "{quote}");
        assert!(body.starts_with("#3 "), "{body}");
        assert!(body.ends_with("bob: sure (edited)  [👍 2]"), "{body}");
        m.deleted_at = Some(prost_types::Timestamp::default());
        m.content.clear();
        assert!(chat_line(&m).ends_with("bob: (deleted)"));
    }

    #[test]
    fn messages_and_quotes_from_someone_blocked_read_hidden() {
        let m = Message {
            seq: 5,
            username: "bob".into(),
            hidden: true,
            reply_to: Some(tidings_proto::Quote {
                username: "bob".into(),
                hidden: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let line = chat_line(&m);
        let (quote, body) = line.split_once('\n').unwrap();
        assert!(
            quote.ends_with("┌ bob: [message from someone you blocked]"),
            "{quote}"
        );
        assert!(body.starts_with("#5 "), "{body}");
        assert!(
            body.ends_with("bob: [message from someone you blocked]"),
            "{body}"
        );
        assert_eq!(content_preview(&m, 10), HIDDEN);
        // A deleted one is a tombstone either way.
        let gone = Message {
            deleted_at: Some(prost_types::Timestamp::default()),
            ..m
        };
        assert!(chat_line(&gone).ends_with("bob: (deleted)"));
    }

    #[test]
    fn the_blocked_list_and_block_notices() {
        assert_eq!(blocked_list(&[]), "you have blocked nobody");
        let at = prost_types::Timestamp {
            seconds: Local::now().timestamp(),
            nanos: 0,
        };
        let list = blocked_list(&[
            BlockedUser {
                user_id: "u1".into(),
                username: "bob".into(),
                blocked_at: Some(at),
            },
            BlockedUser {
                user_id: "u2".into(),
                username: String::new(),
                blocked_at: None,
            },
        ]);
        assert_eq!(
            list,
            format!(
                "blocked: bob (since {}), u2 (since --:--)",
                clock(Some(&at))
            )
        );
        assert!(block_notice("bob", true).starts_with("you blocked bob: "));
        assert_eq!(block_notice("bob", false), "you unblocked bob");
    }

    #[test]
    fn previews_are_flat_and_cut() {
        assert_eq!(preview("hi\nthere", 20), "hi there");
        assert_eq!(preview("abcdef", 4), "abc…");
    }
}
