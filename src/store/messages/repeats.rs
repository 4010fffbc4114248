//! One idempotency key sent twice within one batch: the first send with
//! the key is stored, the later ones are answered with its message.

use std::collections::HashMap;

use super::{Appended, NewMessage};
use crate::store::{StoreError, StoreResult};

/// In-batch repeats of one sender's key: the first send with the key is
/// stored, the later ones get its message ([`answer_followers`]).
#[derive(Default)]
pub(super) struct Repeats<'a> {
    leaders: HashMap<(&'a str, &'a str), usize>,
    /// `(repeat, first)` positions in the batch.
    pub(super) followers: Vec<(usize, usize)>,
}

impl<'a> Repeats<'a> {
    /// Whether the send at `i` is to be stored: it has no key, or is the
    /// first of the batch with it.
    pub(super) fn is_first(&mut self, i: usize, new: &'a NewMessage) -> bool {
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
pub(super) fn answer_followers(
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
