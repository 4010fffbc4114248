//! What a line typed in the interactive chat asks for. Messages are named by
//! the `#seq` printed in front of them, people by their username.

/// One typed line, understood.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Nothing typed.
    Nothing,
    Send(&'a str),
    Reply {
        seq: i64,
        text: &'a str,
    },
    Edit {
        seq: i64,
        text: &'a str,
    },
    Delete {
        seq: i64,
    },
    React {
        seq: i64,
        emoji: &'a str,
    },
    Unreact {
        seq: i64,
        emoji: &'a str,
    },
    /// Block a member of this chat, by username (a leading `@` is fine).
    Block {
        name: &'a str,
    },
    Unblock {
        name: &'a str,
    },
    /// List the people blocked.
    Blocked,
    /// Send a file (and an optional caption).
    Upload {
        path: &'a str,
        caption: &'a str,
    },
    /// The download URLs of message #N's files.
    Files {
        seq: i64,
    },
    Help,
    Who,
    Quit,
    /// A known command written wrongly: how to write it.
    Usage(&'static str),
    Unknown(&'a str),
}

pub const HELP: &str = "type a message and press Enter to send it; \
/reply N text answers message #N; /edit N text changes your message #N; \
/delete N takes it back; /react N 👍 and /unreact N 👍 react to #N; \
/block NAME hides a member's messages from you and keeps them from writing \
to you directly or adding you to rooms; /unblock NAME undoes it; \
/blocked lists the people you blocked; \
/upload PATH [caption] sends a file (quote a PATH with spaces); \
/files N prints download URLs for the files of #N; \
/who lists the members; /quit (or Ctrl-D) leaves; \
start a message with // to send a leading /";

pub fn parse(line: &str) -> Command<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Command::Nothing;
    }
    if line.starts_with("//") {
        return Command::Send(&line[1..]);
    }
    if !trimmed.starts_with('/') {
        return Command::Send(line);
    }
    let (name, args) = trimmed
        .split_once(char::is_whitespace)
        .map_or((trimmed, ""), |(n, a)| (n, a.trim_start()));
    match name {
        "/quit" | "/exit" => Command::Quit,
        "/help" => Command::Help,
        "/who" => Command::Who,
        "/reply" => match seq_and_rest(args) {
            Some((seq, text)) if !text.is_empty() => Command::Reply { seq, text },
            _ => Command::Usage("/reply N text"),
        },
        "/edit" => match seq_and_rest(args) {
            Some((seq, text)) if !text.is_empty() => Command::Edit { seq, text },
            _ => Command::Usage("/edit N new text"),
        },
        "/delete" => match seq_and_rest(args) {
            Some((seq, "")) => Command::Delete { seq },
            _ => Command::Usage("/delete N"),
        },
        "/react" => match seq_and_rest(args) {
            Some((seq, emoji)) if one_word(emoji) => Command::React { seq, emoji },
            _ => Command::Usage("/react N 👍"),
        },
        "/unreact" => match seq_and_rest(args) {
            Some((seq, emoji)) if one_word(emoji) => Command::Unreact { seq, emoji },
            _ => Command::Usage("/unreact N 👍"),
        },
        "/block" => match username(args) {
            Some(name) => Command::Block { name },
            None => Command::Usage("/block NAME"),
        },
        "/unblock" => match username(args) {
            Some(name) => Command::Unblock { name },
            None => Command::Usage("/unblock NAME"),
        },
        "/blocked" if args.is_empty() => Command::Blocked,
        "/blocked" => Command::Usage("/blocked"),
        "/upload" => match super::files::path_and_caption(args) {
            Some((path, caption)) => Command::Upload { path, caption },
            None => Command::Usage("/upload PATH [caption]"),
        },
        "/files" => match seq_and_rest(args) {
            Some((seq, "")) => Command::Files { seq },
            _ => Command::Usage("/files N"),
        },
        _ => Command::Unknown(name),
    }
}

