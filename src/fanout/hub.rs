//! The in-process hub: one bounded broadcast channel per topic (a chat, or a
//! user's own membership feed) that has at least one subscriber.
//!
//! Why broadcast: one event is built once and shared (`Arc`) by every
//! subscriber, and a slow subscriber cannot hold the others back — it gets
//! `Lagged` and catches up from storage instead. Why a std `Mutex`: it guards
//! a map look-up and is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use super::event::{Event, Topic};

/// Per-topic channel capacity. A subscriber more than this many events behind
/// is told it lagged and reads the rest from storage.
pub const CHANNEL_CAPACITY: usize = 1024;

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

type Channels = HashMap<Topic, broadcast::Sender<Arc<Event>>>;

struct Inner {
    topics: Mutex<Channels>,
    subscribers: watch::Sender<usize>,
    capacity: usize,
    /// Times a subscriber fell more than `capacity` behind and caught up
    /// from storage.
    lags: std::sync::atomic::AtomicU64,
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
                topics: Mutex::new(HashMap::new()),
                subscribers: watch::channel(0).0,
                capacity: capacity.max(1),
                lags: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    fn topics(&self) -> MutexGuard<'_, Channels> {
        // Every critical section is a single insert/remove/get, so a panic
        // cannot leave the map half-updated: poisoning is ignored.
        self.inner.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts receiving a topic's events. Live from the moment this returns.
    pub fn subscribe(&self, topic: Topic) -> Subscription {
        let rx = {
            let mut topics = self.topics();
            topics
                .entry(topic.clone())
                .or_insert_with(|| broadcast::channel(self.inner.capacity).0)
                .subscribe()
        };
        if counted(&topic) {
            self.inner.subscribers.send_modify(|n| *n += 1);
        }
        Subscription {
            rx: Some(rx),
            topic,
            hub: self.clone(),
        }
    }

    /// Hands an event to every current local subscriber of its topic. Never
    /// blocks. Returns how many subscribers it reached.
    pub fn publish(&self, event: Arc<Event>) -> usize {
        let topic = event.topic();
        let sender = self.topics().get(&topic).cloned();
        match sender {
            Some(tx) => tx.send(event).unwrap_or(0),
            None => 0,
        }
    }

    /// Tells every chat subscriber to re-read storage (after events may have
    /// been missed, e.g. while the cross-node bridge was reconnecting).
    pub fn resync_all(&self) {
        let chats: Vec<(Topic, broadcast::Sender<Arc<Event>>)> = self
            .topics()
            .iter()
            .filter(|(t, _)| matches!(t, Topic::Chat(_)))
            .map(|(t, tx)| (t.clone(), tx.clone()))
            .collect();
        for (topic, tx) in chats {
            if let Topic::Chat(chat_id) = topic {
                let _ = tx.send(Arc::new(Event::Resync { chat_id }));
            }
        }
    }

    /// Records that a subscriber lagged (and is catching up from storage).
    pub fn note_lag(&self) {
        self.inner
            .lags
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many times subscribers lagged since start.
    pub fn lag_count(&self) -> u64 {
        self.inner.lags.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Open stream subscriptions across all topics.
    pub fn subscriber_count(&self) -> usize {
        *self.inner.subscribers.borrow()
    }

    /// Topics that currently have a channel.
    pub fn topic_count(&self) -> usize {
        self.topics().len()
    }

    /// Watches the subscription count (tests wait on it instead of sleeping).
    pub fn watch_subscribers(&self) -> watch::Receiver<usize> {
        self.inner.subscribers.subscribe()
    }

    fn release(&self, topic: &Topic) {
        {
            let mut topics = self.topics();
            if topics.get(topic).is_some_and(|tx| tx.receiver_count() == 0) {
                topics.remove(topic);
            }
        }
        if counted(topic) {
            self.inner
                .subscribers
                .send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

/// Whether a subscription to `topic` is counted in
/// [`Hub::subscriber_count`]: streams' are; the node's own block watcher's
/// (one for the process's life) is not.
fn counted(topic: &Topic) -> bool {
    !matches!(topic, Topic::Blocks)
}

/// A live subscription to one topic; dropping it unsubscribes.
pub struct Subscription {
    rx: Option<broadcast::Receiver<Arc<Event>>>,
    topic: Topic,
    hub: Hub,
}

impl Subscription {
    pub async fn recv(&mut self) -> Result<Arc<Event>, broadcast::error::RecvError> {
        match self.rx.as_mut() {
            Some(rx) => rx.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }

    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// This subscription as a stream of receive results; ends when closed.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<Arc<Event>, broadcast::error::RecvError>> + Send + Unpin
    {
        Box::pin(futures::stream::unfold(self, |mut sub| async move {
            match sub.recv().await {
                Err(broadcast::error::RecvError::Closed) => None,
                other => Some((other, sub)),
            }
        }))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Drop the receiver first so the channel's count no longer includes it.
        self.rx.take();
        self.hub.release(&self.topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Message;
    use crate::fanout::event::MessageEvent;

    fn msg(chat: &str, seq: i64) -> Arc<Event> {
        let message = Message {
            id: format!("m{seq}"),
            chat_id: chat.into(),
            seq,
            sender_id: "u".into(),
            content: "x".into(),
            ..Default::default()
        };
        Arc::new(Event::Message(Arc::new(MessageEvent::stored(
            message,
            "u".into(),
            None,
        ))))
    }

    fn seq_of(e: &Event) -> i64 {
        match e {
            Event::Message(m) => m.seq(),
            other => panic!("not a message: {other:?}"),
        }
    }

    fn chat(id: &str) -> Topic {
        Topic::Chat(id.into())
    }

    #[tokio::test]
    async fn delivers_in_publish_order_to_every_subscriber_of_the_topic_only() {
        let hub = Hub::default();
        let mut a = hub.subscribe(chat("c1"));
        let mut b = hub.subscribe(chat("c1"));
        let mut other = hub.subscribe(chat("c2"));
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
        let mut slow = hub.subscribe(chat("c"));
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

    #[tokio::test]
    async fn resync_reaches_chat_topics_only() {
        let hub = Hub::default();
        let mut c = hub.subscribe(chat("c"));
        let mut u = hub.subscribe(Topic::User("u".into()));
        hub.resync_all();
        assert!(matches!(&*c.recv().await.unwrap(), Event::Resync { chat_id } if chat_id == "c"));
        hub.publish(Arc::new(Event::ChatRemoved {
            user_id: "u".into(),
            chat_id: "c".into(),
        }));
        assert!(matches!(
            &*u.recv().await.unwrap(),
            Event::ChatRemoved { .. }
        ));
    }

    #[test]
    fn dropping_the_last_subscription_removes_the_topic_channel() {
        let hub = Hub::default();
        let a = hub.subscribe(chat("c"));
        let b = hub.subscribe(chat("c"));
        assert_eq!((hub.subscriber_count(), hub.topic_count()), (2, 1));
        drop(a);
        assert_eq!((hub.subscriber_count(), hub.topic_count()), (1, 1));
        drop(b);
        assert_eq!((hub.subscriber_count(), hub.topic_count()), (0, 0));
        assert_eq!(hub.publish(msg("c", 1)), 0);
    }
}
