//! Messages: the send transaction, idempotency look-ups and reads by seq.

use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use std::collections::{HashMap, HashSet};

use super::entities::{chat, chat_member, message, user};
use super::{Store, StoreError, StoreResult};

pub use message::Model as Message;

/// A message to store; `seq` is assigned by [`Store::append_message`] or
/// [`Store::append_batch`].
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: String,
    pub chat_id: String,
    pub sender_id: String,
    pub idempotency_key: Option<String>,
    pub content: String,
    pub created_at: i64,
}

impl NewMessage {
    /// The row this message becomes with `seq`.
    fn stored_as(&self, seq: i64) -> Message {
        Message {
            id: self.id.clone(),
            chat_id: self.chat_id.clone(),
            seq,
            sender_id: self.sender_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            content: self.content.clone(),
            created_at: self.created_at,
        }
    }
}

/// What became of one message of [`Store::append_batch`].
#[derive(Clone, Debug)]
pub enum Appended {
    /// Stored now, with this seq; `username` is the sender's.
    Inserted { message: Message, username: String },
    /// The sender's idempotency key was already used: the stored message
    /// (which may differ in chat or content; the caller decides).
    Existing(Message),
    /// The sender is not a member of the chat (or there is no such chat).
    NotMember,
    /// The sender's user row is gone.
    UnknownSender,
}

/// In-batch repeats of one sender's key: the first send with the key is
/// stored, the later ones get its message ([`answer_followers`]).
#[derive(Default)]
struct Repeats<'a> {
    leaders: HashMap<(&'a str, &'a str), usize>,
    /// `(repeat, first)` positions in the batch.
    followers: Vec<(usize, usize)>,
}

impl<'a> Repeats<'a> {
    /// Whether the send at `i` is to be stored: it has no key, or is the
    /// first of the batch with it.
    fn is_first(&mut self, i: usize, new: &'a NewMessage) -> bool {
        let Some(key) = new.idempotency_key.as_deref() else {
            return true;
        };
        match self.leaders.entry((new.sender_id.as_str(), key)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                self.followers.push((i, *e.get()));
                false
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
                true
            }
        }
    }
}

/// Gives each in-batch repeat of a key (`(repeat, first)` in `followers`)
/// the first one's message, and unwraps the batch's answers.
fn answer_followers(
    mut out: Vec<Option<StoreResult<Appended>>>,
    followers: &[(usize, usize)],
) -> Vec<StoreResult<Appended>> {
    for &(i, leader) in followers {
        out[i] = Some(match &out[leader] {
            Some(Ok(Appended::Inserted { message, .. }) | Ok(Appended::Existing(message))) => {
                Ok(Appended::Existing(message.clone()))
            }
            _ => Err(StoreError::Other(sea_orm::DbErr::Custom(
                "the first send with this idempotency key failed".into(),
            ))),
        });
    }
    out.into_iter()
        .map(|o| o.expect("every message of the batch has an outcome"))
        .collect()
}

/// One message of a batch as [`PG_APPEND_BATCH`] reads it (JSON).
#[derive(serde::Serialize)]
struct BatchRow<'a> {
    ord: usize,
    id: &'a str,
    chat_id: &'a str,
    sender_id: &'a str,
    key: Option<&'a str>,
    content: &'a str,
    created_at: i64,
}

