//! Search input and output: the words of a query, the page size, the
//! cursor that carries a search from one page to the next, and a hit.
//!
//! A word is a run of characters between white space, ASCII punctuation
//! and control characters (`alice@example.com` is `alice`, `example`,
//! `com`), which is where both backends' tokenisers split text too (see
//! migration `m20261203_000002_search`). The store hands each word to the
//! database's own tokeniser as one quoted term, so a word that holds other
//! separators (`don’t`, `a—b`) becomes a phrase there, and nothing a user
//! types can become query syntax.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::{AppError, AppResult};
use super::ids::canonical_id;
use super::text::is_invisible;
use super::views::MessageView;

pub const MAX_QUERY_CHARS: usize = 256;
/// Hits per page when the request says 0.
pub const DEFAULT_SEARCH_LIMIT: u64 = 20;
pub const MAX_SEARCH_LIMIT: u64 = 100;
/// A cursor is about 100 characters; anything much longer was not ours.
const MAX_CURSOR_CHARS: usize = 512;

/// The words of a query: at least one, each holding a letter or a digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

fn separates(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || is_invisible(c)
        || (c.is_ascii() && !c.is_ascii_alphanumeric())
}

impl SearchQuery {
    pub fn parse(raw: &str) -> AppResult<SearchQuery> {
        if raw.is_empty() {
            return Err(AppError::invalid("query", "is required"));
        }
        if raw.len() > MAX_QUERY_CHARS * 4 || raw.chars().count() > MAX_QUERY_CHARS {
            return Err(AppError::invalid(
                "query",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        if raw.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
            return Err(AppError::invalid("query", "must not be blank"));
        }
        let words: Vec<String> = raw
            .split(separates)
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .map(str::to_owned)
            .collect();
        if words.is_empty() {
            return Err(AppError::invalid(
                "query",
                "must contain a word (letters or digits), not only punctuation",
            ));
        }
        Ok(SearchQuery { words })
    }

    /// In the order typed; the last one also matches as a prefix.
    pub fn words(&self) -> &[String] {
        &self.words
    }
}

/// Hits per page: 0 means [`DEFAULT_SEARCH_LIMIT`]; otherwise 1 to
/// [`MAX_SEARCH_LIMIT`] (out of range is refused, not clamped: the
/// contract says 1-100).
pub fn search_limit(limit: i32) -> AppResult<u64> {
    match limit {
        0 => Ok(DEFAULT_SEARCH_LIMIT),
        n if n > 0 && (n as u64) <= MAX_SEARCH_LIMIT => Ok(n as u64),
        _ => Err(AppError::invalid(
            "limit",
            format!("must be between 1 and {MAX_SEARCH_LIMIT} (0 means {DEFAULT_SEARCH_LIMIT})"),
        )),
    }
}

/// What a search is, besides its page: a cursor is bound to it.
#[derive(Debug, Clone, Copy)]
pub struct SearchScope<'a> {
    pub query: &'a SearchQuery,
    pub chat_id: Option<&'a str>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub best_first: bool,
}

impl SearchScope<'_> {
    /// FNV-1a (64 bits) over the scope's fields, each ended by a byte that
    /// no field holds: stable across builds and nodes (std's hasher is not
    /// promised to be), and no secret is needed, since a cursor grants
    /// nothing (every page is filtered by the caller's chats anyway).
    fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes.iter().chain([&0xff]) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for w in &self.query.words {
            eat(w.as_bytes());
        }
        eat(b"");
        eat(self.chat_id.unwrap_or("").as_bytes());
        eat(&self.before.map_or([0; 9], tagged));
        eat(&self.after.map_or([0; 9], tagged));
        eat(&[u8::from(self.best_first)]);
        h
    }
}

fn tagged(t: i64) -> [u8; 9] {
    let mut out = [1; 9];
    out[1..].copy_from_slice(&t.to_be_bytes());
    out
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchPosition {
    First,
    /// Newest first: the hits older than this one (`created_at`, then id).
    After {
        created_at: i64,
        id: String,
    },
    /// Best first: past this many hits.
    Skip(u64),
}

/// The cursor as it travels: base64url of this JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    v: u8,
    /// The scope's fingerprint, hex.
    f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<u64>,
}

