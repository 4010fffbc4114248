//! Real-time delivery: the in-process hub that fans events out to streams.
//!
//! A send publishes to the hub after its transaction commits; each stream
//! orders what it receives by `seq`, drops what it already delivered and fills
//! any gap (or a lag) from storage, so the hub may be lossy without the
//! streams ever being.

pub mod hub;

pub use hub::{Event, Hub, Subscription};
