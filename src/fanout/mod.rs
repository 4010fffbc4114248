//! Fan-out: how an event gets from where it happened to every node's live
//! streams.
//!
//! - [`event`]: what is published ([`Event`], [`MessageEvent`], [`Topic`]).
//! - [`hub`]: in-process fan-out, one bounded broadcast channel per topic.
//! - [`broker`]: with Redis, carries events between nodes (pub/sub).
//! - [`presence`]: online while any stream is open on any node.
//! - [`delivered`]: delivered watermarks, saved in batches.
//! - [`order`]: the per-chat ordering rule (skip / deliver / fill the gap)
//!   that every stream applies to what it receives.
//!
//! A send publishes after its transaction commits. Streams (`crate::streams`)
//! order what they receive by `seq`, drop what they already delivered and
//! fill any gap (or a lag) from storage, so the hub and the broker may lose
//! events without a stream ever doing so.

pub mod broker;
pub mod delivered;
pub mod event;
pub mod hub;
pub mod order;
pub mod presence;

use std::sync::Arc;

pub use event::{ChangeEvent, Event, MessageEvent, Topic};
pub use hub::{Hub, Subscription};
use tokio_util::sync::CancellationToken;

use crate::domain::now_micros;
use crate::store::Store;
use broker::Broker;
use presence::Presence;

/// The publishing side of fan-out, shared by the services and the streams.
#[derive(Clone)]
pub struct Fanout {
    pub hub: Hub,
    broker: Option<Broker>,
    pub presence: Presence,
    store: Store,
    /// Saves what streams delivered, in batches.
    pub delivered: delivered::Delivered,
}

/// Hands an event to the local hub and, with Redis, to the other nodes.
fn publish(hub: &Hub, broker: Option<&Broker>, event: Event) {
    let event = Arc::new(event);
    hub.publish(event.clone());
    if let Some(broker) = broker {
        broker.forward(event);
    }
}

impl Fanout {
    pub fn new(hub: Hub, broker: Option<Broker>, presence: Presence, store: Store) -> Fanout {
        let delivered = delivered::Delivered::start(store.clone(), hub.clone(), broker.clone());
        Fanout {
            hub,
            broker,
            presence,
            store,
            delivered,
        }
    }

    /// Delivers an event to this node's streams and, with Redis, to the
    /// other nodes'. Never waits.
    pub fn publish(&self, event: Event) {
        publish(&self.hub, self.broker.as_ref(), event);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A stream of `user_id` opened: announce them online if this was the first.
    pub async fn stream_opened(&self, user_id: &str) {
        if self.presence.connect(user_id).await {
            self.announce(user_id, true).await;
        }
    }

    /// A stream of `user_id` closed: announce them offline if it was the last.
    pub async fn stream_closed(&self, user_id: &str) {
        if self.presence.disconnect(user_id).await {
            self.announce(user_id, false).await;
        }
    }

    async fn announce(&self, user_id: &str, online: bool) {
        let chats = match self.store.chats_of_member(user_id).await {
            Ok(chats) => chats,
            Err(e) => {
                tracing::warn!(error = %e, "could not announce presence");
                return;
            }
        };
        let at = now_micros();
        for chat in chats {
            self.publish(Event::Presence {
                chat_id: chat.id,
                user_id: user_id.to_owned(),
                online,
                at,
            });
        }
    }

    /// Runs presence upkeep until shutdown: node liveness, and offline
    /// announcements for the users of nodes that died. On shutdown, this
    /// node's users are announced offline.
    pub fn spawn_upkeep(&self, shutdown: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(presence::HEARTBEAT);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                for change in this.presence.heartbeat().await {
                    this.announce(&change.user_id, change.online).await;
                }
            }
            for change in this.presence.leave().await {
                this.announce(&change.user_id, change.online).await;
            }
        });
    }
}