/// A whole batch in one PostgreSQL statement. `$1` is a JSON array of
/// [`BatchRow`]s. Rows whose sender is a member (and exists) and whose key
/// is not stored yet are inserted: each chat's `last_seq` moves up by its
/// count, the rows take the seqs in between in batch order (`ord`), and
/// each sender's watermarks move to their newest message. Data-modifying
/// `WITH` parts run exactly once and all see one snapshot; the statement is
/// its own transaction, so a unique violation (a key stored concurrently)
/// undoes all of it. Returns `ord`, `seq` and the sender's `username` of
/// every inserted row.
const PG_APPEND_BATCH: &str = r#"
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS i(
        ord bigint, id text, chat_id text, sender_id text, key text,
        content text, created_at bigint)
), ok AS (
    SELECT i.*, u.username
    FROM input i
    JOIN chat_members m ON m.chat_id = i.chat_id AND m.user_id = i.sender_id
    JOIN users u ON u.id = i.sender_id
    -- A lookup per row in the (sender_id, idempotency_key) index; written
    -- as `key IS NULL OR NOT EXISTS (...)` the planner hashed the whole
    -- messages table instead.
    LEFT JOIN LATERAL (
        SELECT 1 AS found FROM messages x
        WHERE x.sender_id = i.sender_id AND x.idempotency_key = i.key
        LIMIT 1) s ON true
    WHERE s.found IS NULL
), counts AS (
    SELECT chat_id, count(*) AS n, max(created_at) AS at FROM ok GROUP BY chat_id
), bumped AS (
    UPDATE chats c SET last_seq = c.last_seq + counts.n, last_activity_at = counts.at
    FROM counts WHERE c.id = counts.chat_id
    RETURNING c.id, c.last_seq - counts.n AS base
), numbered AS (
    SELECT ok.*, b.base + row_number() OVER (PARTITION BY ok.chat_id ORDER BY ok.ord) AS seq
    FROM ok JOIN bumped b ON b.id = ok.chat_id
), inserted AS (
    INSERT INTO messages (id, chat_id, seq, sender_id, idempotency_key, content, created_at)
    SELECT id, chat_id, seq, sender_id, key, content, created_at FROM numbered
    RETURNING id
), marks AS (
    UPDATE chat_members m SET delivered_seq = w.seq, read_seq = w.seq
    FROM (SELECT chat_id, sender_id, max(seq) AS seq FROM numbered GROUP BY chat_id, sender_id) w
    WHERE m.chat_id = w.chat_id AND m.user_id = w.sender_id
    RETURNING m.user_id
)
SELECT n.ord, n.seq, n.username FROM numbered n
"#;

/// Which slice of a chat's history to read.
#[derive(Clone, Copy, Debug)]
pub enum Window {
    /// Newest first, skipping `offset` messages.
    Newest { offset: u64 },
    /// Newest first, only `seq < before`.
    Before(i64),
    /// Oldest first, only `seq > after`.
    After(i64),
}