/// The `next_cursor` that continues `scope` at `position`.
pub fn encode_cursor(scope: &SearchScope<'_>, position: &SearchPosition) -> String {
    let mut wire = Wire {
        v: 1,
        f: format!("{:016x}", scope.fingerprint()),
        t: None,
        i: None,
        o: None,
    };
    match position {
        SearchPosition::First => return String::new(),
        SearchPosition::After { created_at, id } => {
            wire.t = Some(*created_at);
            wire.i = Some(id.clone());
        }
        SearchPosition::Skip(n) => wire.o = Some(*n),
    }
    let json = serde_json::to_vec(&wire).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Reads a request's `cursor` for `scope` ("" is the first page).
pub fn decode_cursor(raw: &str, scope: &SearchScope<'_>) -> AppResult<SearchPosition> {
    if raw.is_empty() {
        return Ok(SearchPosition::First);
    }
    let not_ours = || {
        AppError::invalid(
            "cursor",
            "is not a SearchMessages cursor: pass next_cursor back as it came",
        )
    };
    if raw.len() > MAX_CURSOR_CHARS {
        return Err(not_ours());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| not_ours())?;
    let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| not_ours())?;
    if wire.v != 1 {
        return Err(not_ours());
    }
    if wire.f != format!("{:016x}", scope.fingerprint()) {
        return Err(AppError::invalid(
            "cursor",
            "belongs to another search: query, chat_id, before, after and best_first \
             must be those of the page that gave it",
        ));
    }
    match (scope.best_first, wire.t, wire.i, wire.o) {
        (false, Some(created_at), Some(id), None) if canonical_id(&id).is_some() => {
            Ok(SearchPosition::After { created_at, id })
        }
        (true, None, None, Some(n)) => Ok(SearchPosition::Skip(n)),
        _ => Err(not_ours()),
    }
}

/// One result of a search, as the caller sees it.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub view: MessageView,
    /// The chat's name as its list shows it (a direct chat's is the peer's
    /// username).
    pub chat_name: String,
    /// Up to about 30 words around the match, each matched word between
    /// U+0002 and U+0003.
    pub snippet: String,
}

/// U+0002 and U+0003: around each matched word of a snippet. Content never
/// holds them (`Content::parse` refuses control characters).
pub const MARK_START: char = '\u{2}';
pub const MARK_END: char = '\u{3}';

/// Words a snippet shows at most.
pub const SNIPPET_WORDS: usize = 30;

