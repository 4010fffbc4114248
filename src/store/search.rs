//! Full-text search over the messages of one user's chats: SQLite FTS5
//! (`messages_fts`) or PostgreSQL's `messages.search` tsvector with its GIN
//! index, both made by migration `m20261203_000002_search`.
//!
//! One statement per page, in two steps: the inner query finds the page
//! (matches in the caller's chats, joined to `chat_members` so the index
//! scan is restricted there and not filtered afterwards; deleted messages
//! and senders the caller blocked left out; ordered and cut to the page),
//! the outer one makes the snippets of that page only, since a snippet
//! re-reads and re-tokenises the content.
//!
//! The query text never becomes SQL: each word is bound as a parameter
//! inside one MATCH string or tsquery of double-quoted (FTS5) or quoted
//! (tsquery) terms, quotes doubled, so the database's own tokeniser splits
//! each exactly as it split the content, and operators typed by a user are
//! only text.

use sea_orm::{
    ConnectionTrait, DbBackend, FromQueryResult, IdenStatic, Iterable, Statement, Value,
};

use super::entities::message;
use super::{Store, StoreResult};
use crate::domain::Message;
use crate::domain::search::{SNIPPET_WORDS, SearchPosition, snippet_window};

/// One search, as the store runs it.
#[derive(Debug, Clone)]
pub struct SearchFilter<'a> {
    pub caller: &'a str,
    /// At least one; the last one matches as a prefix too.
    pub words: &'a [String],
    pub chat_id: Option<&'a str>,
    /// Only messages with `after < created_at < before`.
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// Rank (bm25 / ts_rank) first, then newest; else newest first.
    pub best_first: bool,
    /// `After` for newest first, `Skip` for best first.
    pub position: &'a SearchPosition,
    pub limit: u64,
}

/// A message that matched, with what a hit shows.
#[derive(Debug, Clone)]
pub struct Found {
    pub message: Message,
    pub chat_name: String,
    pub chat_is_group: bool,
    /// Marked with U+0002 / U+0003 around each matched word.
    pub snippet: String,
}