impl Store {
    /// Appends a message: takes the chat's next seq, inserts the row and moves
    /// the sender's own watermarks to it, all in one transaction. The first
    /// statement is a write (the seq bump), which also serialises concurrent
    /// sends to one chat on the chat row. A duplicate (sender, key) rolls the
    /// whole transaction back, so the seq is not consumed.
    pub async fn append_message(&self, new: NewMessage) -> StoreResult<Message> {
        let txn = self.conn().begin().await?;
        let bumped = chat::Entity::update_many()
            .col_expr(
                chat::Column::LastSeq,
                Expr::col(chat::Column::LastSeq).add(1),
            )
            .col_expr(chat::Column::LastActivityAt, Expr::value(new.created_at))
            .filter(chat::Column::Id.eq(new.chat_id.as_str()))
            .exec_with_returning(&txn)
            .await?;
        let Some(chat) = bumped.into_iter().next() else {
            txn.rollback().await?;
            return Err(StoreError::Other(sea_orm::DbErr::RecordNotFound(
                "chat".into(),
            )));
        };
        let seq = chat.last_seq;
        let row = Message {
            id: new.id,
            chat_id: new.chat_id,
            seq,
            sender_id: new.sender_id,
            idempotency_key: new.idempotency_key,
            content: new.content,
            created_at: new.created_at,
        };
        let inserted = match row.into_active_model().insert(&txn).await {
            Ok(m) => m,
            Err(err) => {
                txn.rollback().await?;
                return Err(err.into());
            }
        };
        // Sending implies having seen the chat up to one's own message.
        chat_member::Entity::update_many()
            .col_expr(chat_member::Column::DeliveredSeq, Expr::value(seq))
            .col_expr(chat_member::Column::ReadSeq, Expr::value(seq))
            .filter(chat_member::Column::ChatId.eq(inserted.chat_id.as_str()))
            .filter(chat_member::Column::UserId.eq(inserted.sender_id.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(inserted)
    }

    /// Appends a batch of messages in one transaction (group commit): one
    /// seq bump per chat (`last_seq + n`), one multi-row insert, one
    /// watermark update per (chat, sender), one commit. Each message gets its
    /// own outcome, in the batch's order; seqs follow the batch's order
    /// within each chat.
    ///
    /// Checked before the transaction, in one query each for the whole
    /// batch: membership of the sender, the sender's username, and the
    /// idempotency keys already stored. A key repeated inside the batch is
    /// inserted once: the later ones get the first one's message as
    /// [`Appended::Existing`]. If the insert still hits the unique index (a
    /// concurrent insert by another node), the batch is rolled back and
    /// every message is appended on its own, so each answer stays exact.
    ///
    /// An `Err` means the whole batch failed and nothing was stored.
    pub async fn append_batch(
        &self,
        batch: &[NewMessage],
    ) -> StoreResult<Vec<StoreResult<Appended>>> {
        if self.conn().get_database_backend() == DbBackend::Postgres {
            return self.append_batch_postgres(batch).await;
        }
        let members = self.memberships(batch.iter()).await?;

        let mut senders: Vec<&str> = batch.iter().map(|n| n.sender_id.as_str()).collect();
        senders.sort_unstable();
        senders.dedup();
        let names = self.usernames(&senders).await?;

        let mut keyed: Vec<(&str, &str)> = batch
            .iter()
            .filter_map(|n| {
                n.idempotency_key
                    .as_deref()
                    .map(|k| (n.sender_id.as_str(), k))
            })
            .collect();
        keyed.sort_unstable();
        keyed.dedup();
        let mut stored: HashMap<(String, String), Message> = HashMap::new();
        if !keyed.is_empty() {
            let found = message::Entity::find()
                .filter(keyed.iter().fold(Condition::any(), |c, (sender, key)| {
                    c.add(
                        Condition::all()
                            .add(message::Column::SenderId.eq(*sender))
                            .add(message::Column::IdempotencyKey.eq(*key)),
                    )
                }))
                .all(self.conn())
                .await?;
            for m in found {
                if let Some(key) = m.idempotency_key.clone() {
                    stored.insert((m.sender_id.clone(), key), m);
                }
            }
        }

        // Sort the batch: answered now, a repeat of an earlier one, or new.
        let mut out: Vec<Option<StoreResult<Appended>>> = batch.iter().map(|_| None).collect();
        let mut repeats = Repeats::default();
        let mut fresh: Vec<usize> = Vec::new();
        for (i, new) in batch.iter().enumerate() {
            if !members.contains(&(new.chat_id.clone(), new.sender_id.clone())) {
                out[i] = Some(Ok(Appended::NotMember));
                continue;
            }
            if !names.contains_key(&new.sender_id) {
                out[i] = Some(Ok(Appended::UnknownSender));
                continue;
            }
            if let Some(key) = new.idempotency_key.as_deref()
                && let Some(m) = stored.get(&(new.sender_id.clone(), key.to_owned()))
            {
                out[i] = Some(Ok(Appended::Existing(m.clone())));
                continue;
            }
            if repeats.is_first(i, new) {
                fresh.push(i);
            }
        }

        if !fresh.is_empty() {
            match self.insert_batch(batch, &fresh, &names).await {
                Ok(results) => {
                    for (i, r) in fresh.iter().zip(results) {
                        out[*i] = Some(r);
                    }
                }
                Err(StoreError::Conflict(_)) => {
                    // Another node stored one of these keys meanwhile: one
                    // by one, each answer from its own transaction.
                    for &i in &fresh {
                        out[i] = Some(self.append_one(&batch[i], &names).await);
                    }
                }
                Err(e) => return Err(e),
            }
        }

        Ok(answer_followers(out, &repeats.followers))
    }

    /// The transaction of [`Store::append_batch`] for the messages at
    /// `fresh` (members, known senders, keys not stored yet).
    async fn insert_batch(
        &self,
        batch: &[NewMessage],
        fresh: &[usize],
        names: &HashMap<String, String>,
    ) -> StoreResult<Vec<StoreResult<Appended>>> {
        // Chats in order of first appearance, with how many seqs each takes.
        let mut chats: Vec<(&str, i64, i64)> = Vec::new();
        for &i in fresh {
            let n = &batch[i];
            match chats.iter_mut().find(|(c, _, _)| *c == n.chat_id) {
                Some((_, count, at)) => {
                    *count += 1;
                    *at = std::cmp::max(*at, n.created_at);
                }
                None => chats.push((&n.chat_id, 1, n.created_at)),
            }
        }
        let txn = self.conn().begin().await?;
        // Writes first (SQLite: the transaction takes the write lock at
        // once instead of upgrading a read lock).
        // One statement for every chat of the batch:
        // last_seq = last_seq + CASE id WHEN .. THEN n .. END.
        let (bump, active) = chats.iter().fold(
            (CaseStatement::new(), CaseStatement::new()),
            |(bump, active), (chat_id, count, at)| {
                (
                    bump.case(chat::Column::Id.eq(*chat_id), Expr::val(*count)),
                    active.case(chat::Column::Id.eq(*chat_id), Expr::val(*at)),
                )
            },
        );
        let bumped = chat::Entity::update_many()
            .col_expr(
                chat::Column::LastSeq,
                Expr::col(chat::Column::LastSeq).add(bump.finally(Expr::val(0i64))),
            )
            .col_expr(
                chat::Column::LastActivityAt,
                active
                    .finally(Expr::col(chat::Column::LastActivityAt))
                    .into(),
            )
            .filter(chat::Column::Id.is_in(chats.iter().map(|(c, _, _)| *c)))
            .exec_with_returning(&txn)
            .await;
        let bumped = match bumped {
            Ok(rows) => rows,
            Err(e) => {
                txn.rollback().await?;
                return Err(e.into());
            }
        };
        // The first seq each chat hands out in this batch.
        let mut next_seq: HashMap<&str, i64> = HashMap::new();
        for chat in &bumped {
            if let Some((chat_id, count, _)) = chats.iter().find(|(c, _, _)| *c == chat.id) {
                next_seq.insert(chat_id, chat.last_seq - count + 1);
            }
        }
        let mut rows: Vec<Option<Message>> = Vec::with_capacity(fresh.len());
        for &i in fresh {
            let n = &batch[i];
            rows.push(next_seq.get_mut(n.chat_id.as_str()).map(|seq| {
                let row = n.stored_as(*seq);
                *seq += 1;
                row
            }));
        }
        let inserted = message::Entity::insert_many(
            rows.iter()
                .flatten()
                .cloned()
                .map(IntoActiveModel::into_active_model),
        )
        .exec_without_returning(&txn)
        .await;
        if let Err(e) = inserted {
            txn.rollback().await?;
            return Err(e.into());
        }
        // Sending implies having seen the chat up to one's own message.
        let mut seen: Vec<(&str, &str, i64)> = Vec::new();
        for m in rows.iter().flatten() {
            match seen
                .iter_mut()
                .find(|(c, u, _)| *c == m.chat_id && *u == m.sender_id)
            {
                Some((_, _, seq)) => *seq = std::cmp::max(*seq, m.seq),
                None => seen.push((&m.chat_id, &m.sender_id, m.seq)),
            }
        }
        if !seen.is_empty() {
            let this = |chat_id: &str, user_id: &str| {
                Condition::all()
                    .add(chat_member::Column::ChatId.eq(chat_id))
                    .add(chat_member::Column::UserId.eq(user_id))
            };
            let to = seen
                .iter()
                .fold(CaseStatement::new(), |case, (chat_id, user_id, seq)| {
                    case.case(this(chat_id, user_id), Expr::val(*seq))
                });
            let moved = chat_member::Entity::update_many()
                .col_expr(
                    chat_member::Column::DeliveredSeq,
                    to.clone()
                        .finally(Expr::col(chat_member::Column::DeliveredSeq))
                        .into(),
                )
                .col_expr(
                    chat_member::Column::ReadSeq,
                    to.finally(Expr::col(chat_member::Column::ReadSeq)).into(),
                )
                .filter(
                    seen.iter()
                        .fold(Condition::any(), |c, (chat_id, user_id, _)| {
                            c.add(this(chat_id, user_id))
                        }),
                )
                .exec(&txn)
                .await;
            if let Err(e) = moved {
                txn.rollback().await?;
                return Err(e.into());
            }
        }
        txn.commit().await?;
        Ok(rows
            .into_iter()
            .map(|row| match row {
                Some(message) => Ok(Appended::Inserted {
                    username: names.get(&message.sender_id).cloned().unwrap_or_default(),
                    message,
                }),
                None => Err(StoreError::Other(sea_orm::DbErr::RecordNotFound(
                    "chat".into(),
                ))),
            })
            .collect())
    }

    /// [`Store::append_batch`] on PostgreSQL: the whole batch in one
    /// statement ([`PG_APPEND_BATCH`]), so one round trip instead of eight
    /// (three reads, BEGIN, three writes, COMMIT), each of which waited for
    /// a PostgreSQL backend to be scheduled on a busy machine. The batch is
    /// one JSON parameter, so the statement text never changes and each
    /// connection prepares it once.
    ///
    /// The statement inserts the messages whose sender is a member and
    /// whose key is not stored yet; the rest (rare: a retry that the
    /// idempotency cache lost, a sender who left) are sorted out afterwards.
    async fn append_batch_postgres(
        &self,
        batch: &[NewMessage],
    ) -> StoreResult<Vec<StoreResult<Appended>>> {
        let mut out: Vec<Option<StoreResult<Appended>>> = batch.iter().map(|_| None).collect();
        // A key repeated inside the batch is inserted once (the first).
        let mut repeats = Repeats::default();
        let mut fresh: Vec<usize> = Vec::new();
        for (i, new) in batch.iter().enumerate() {
            if repeats.is_first(i, new) {
                fresh.push(i);
            }
        }
        let input: Vec<BatchRow<'_>> = fresh
            .iter()
            .map(|&i| {
                let n = &batch[i];
                BatchRow {
                    ord: i,
                    id: &n.id,
                    chat_id: &n.chat_id,
                    sender_id: &n.sender_id,
                    key: n.idempotency_key.as_deref(),
                    content: &n.content,
                    created_at: n.created_at,
                }
            })
            .collect();
        let json = serde_json::to_string(&input)
            .map_err(|e| StoreError::Other(sea_orm::DbErr::Custom(e.to_string())))?;
        let stmt =
            Statement::from_sql_and_values(DbBackend::Postgres, PG_APPEND_BATCH, [json.into()]);
        match self.conn().query_all_raw(stmt).await {
            Ok(rows) => {
                for row in rows {
                    let ord: i64 = row.try_get("", "ord")?;
                    let seq: i64 = row.try_get("", "seq")?;
                    let username: String = row.try_get("", "username")?;
                    let Some(i) = usize::try_from(ord).ok().filter(|&i| i < batch.len()) else {
                        continue;
                    };
                    out[i] = Some(Ok(Appended::Inserted {
                        message: batch[i].stored_as(seq),
                        username,
                    }));
                }
                let left: Vec<usize> = fresh.into_iter().filter(|&i| out[i].is_none()).collect();
                if !left.is_empty() {
                    let answers = self.classify_not_inserted(batch, &left).await?;
                    for (i, a) in left.into_iter().zip(answers) {
                        out[i] = Some(Ok(a));
                    }
                }
            }
            Err(e) => match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    // Another node (or committer) stored one of these keys
                    // meanwhile: one by one, each answer from its own
                    // transaction.
                    let mut senders: Vec<&str> =
                        fresh.iter().map(|&i| batch[i].sender_id.as_str()).collect();
                    senders.sort_unstable();
                    senders.dedup();
                    let names = self.usernames(&senders).await?;
                    for &i in &fresh {
                        out[i] = Some(self.append_one(&batch[i], &names).await);
                    }
                }
                e => return Err(e),
            },
        }
        Ok(answer_followers(out, &repeats.followers))
    }