/// One username, with or without a leading `@`.
fn username(args: &str) -> Option<&str> {
    let name = args.trim();
    let name = name.strip_prefix('@').unwrap_or(name);
    one_word(name).then_some(name)
}

/// `N rest` or `#N rest`: the seq and the rest (trimmed).
fn seq_and_rest(args: &str) -> Option<(i64, &str)> {
    let (n, rest) = args
        .split_once(char::is_whitespace)
        .map_or((args, ""), |(n, r)| (n, r.trim()));
    let seq: i64 = n.strip_prefix('#').unwrap_or(n).parse().ok()?;
    (seq > 0).then_some((seq, rest))
}

fn one_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_messages_and_a_double_slash_sends_a_leading_slash() {
        assert_eq!(parse("hello"), Command::Send("hello"));
        assert_eq!(parse("  "), Command::Nothing);
        assert_eq!(parse("//etc/hosts"), Command::Send("/etc/hosts"));
    }

    #[test]
    fn message_commands_take_a_seq_with_or_without_a_hash() {
        assert_eq!(
            parse("/reply 3 sure"),
            Command::Reply {
                seq: 3,
                text: "sure"
            }
        );
        assert_eq!(
            parse("/edit #12 fixed  typo"),
            Command::Edit {
                seq: 12,
                text: "fixed  typo"
            }
        );
        assert_eq!(parse("/delete 4"), Command::Delete { seq: 4 });
        assert_eq!(
            parse("/react 5 👍"),
            Command::React {
                seq: 5,
                emoji: "👍"
            }
        );
        assert_eq!(
            parse("/unreact 5 👍"),
            Command::Unreact {
                seq: 5,
                emoji: "👍"
            }
        );
    }

    #[test]
    fn wrong_arguments_answer_how_to_write_the_command() {
        assert_eq!(parse("/edit 3"), Command::Usage("/edit N new text"));
        assert_eq!(parse("/edit x hi"), Command::Usage("/edit N new text"));
        assert_eq!(parse("/delete 0"), Command::Usage("/delete N"));
        assert_eq!(parse("/delete 2 3"), Command::Usage("/delete N"));
        assert_eq!(parse("/react 2"), Command::Usage("/react N 👍"));
        assert_eq!(parse("/react 2 a b"), Command::Usage("/react N 👍"));
        assert_eq!(parse("/reply"), Command::Usage("/reply N text"));
        assert_eq!(parse("/frobnicate"), Command::Unknown("/frobnicate"));
        assert_eq!(parse("/block"), Command::Usage("/block NAME"));
        assert_eq!(parse("/block bob carol"), Command::Usage("/block NAME"));
        assert_eq!(parse("/block @"), Command::Usage("/block NAME"));
        assert_eq!(parse("/unblock"), Command::Usage("/unblock NAME"));
        assert_eq!(parse("/blocked bob"), Command::Usage("/blocked"));
    }

    #[test]
    fn block_commands_take_a_username_with_or_without_an_at() {
        assert_eq!(parse("/block bob"), Command::Block { name: "bob" });
        assert_eq!(parse("/block  @bob.s "), Command::Block { name: "bob.s" });
        assert_eq!(parse("/unblock @bob"), Command::Unblock { name: "bob" });
        assert_eq!(parse("/blocked"), Command::Blocked);
        assert_eq!(parse("  /blocked  "), Command::Blocked);
        assert!(HELP.contains("/block NAME") && HELP.contains("/blocked"));
    }

    #[test]
    fn file_commands_take_a_path_or_a_seq() {
        assert_eq!(
            parse("/upload ./a.png hi there"),
            Command::Upload {
                path: "./a.png",
                caption: "hi there"
            }
        );
        assert_eq!(parse("/upload"), Command::Usage("/upload PATH [caption]"));
        assert_eq!(parse("/files 3"), Command::Files { seq: 3 });
        assert_eq!(parse("/files"), Command::Usage("/files N"));
        assert!(HELP.contains("/upload PATH") && HELP.contains("/files N"));
    }
}