/// The FTS5 MATCH string: `"w1" "w2" "w3"*` (implicit AND; the last term
/// a prefix).
fn fts5_match(words: &[String]) -> String {
    let last = words.len().saturating_sub(1);
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let star = if i == last { "*" } else { "" };
            format!("\"{}\"{star}", w.replace('"', "\"\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of a tsquery for `to_tsquery`: `'w1' & 'w2':*`. Inside quotes
/// a backslash escapes, so it is doubled like the quote.
fn tsquery(words: &[String]) -> String {
    let last = words.len().saturating_sub(1);
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let star = if i == last { ":*" } else { "" };
            format!("'{}'{star}", w.replace('\\', "\\\\").replace('\'', "''"))
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// SQL text with its parameters, numbered as the backend wants them.
struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.values.push(v.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// The conditions every backend shares, on `m` (a message) and `cm`
    /// (the caller's membership), after a WHERE.
    fn filters(&mut self, f: &SearchFilter<'_>) {
        let caller = self.bind(f.caller);
        self.push(&format!(
            " AND m.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM blocks b \
               WHERE b.blocker_id = {caller} AND b.blocked_id = m.sender_id)"
        ));
        if let Some(chat_id) = f.chat_id {
            let p = self.bind(chat_id);
            self.push(&format!(" AND m.chat_id = {p}"));
        }
        if let Some(before) = f.before {
            let p = self.bind(before);
            self.push(&format!(" AND m.created_at < {p}"));
        }
        if let Some(after) = f.after {
            let p = self.bind(after);
            self.push(&format!(" AND m.created_at > {p}"));
        }
        if let (false, SearchPosition::After { created_at, id }) = (f.best_first, f.position) {
            let (t1, t2, i) = (
                self.bind(*created_at),
                self.bind(*created_at),
                self.bind(id),
            );
            self.push(&format!(
                " AND (m.created_at < {t1} OR (m.created_at = {t2} AND m.id < {i}))"
            ));
        }
    }

    /// ORDER BY, LIMIT and OFFSET of the inner query. The numbers are ours
    /// (a u64 each), written as literals so the plan keeps them.
    fn page(&mut self, f: &SearchFilter<'_>, rank: &str) {
        let skip = match (f.best_first, f.position) {
            (true, SearchPosition::Skip(n)) => *n,
            _ => 0,
        };
        let order = if f.best_first {
            format!("{rank}, m.created_at DESC, m.id DESC")
        } else {
            "m.created_at DESC, m.id DESC".to_owned()
        };
        self.push(&format!(
            " ORDER BY {order} LIMIT {} OFFSET {skip}",
            f.limit
        ));
    }
}

/// `m."id", m."chat_id", …`: the entity's columns, whatever they are
/// (never `messages.search`, which only the query reads).
fn message_columns() -> String {
    message::Column::iter()
        .map(|c| format!("m.\"{}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Up to `limit` messages of the caller's chats matching every word,
    /// in the order asked, with snippets.
    pub async fn search_messages(&self, f: &SearchFilter<'_>) -> StoreResult<Vec<Found>> {
        let backend = self.conn().get_database_backend();
        let mut sql = Sql {
            backend,
            text: String::new(),
            values: Vec::new(),
        };
        match backend {
            DbBackend::Postgres => postgres(&mut sql, f),
            _ => sqlite(&mut sql, f),
        }
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(
                backend, sql.text, sql.values,
            ))
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let message = Message::from(message::Model::from_query_result(&row, "")?);
            let snippet: String = row.try_get("", "snippet")?;
            let snippet = if backend == DbBackend::Postgres {
                snippet_window(&snippet, SNIPPET_WORDS)
            } else {
                snippet
            };
            found.push(Found {
                chat_name: row.try_get("", "chat_name")?,
                chat_is_group: row.try_get("", "chat_is_group")?,
                snippet,
                message,
            });
        }
        Ok(found)
    }
}

/// SQLite: the page from `messages_fts` (bm25: lower is better), then
/// `snippet()` of the FTS5 row, which needs the MATCH again. Tokens, not
/// words, are counted: 30 of them, `…` where the content goes on.
///
/// CROSS JOIN fixes the join order (SQLite never reorders it): the FTS
/// index drives, each match is looked up by rowid and kept if the caller
/// is a member. Left to itself the planner of the bundled SQLite starts
/// from the caller's memberships and runs the full-text query once per
/// message of their chats, which cost 220 ms for a word that occurs
/// nowhere (100,000 messages, a user in 25 rooms; see docs/BENCHMARKS.md).
fn sqlite(sql: &mut Sql, f: &SearchFilter<'_>) {
    let columns = message_columns();
    let caller = sql.bind(f.caller);
    let matched = sql.bind(fts5_match(f.words));
    sql.push(&format!(
        "SELECT {columns}, c.name AS chat_name, c.is_group AS chat_is_group, \
           snippet(messages_fts, 0, char(2), char(3), '…', 30) AS snippet \
         FROM (SELECT m.rowid AS hit_rowid, m.created_at AS hit_at, m.id AS hit_id, \
                 bm25(messages_fts) AS hit_rank \
               FROM messages_fts \
               CROSS JOIN messages m ON m.rowid = messages_fts.rowid \
               CROSS JOIN chat_members cm ON cm.chat_id = m.chat_id AND cm.user_id = {caller} \
               WHERE messages_fts MATCH {matched}"
    ));
    sql.filters(f);
    sql.page(f, "bm25(messages_fts)");
    let matched = sql.bind(fts5_match(f.words));
    let order = if f.best_first {
        "hits.hit_rank, hits.hit_at DESC, hits.hit_id DESC"
    } else {
        "hits.hit_at DESC, hits.hit_id DESC"
    };
    sql.push(&format!(
        ") AS hits \
         CROSS JOIN messages_fts ON messages_fts.rowid = hits.hit_rowid \
         CROSS JOIN messages m ON m.rowid = hits.hit_rowid \
         CROSS JOIN chats c ON c.id = m.chat_id \
         WHERE messages_fts MATCH {matched} \
         ORDER BY {order}"
    ));
}

/// PostgreSQL: the page from the GIN index (ts_rank: higher is better,
/// normalised by the log of the length like bm25 is by length), then
/// `ts_headline` on the same punctuation-free text the index was made from
/// (so it marks the same words, and never reads `<b>` as a tag), turned
/// back into the content's own characters; it marks the whole text, and
/// [`snippet_window`] cuts the words around the first match, as SQLite's
/// `snippet()` does (ts_headline's own fragments start at the match and
/// drop short words at their edges).
fn postgres(sql: &mut Sql, f: &SearchFilter<'_>) {
    let columns = message_columns();
    let caller = sql.bind(f.caller);
    let query = sql.bind(tsquery(f.words));
    sql.push(&format!(
        "SELECT {columns}, c.name AS chat_name, c.is_group AS chat_is_group, \
           tidings_search_untext(ts_headline('tidings_search', \
             tidings_search_text(m.content), hits.q, \
             'StartSel=' || chr(2) || ', StopSel=' || chr(3) || ', HighlightAll=true')) \
           AS snippet \
         FROM (SELECT m.id AS hit_id, m.created_at AS hit_at, q.q, \
                 ts_rank(m.search, q.q, 1) AS hit_rank \
               FROM (SELECT to_tsquery('tidings_search', {query}) AS q) AS q \
               JOIN messages m ON m.search @@ q.q \
               JOIN chat_members cm ON cm.chat_id = m.chat_id AND cm.user_id = {caller} \
               WHERE TRUE"
    ));
    sql.filters(f);
    sql.page(f, "ts_rank(m.search, q.q, 1) DESC");
    let order = if f.best_first {
        "hits.hit_rank DESC, hits.hit_at DESC, hits.hit_id DESC"
    } else {
        "hits.hit_at DESC, hits.hit_id DESC"
    };
    sql.push(&format!(
        ") AS hits \
         JOIN messages m ON m.id = hits.hit_id \
         JOIN chats c ON c.id = m.chat_id \
         ORDER BY {order}"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn terms_are_quoted_and_the_last_is_a_prefix() {
        assert_eq!(fts5_match(&w(&["café"])), r#""café"*"#);
        assert_eq!(
            fts5_match(&w(&["a\"b", "NEAR", "c"])),
            r#""a""b" "NEAR" "c"*"#
        );
        assert_eq!(tsquery(&w(&["café"])), "'café':*");
        assert_eq!(
            tsquery(&w(&["o'neil", r"a\b", "x"])),
            r"'o''neil' & 'a\\b' & 'x':*"
        );
    }
}