    /// Why the messages at `left` were not inserted by [`PG_APPEND_BATCH`],
    /// in the order the general path checks: membership, the sender's row,
    /// then a stored idempotency key.
    async fn classify_not_inserted(
        &self,
        batch: &[NewMessage],
        left: &[usize],
    ) -> StoreResult<Vec<Appended>> {
        let members = self.memberships(left.iter().map(|&i| &batch[i])).await?;
        let mut out = Vec::with_capacity(left.len());
        for &i in left {
            let n = &batch[i];
            if !members.contains(&(n.chat_id.clone(), n.sender_id.clone())) {
                out.push(Appended::NotMember);
                continue;
            }
            let stored = match n.idempotency_key.as_deref() {
                Some(key) => self.message_by_sender_key(&n.sender_id, key).await?,
                None => None,
            };
            out.push(match stored {
                Some(m) => Appended::Existing(m),
                None => Appended::UnknownSender,
            });
        }
        Ok(out)
    }

    /// Which (chat, sender) pairs of these messages are memberships.
    async fn memberships<'a>(
        &self,
        messages: impl Iterator<Item = &'a NewMessage>,
    ) -> StoreResult<HashSet<(String, String)>> {
        let mut pairs: Vec<(&str, &str)> = messages
            .map(|n| (n.chat_id.as_str(), n.sender_id.as_str()))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        Ok(chat_member::Entity::find()
            .filter(pairs.iter().fold(Condition::any(), |c, (chat, user)| {
                c.add(
                    Condition::all()
                        .add(chat_member::Column::ChatId.eq(*chat))
                        .add(chat_member::Column::UserId.eq(*user)),
                )
            }))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|m| (m.chat_id, m.user_id))
            .collect())
    }

    /// Usernames of these users, by id.
    async fn usernames(&self, ids: &[&str]) -> StoreResult<HashMap<String, String>> {
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .all(self.conn())
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect())
    }

    /// One message in its own transaction, a stored key answered with the
    /// stored message (the slow path of [`Store::append_batch`]).
    async fn append_one(
        &self,
        new: &NewMessage,
        names: &HashMap<String, String>,
    ) -> StoreResult<Appended> {
        match self.append_message(new.clone()).await {
            Ok(message) => Ok(Appended::Inserted {
                username: names.get(&message.sender_id).cloned().unwrap_or_default(),
                message,
            }),
            Err(StoreError::Conflict(text)) => {
                let key = new.idempotency_key.as_deref().unwrap_or_default();
                match self.message_by_sender_key(&new.sender_id, key).await? {
                    Some(m) => Ok(Appended::Existing(m)),
                    None => Err(StoreError::Conflict(text)),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn message_by_sender_key(
        &self,
        sender_id: &str,
        key: &str,
    ) -> StoreResult<Option<Message>> {
        Ok(message::Entity::find()
            .filter(message::Column::SenderId.eq(sender_id))
            .filter(message::Column::IdempotencyKey.eq(key))
            .all(self.conn())
            .await?
            .into_iter()
            .next())
    }

    pub async fn message_by_id(&self, id: &str) -> StoreResult<Option<Message>> {
        Ok(message::Entity::find_by_id(id.to_owned())
            .all(self.conn())
            .await?
            .into_iter()
            .next())
    }

    /// Up to `limit` messages of a chat in the given window.
    pub async fn messages(
        &self,
        chat_id: &str,
        window: Window,
        limit: u64,
    ) -> StoreResult<Vec<Message>> {
        let q = message::Entity::find().filter(message::Column::ChatId.eq(chat_id));
        let q = match window {
            Window::Newest { offset } => q.order_by_desc(message::Column::Seq).offset(offset),
            Window::Before(before) => q
                .filter(message::Column::Seq.lt(before))
                .order_by_desc(message::Column::Seq),
            Window::After(after) => q
                .filter(message::Column::Seq.gt(after))
                .order_by_asc(message::Column::Seq),
        };
        Ok(q.limit(limit).all(self.conn()).await?)
    }

    /// Messages with `from <= seq < to`, oldest first: gap fill for streams.
    pub async fn messages_between(
        &self,
        chat_id: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<Message>> {
        Ok(message::Entity::find()
            .filter(
                Condition::all()
                    .add(message::Column::ChatId.eq(chat_id))
                    .add(message::Column::Seq.gte(from))
                    .add(message::Column::Seq.lt(to)),
            )
            .order_by_asc(message::Column::Seq)
            .all(self.conn())
            .await?)
    }
}
