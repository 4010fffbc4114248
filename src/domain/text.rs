//! The text people type: message content, idempotency keys, chat names.
//! Each parses into a value that can only hold what the rules allow.

use super::error::{AppError, AppResult};

/// Message content: 1–4096 characters, not blank, no control characters
/// but tab, newline and carriage return; kept byte for byte.
#[derive(Debug, Clone)]
pub struct Content(String);

/// Characters that take no space on screen: text made only of these (and
/// whitespace) looks empty, so it counts as blank. Zero-width space and
/// (non-)joiners, word joiner and invisible operators, the byte-order
/// mark, soft hyphen, combining grapheme joiner, Mongolian vowel
/// separator, directional marks, Hangul fillers and the blank Braille
/// pattern.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

pub const MAX_CONTENT_CHARS: usize = 4096;

impl Content {
    /// No text: a message of files only.
    pub fn empty() -> Content {
        Content(String::new())
    }

    pub fn parse(raw: String) -> AppResult<Content> {
        if raw.is_empty() {
            return Err(AppError::invalid("content", "is required"));
        }
        // Cheap bound first: more than 4 bytes per character is impossible.
        if raw.len() > MAX_CONTENT_CHARS * 4 || raw.chars().count() > MAX_CONTENT_CHARS {
            return Err(AppError::invalid(
                "content",
                format!("must be at most {MAX_CONTENT_CHARS} characters"),
            ));
        }
        // PostgreSQL text cannot hold NUL; refuse it on every backend alike.
        if raw.contains('\0') {
            return Err(AppError::invalid(
                "content",
                "must not contain NUL characters",
            ));
        }
        // C0 and C1 controls (ANSI escape sequences among them) would steer
        // a terminal that prints the message; tab and line breaks are text.
        if let Some(c) = raw
            .chars()
            .find(|&c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(AppError::invalid(
                "content",
                format!(
                    "must not contain control characters (U+{:04X}) other than tab, newline and carriage return",
                    c as u32
                ),
            ));
        }
        if raw.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
            return Err(AppError::invalid("content", "must not be blank"));
        }
        Ok(Content(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An idempotency key: up to 128 printable characters; empty means none.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse_optional(raw: String) -> AppResult<Option<IdempotencyKey>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > 128 {
            return Err(AppError::invalid(
                "idempotency_key",
                "must be at most 128 characters",
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "idempotency_key",
                "must not contain control characters",
            ));
        }
        Ok(Some(IdempotencyKey(raw)))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A chat name: 1–50 characters, not blank, no control characters.
#[derive(Debug, Clone)]
pub struct ChatName(String);

impl ChatName {
    /// `Ok(None)` for an empty name (allowed for direct chats only).
    pub fn parse_optional(raw: &str) -> AppResult<Option<ChatName>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.chars().count() > 50 {
            return Err(AppError::invalid("name", "must be at most 50 characters"));
        }
        if raw.trim().is_empty() {
            return Err(AppError::invalid("name", "must not be blank"));
        }
        if raw.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Some(ChatName(raw.to_owned())))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A reaction: one emoji, as the Unicode emoji list spells it (skin tones
/// and ZWJ sequences included), at most [`MAX_EMOJI_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

pub const MAX_EMOJI_BYTES: usize = 32;

impl Emoji {
    pub fn parse(raw: &str) -> AppResult<Emoji> {
        use unicode_segmentation::UnicodeSegmentation as _;
        if raw.is_empty() {
            return Err(AppError::invalid("emoji", "is required"));
        }
        if raw.len() > MAX_EMOJI_BYTES {
            return Err(AppError::invalid(
                "emoji",
                format!("must be at most {MAX_EMOJI_BYTES} bytes"),
            ));
        }
        if raw.graphemes(true).count() != 1 || emojis::get(raw).is_none() {
            return Err(AppError::invalid("emoji", "must be one emoji"));
        }
        Ok(Emoji(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The usernames `content` mentions with `@`, lower-cased, each once, in
/// order: an `@` at the start or after a character that cannot be in a
/// username (so `ada@example.com` mentions nobody), then a username's
/// characters. A trailing `.` or `-` (the end of a sentence) is offered
/// both with and without, since usernames may end in either.
pub fn mentioned_names(content: &str) -> Vec<String> {
    fn in_name(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
    }
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: &str| {
        let name = name.to_ascii_lowercase();
        if (3..=32).contains(&name.len()) && !names.contains(&name) {
            names.push(name);
        }
    };
    let mut prev: Option<char> = None;
    for (i, c) in content.char_indices() {
        if c == '@' && !prev.is_some_and(in_name) {
            let rest = &content[i + 1..];
            let end = rest.find(|c: char| !in_name(c)).unwrap_or(rest.len());
            let name = &rest[..end];
            push(name);
            let trimmed = name.trim_end_matches(['.', '-']);
            if trimmed.len() != name.len() {
                push(trimmed);
            }
        }
        prev = Some(c);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_rules() {
        assert!(Content::parse(String::new()).is_err());
        assert!(Content::parse(" \n\t ".into()).is_err());
        assert!(Content::parse("a\0b".into()).is_err());
        assert!(Content::parse("é".repeat(4096)).is_ok());
        assert!(Content::parse("é".repeat(4097)).is_err());
        let kept = Content::parse("  padded\r\n ".into()).unwrap();
        assert_eq!(kept.as_str(), "  padded\r\n ");
        // Controls other than tab and line breaks: ANSI escapes, DEL, C1.
        for bad in [
            "\u{1b}[31mred",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{9b}31m",
            "\u{85}next",
        ] {
            assert!(Content::parse(bad.into()).is_err(), "{bad:?}");
        }
        assert!(Content::parse("tab\tnew\nline\r\n".into()).is_ok());
        // Invisible-only text is blank; with a visible character it is kept
        // as sent (joiners inside emoji, say).
        for blank in [
            "\u{200B}",
            "\u{200B}\u{200D} \u{FEFF}",
            "\u{2800}\u{3164}",
            "\u{AD}",
        ] {
            let err = Content::parse(blank.into()).unwrap_err();
            assert!(err.to_string().contains("blank"), "{blank:?}: {err}");
        }
        let family = "👨\u{200D}👩\u{200D}👧";
        assert_eq!(Content::parse(family.into()).unwrap().as_str(), family);
    }

    #[test]
    fn emoji_is_one_known_emoji() {
        for ok in ["👍", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "❤️", "🇫🇷"]
        {
            assert_eq!(Emoji::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
        for bad in ["", "a", "👍👍", "👍 ", ":+1:", "\u{200d}", &"👍".repeat(9)] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mentions_are_at_names_not_addresses() {
        assert_eq!(
            mentioned_names("hi @Ada and @bob.smith, mail ada@example.com; @ada again"),
            ["ada", "bob.smith"]
        );
        assert_eq!(mentioned_names("ask @carol."), ["carol.", "carol"]);
        assert!(mentioned_names("@ab @ nobody @").is_empty());
        assert_eq!(mentioned_names("(@dave)"), ["dave"]);
    }

    #[test]
    fn names() {
        assert!(ChatName::parse_optional("").unwrap().is_none());
        assert!(ChatName::parse_optional("Team 🚀").unwrap().is_some());
        assert!(ChatName::parse_optional(&"é".repeat(50)).unwrap().is_some());
        assert!(ChatName::parse_optional(&"é".repeat(51)).is_err());
        assert!(ChatName::parse_optional("   ").is_err());
        assert!(ChatName::parse_optional("a\nb").is_err());
    }
}