/// A text with its matches marked, cut to `max_words` words around the
/// first match (a quarter of them before it), with `…` where it was cut:
/// what SQLite's `snippet()` makes, for a backend whose highlighter marks
/// the whole text (PostgreSQL's `ts_headline` with HighlightAll: its own
/// fragments start at the match and drop short words at their edges).
pub fn snippet_window(marked: &str, max_words: usize) -> String {
    // (start, end, inside a mark) of each word, in bytes.
    let mut words: Vec<(usize, usize, bool)> = Vec::new();
    let (mut start, mut in_mark, mut marked_word) = (None, false, false);
    for (i, c) in marked.char_indices() {
        if separates(c) {
            if let Some(s) = start.take() {
                words.push((s, i, marked_word));
            }
            match c {
                MARK_START => in_mark = true,
                MARK_END => in_mark = false,
                _ => {}
            }
        } else if start.is_none() {
            start = Some(i);
            marked_word = in_mark;
        }
    }
    if let Some(s) = start {
        words.push((s, marked.len(), marked_word));
    }
    if words.len() <= max_words.max(1) {
        return marked.to_owned();
    }
    let max_words = max_words.max(1);
    let first = words.iter().position(|w| w.2).unwrap_or(0);
    let to = (first.saturating_sub(max_words / 4) + max_words).min(words.len());
    let from = to - max_words;
    let mut begin = words[from].0;
    if marked[..begin].ends_with(MARK_START) {
        begin -= MARK_START.len_utf8();
    }
    let mut end = words[to - 1].1;
    if marked[end..].starts_with(MARK_END) {
        end += MARK_END.len_utf8();
    }
    let mut out = String::with_capacity(end - begin + 6);
    if from > 0 {
        out.push('…');
    }
    out.push_str(&marked[begin..end]);
    if to < words.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(raw: &str) -> Vec<String> {
        SearchQuery::parse(raw).unwrap().words().to_vec()
    }

    #[test]
    fn words_split_where_the_tokenisers_split() {
        assert_eq!(words("  Café  au lait "), ["Café", "au", "lait"]);
        assert_eq!(words("alice@example.com"), ["alice", "example", "com"]);
        assert_eq!(words("\"a\" OR b* -c:d"), ["a", "OR", "b", "c", "d"]);
        assert_eq!(words("привет, мир!"), ["привет", "мир"]);
        assert_eq!(words("東京タワー"), ["東京タワー"]);
        // Non-ASCII separators stay inside: the database splits them.
        assert_eq!(words("don’t"), ["don’t"]);
        assert_eq!(words("a\u{200b}b"), ["a", "b"]);
        assert_eq!(words("«»  x"), ["x"]);
    }

    #[test]
    fn queries_without_words_are_refused() {
        for (raw, says) in [
            ("", "is required"),
            ("   \t", "blank"),
            ("\u{200b}", "blank"),
            ("?!- ... «»", "punctuation"),
        ] {
            let err = SearchQuery::parse(raw).unwrap_err().to_string();
            assert!(
                err.starts_with("query: ") && err.contains(says),
                "{raw:?}: {err}"
            );
        }
        assert!(SearchQuery::parse(&"é".repeat(256)).is_ok());
        assert!(SearchQuery::parse(&"é".repeat(257)).is_err());
    }

    #[test]
    fn snippets_are_cut_around_the_first_match() {
        let long: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let mut text = long.clone();
        text[50] = "\u{2}needle\u{3}".into();
        let s = snippet_window(&text.join(" "), 30);
        assert!(s.starts_with("…w43 ") && s.ends_with(" w72…"), "{s}");
        assert_eq!(s.split_whitespace().count(), 30);
        assert!(s.contains(" \u{2}needle\u{3} "));
        // Near the start or the end the window moves inside the text.
        text[50] = "w50".into();
        text[1] = "\u{2}x\u{3}".into();
        assert!(snippet_window(&text.join(" "), 30).starts_with("w0 \u{2}x\u{3} w2"));
        text[1] = "w1".into();
        text[99] = "\u{2}end\u{3}".into();
        assert!(snippet_window(&text.join(" "), 30).ends_with(" w98 \u{2}end\u{3}"));
        // A mark at the window's first word is kept whole.
        text[99] = "w99".into();
        text[20] = "\u{2}w20\u{3}".into();
        assert!(snippet_window(&text.join(" "), 8).starts_with("…w18 w19 \u{2}w20"));
        // Short texts come back whole, punctuation and all.
        let short = "Say <b>\u{2}html\u{3}</b> & more";
        assert_eq!(snippet_window(short, 30), short);
    }

    #[test]
    fn limits() {
        assert_eq!(search_limit(0).unwrap(), 20);
        assert_eq!(search_limit(1).unwrap(), 1);
        assert_eq!(search_limit(100).unwrap(), 100);
        assert!(search_limit(101).is_err());
        assert!(search_limit(-1).is_err());
    }

    #[test]
    fn a_cursor_belongs_to_its_scope() {
        let q = SearchQuery::parse("hello world").unwrap();
        let scope = SearchScope {
            query: &q,
            chat_id: None,
            before: None,
            after: Some(5),
            best_first: false,
        };
        let at = SearchPosition::After {
            created_at: 42,
            id: "0192e3a0-1b2c-7d3e-8f40-0123456789ab".into(),
        };
        let cursor = encode_cursor(&scope, &at);
        assert_eq!(decode_cursor(&cursor, &scope).unwrap(), at);
        assert_eq!(decode_cursor("", &scope).unwrap(), SearchPosition::First);

        let other = SearchQuery::parse("hello worlds").unwrap();
        for changed in [
            SearchScope {
                query: &other,
                ..scope
            },
            SearchScope {
                chat_id: Some("x"),
                ..scope
            },
            SearchScope {
                after: None,
                ..scope
            },
            SearchScope {
                before: Some(5),
                after: None,
                ..scope
            },
            SearchScope {
                best_first: true,
                ..scope
            },
        ] {
            let err = decode_cursor(&cursor, &changed).unwrap_err().to_string();
            assert!(err.contains("another search"), "{err}");
        }
        for garbage in ["x", "!!!", &"A".repeat(600), &URL_SAFE_NO_PAD.encode("{}")] {
            let err = decode_cursor(garbage, &scope).unwrap_err().to_string();
            assert!(err.starts_with("cursor: is not"), "{err}");
        }
        let best = SearchScope {
            best_first: true,
            ..scope
        };
        let skip = encode_cursor(&best, &SearchPosition::Skip(40));
        assert_eq!(
            decode_cursor(&skip, &best).unwrap(),
            SearchPosition::Skip(40)
        );
    }
}
