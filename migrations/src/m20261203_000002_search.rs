//! Full-text search over message content (SearchMessages), in the database
//! and kept in step with every send, edit and delete in the same
//! transaction.
//!
//! - SQLite: an FTS5 table with external content (`messages_fts`, the text
//!   stays in `messages` only), keyed by the implicit rowid of `messages`
//!   (a rowid table: its primary key is TEXT, not INTEGER PRIMARY KEY, and
//!   it is not WITHOUT ROWID). Triggers after INSERT, UPDATE OF content and
//!   DELETE run inside the statement that changes the row, so inside its
//!   transaction. Tokenizer `unicode61 remove_diacritics 2`: words are runs
//!   of letters and digits in every script, case and Latin accents folded.
//!   VACUUM may renumber the rowids of such a table: after one, run
//!   `INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')`.
//! - PostgreSQL: a STORED generated `tsvector` column with a GIN index.
//!   Word search with accent folding and ranking is what tsvector does;
//!   trigram (pg_trgm) matches substrings and misspellings, ranks by
//!   similarity and indexes three times the text, none of which a "find the
//!   message with these words" search needs. Configuration
//!   `tidings_search`: the `simple` dictionary (lower-case, no stemming, no
//!   stop words, as in SQLite) after `unaccent`. The default parser reads
//!   `alice@example.com`, URLs, paths, `3.14` and `<b>` tags as one token
//!   (or drops them), where SQLite sees words; `tidings_search_text` turns
//!   the ASCII punctuation that glues such tokens into control characters
//!   (which content never holds, see `domain::text`), so both backends see
//!   the same words, and `tidings_search_untext` turns a headline back.
//!   Nothing reads `messages.search` back but the search query (the entity
//!   does not list it).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE messages_fts USING fts5(\
        content, content='messages', content_rowid='rowid', \
        tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN \
        INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content); \
     END",
    // An external-content FTS5 table forgets a row by being told its old
    // text: the same text that was indexed, which the triggers guarantee.
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN \
        INSERT INTO messages_fts(messages_fts, rowid, content) \
            VALUES ('delete', old.rowid, old.content); \
     END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN \
        INSERT INTO messages_fts(messages_fts, rowid, content) \
            VALUES ('delete', old.rowid, old.content); \
        INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content); \
     END",
    // The messages stored before this migration.
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
];

/// The ASCII punctuation that the PostgreSQL parser glues words with
/// (`@ . / : - + _ ~` make e-mails, hosts, URLs, paths, numbers and
/// hyphenated words; `< > & ; ! " ' = ? # % \` tags, entities and URL
/// parts), and the control characters each becomes, one for one (U+0001,
/// U+0004–U+0008, U+000B, U+000C, U+000E–U+0019: not tab, newline, carriage
/// return, nor U+0002/U+0003, the snippet's marks). The other ASCII
/// punctuation already separates words.
const PUNCT: &str = r#"@./:-+_~<>&;!"'=?#%\"#;
const CODES: &str =
    r"\x01\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19";

fn postgres_up() -> Vec<String> {
    // As an E'' literal, whatever standard_conforming_strings says.
    let punct = PUNCT.replace('\\', r"\\").replace('\'', r"\'");
    vec![
        "CREATE EXTENSION IF NOT EXISTS unaccent".into(),
        "CREATE TEXT SEARCH CONFIGURATION tidings_search (COPY = simple)".into(),
        "ALTER TEXT SEARCH CONFIGURATION tidings_search \
            ALTER MAPPING FOR asciiword, word, numword, asciihword, hword, numhword, \
                hword_asciipart, hword_part, hword_numpart \
            WITH unaccent, simple"
            .into(),
        format!(
            "CREATE FUNCTION tidings_search_text(t text) RETURNS text \
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE \
                AS $$ SELECT translate(t, E'{punct}', E'{CODES}') $$"
        ),
        format!(
            "CREATE FUNCTION tidings_search_untext(t text) RETURNS text \
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE \
                AS $$ SELECT translate(t, E'{CODES}', E'{punct}') $$"
        ),
        // Rewrites the table once, filling the column for every stored
        // message; from then on each INSERT and UPDATE computes it in its
        // own statement.
        "ALTER TABLE messages ADD COLUMN search tsvector \
            GENERATED ALWAYS AS \
            (to_tsvector('tidings_search'::regconfig, tidings_search_text(content))) STORED"
            .into(),
        "CREATE INDEX messages_search_idx ON messages USING gin (search)".into(),
    ]
}

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS messages_search_idx",
    "ALTER TABLE messages DROP COLUMN IF EXISTS search",
    "DROP FUNCTION IF EXISTS tidings_search_untext(text)",
    "DROP FUNCTION IF EXISTS tidings_search_text(text)",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS tidings_search",
    // Created if missing by up(); kept if something else uses it now.
    "DO $$ BEGIN DROP EXTENSION IF EXISTS unaccent; \
        EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$",
];

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements: Vec<String> = match manager.get_database_backend() {
            DbBackend::Postgres => postgres_up(),
            _ => SQLITE_UP.iter().map(|s| (*s).to_owned()).collect(),
        };
        for sql in statements {
            manager.get_connection().execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        for sql in statements {
            manager.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
