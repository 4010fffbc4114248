//! The in-process hub: one bounded broadcast channel per chat with at least
//! one subscriber.
//!
//! Why broadcast: one event is stored once and shared (`Arc`) by every
//! subscriber of the chat, and a slow subscriber cannot hold the others back —
//! it gets `Lagged` and catches up from storage instead. Why a std `Mutex`:
//! it guards a map look-up and is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use crate::store::messages::Message;

/// What travels through the hub. Built once per event, shared by reference.
#[derive(Debug)]
pub enum Event {
    Message {
        message: Message,
        sender_username: String,
    },
}

impl Event {
    pub fn chat_id(&self) -> &str {
        match self {
            Event::Message { message, .. } => &message.chat_id,
        }
    }
}

/// Per-chat channel capacity. A subscriber more than this many events behind
/// is told it lagged and reads the rest from storage.
pub const CHANNEL_CAPACITY: usize = 1024;

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    chats: Mutex<HashMap<String, broadcast::Sender<Arc<Event>>>>,
    subscribers: watch::Sender<usize>,
    capacity: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::with_capacity(CHANNEL_CAPACITY)
    }
}

impl Hub {
    pub fn with_capacity(capacity: usize) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                chats: Mutex::new(HashMap::new()),
                subscribers: watch::channel(0).0,
                capacity: capacity.max(1),
            }),
        }
    }

    fn chats(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Arc<Event>>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every critical section is a single insert/remove), so poisoning
        // is ignored.
        self.inner.chats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts receiving a chat's events. Live from the moment this returns.
    pub fn subscribe(&self, chat_id: &str) -> Subscription {
        let rx = {
            let mut chats = self.chats();
            chats
                .entry(chat_id.to_owned())
                .or_insert_with(|| broadcast::channel(self.inner.capacity).0)
                .subscribe()
        };
        self.inner.subscribers.send_modify(|n| *n += 1);
        Subscription {
            rx: Some(rx),
            chat_id: chat_id.to_owned(),
            hub: self.clone(),
        }
    }

    /// Hands an event to every current subscriber of its chat. Never blocks.
    pub fn publish(&self, event: Arc<Event>) -> usize {
        let sender = self.chats().get(event.chat_id()).cloned();
        match sender {
            Some(tx) => tx.send(event).unwrap_or(0),
            None => 0,
        }
    }

    /// Open subscriptions across all chats.
    pub fn subscriber_count(&self) -> usize {
        *self.inner.subscribers.borrow()
    }

    /// Chats that currently have a channel.
    pub fn chat_count(&self) -> usize {
        self.chats().len()
    }

    /// Watches the subscription count (tests wait on it instead of sleeping).
    pub fn watch_subscribers(&self) -> watch::Receiver<usize> {
        self.inner.subscribers.subscribe()
    }

    fn release(&self, chat_id: &str) {
        {
            let mut chats = self.chats();
            if chats
                .get(chat_id)
                .is_some_and(|tx| tx.receiver_count() == 0)
            {
                chats.remove(chat_id);
            }
        }
        self.inner
            .subscribers
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A live subscription to one chat; dropping it unsubscribes.
pub struct Subscription {
    rx: Option<broadcast::Receiver<Arc<Event>>>,
    chat_id: String,
    hub: Hub,
}

impl Subscription {
    pub async fn recv(&mut self) -> Result<Arc<Event>, broadcast::error::RecvError> {
        match self.rx.as_mut() {
            Some(rx) => rx.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }

    pub fn chat_id(&self) -> &str {
        &self.chat_id
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Drop the receiver first so the channel's count no longer includes it.
        self.rx.take();
        self.hub.release(&self.chat_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(chat: &str, seq: i64) -> Arc<Event> {
        Arc::new(Event::Message {
            message: Message {
                id: format!("m{seq}"),
                chat_id: chat.into(),
                seq,
                sender_id: "u".into(),
                idempotency_key: None,
                content: "x".into(),
                created_at: 0,
            },
            sender_username: "u".into(),
        })
    }

    fn seq_of(e: &Event) -> i64 {
        match e {
            Event::Message { message, .. } => message.seq,
        }
    }

    #[tokio::test]
    async fn delivers_in_publish_order_to_every_subscriber_of_the_chat_only() {
        let hub = Hub::default();
        let mut a = hub.subscribe("c1");
        let mut b = hub.subscribe("c1");
        let mut other = hub.subscribe("c2");
        for seq in 1..=3 {
            assert_eq!(hub.publish(msg("c1", seq)), 2);
        }
        for sub in [&mut a, &mut b] {
            for seq in 1..=3 {
                assert_eq!(seq_of(&sub.recv().await.unwrap()), seq);
            }
        }
        assert_eq!(hub.publish(msg("c2", 9)), 1);
        assert_eq!(seq_of(&other.recv().await.unwrap()), 9);
    }

    #[tokio::test]
    async fn a_subscriber_past_the_bound_is_told_it_lagged() {
        let hub = Hub::with_capacity(4);
        let mut slow = hub.subscribe("c");
        for seq in 1..=10 {
            hub.publish(msg("c", seq));
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 6),
            other => panic!("expected Lagged, got {other:?}"),
        }
        // What is left is the newest `capacity` events, still in order.
        for seq in 7..=10 {
            assert_eq!(seq_of(&slow.recv().await.unwrap()), seq);
        }
    }

    #[test]
    fn dropping_the_last_subscription_removes_the_chat_channel() {
        let hub = Hub::default();
        let a = hub.subscribe("c");
        let b = hub.subscribe("c");
        assert_eq!((hub.subscriber_count(), hub.chat_count()), (2, 1));
        drop(a);
        assert_eq!((hub.subscriber_count(), hub.chat_count()), (1, 1));
        drop(b);
        assert_eq!((hub.subscriber_count(), hub.chat_count()), (0, 0));
        assert_eq!(hub.publish(msg("c", 1)), 0);
    }
}
