//! The batch of sends on PostgreSQL: one statement (`append_batch.sql`)
//! instead of eight round trips.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::repeats::{Repeats, answer_followers};
use super::{Appended, NewMessage};
use crate::store::entities::attachments_column;
use crate::store::{Store, StoreError, StoreResult};

/// One message of a batch as [`APPEND_BATCH`] reads it (JSON).
#[derive(serde::Serialize)]
struct BatchRow<'a> {
    ord: usize,
    id: &'a str,
    chat_id: &'a str,
    sender_id: &'a str,
    key: Option<&'a str>,
    content: &'a str,
    created_at: i64,
    reply_to_id: Option<&'a str>,
    /// Space-separated user ids ("" for none).
    mentions: String,
    /// The attachments column ("" for none).
    attachments: String,
    /// Space-separated file ids, in order ("" for none).
    files: String,
}

/// The batch statement. Its text never changes, so each connection prepares
/// it once; the batch is one JSON parameter ([`BatchRow`]s).
const APPEND_BATCH: &str = include_str!("append_batch.sql");

impl Store {
    /// [`Store::append_batch`] on PostgreSQL: the whole batch in one
    /// statement ([`APPEND_BATCH`]), so one round trip instead of eight
    /// (three reads, BEGIN, three writes, COMMIT), each of which waited for
    /// a PostgreSQL backend to be scheduled on a busy machine. The batch is
    /// one JSON parameter, so the statement text never changes and each
    /// connection prepares it once.
    ///
    /// The statement inserts the messages whose sender is a member and
    /// whose key is not stored yet; the rest (rare: a retry that the
    /// idempotency cache lost, a sender who left) are sorted out afterwards.
    pub(super) async fn append_batch_postgres(
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
                    reply_to_id: n.reply_to_id.as_deref(),
                    mentions: n.mentions.join(" "),
                    attachments: attachments_column(&n.attachments),
                    files: n
                        .attachments
                        .iter()
                        .map(|a| a.id.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                }
            })
            .collect();
        let json = serde_json::to_string(&input)
            .map_err(|e| StoreError::Other(sea_orm::DbErr::Custom(e.to_string())))?;
        let stmt = Statement::from_sql_and_values(DbBackend::Postgres, APPEND_BATCH, [json.into()]);
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

    /// Why the messages at `left` were not inserted by [`APPEND_BATCH`],
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
}
