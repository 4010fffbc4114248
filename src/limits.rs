//! Abuse limits: per-user send and typing rates, per-user rates for making
//! rooms (CreateChat, AddMembers) and for looking people up by e-mail, a
//! per-IP rate for the password RPCs (CreateUser, Login) and a cap on open
//! streams per user.
//! Transport-free: the gRPC layer says who the caller is and where they
//! come from, and turns a refusal into a status.
//!
//! Rates are GCRA token buckets from `governor`, keyed by user id or client
//! IP; an upkeep task forgets keys whose bucket is full again, so memory
//! stays bounded by the keys active in the last sweep interval. Every
//! refusal is RESOURCE_EXHAUSTED naming the limit, with a `retry-after-ms`
//! metadata entry when waiting helps, and counts in `tidings_limited_total`.
//!
//! The limits are per process: with several nodes behind a load balancer a
//! client can get up to N times the rate. That is fine for abuse control
//! (the point is to bound what one connection-holder costs a node).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::AppError;

/// The metadata key of a refusal that names when to try again.
pub const RETRY_AFTER: &str = "retry-after-ms";

/// How often idle rate-limit keys are forgotten.
const SWEEP: Duration = Duration::from_secs(30);

/// The limits of one server. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

struct Inner {
    send: Option<Rate<String>>,
    typing: Option<Rate<String>>,
    auth: Option<Rate<IpAddr>>,
    rooms: Option<Rate<String>>,
    lookups: Option<Rate<String>>,
    /// 0: no cap.
    max_streams: usize,
    streams: Mutex<HashMap<String, usize>>,
}

struct Rate<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    /// What the client is told: "at most {what}".
    what: String,
}

impl<K: std::hash::Hash + Eq + Clone> Rate<K> {
    fn new(per: Per, rate: u32, burst: u32, unit: &str) -> Option<Rate<K>> {
        let rate = NonZeroU32::new(rate)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        let (quota, per_name) = match per {
            Per::Second => (Quota::per_second(rate), "second"),
            Per::Minute => (Quota::per_minute(rate), "minute"),
        };
        Some(Rate {
            limiter: DefaultKeyedRateLimiter::keyed(quota.allow_burst(burst)),
            what: format!("{rate} {unit} per {per_name} (bursts of {burst})"),
        })
    }

    /// Ok, or how long until the next one is allowed.
    fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// `n` at once: Ok, or how long until they are allowed (`None`: never,
    /// more than the burst).
    fn check_n(&self, key: &K, n: u32) -> Result<(), Option<Duration>> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Some(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(None),
        }
    }

    fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[derive(Clone, Copy)]
enum Per {
    Second,
    Minute,
}

/// A refused call: which limit, what to tell the client, when to retry.
#[derive(Debug)]
pub struct Limited {
    pub limit: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Limited {
    fn new(limit: &'static str, message: String, retry_after: Option<Duration>) -> Limited {
        metrics::counter!(crate::metrics::LIMITED, "limit" => limit).increment(1);
        Limited {
            limit,
            message,
            retry_after,
        }
    }

    fn rate(limit: &'static str, subject: &str, what: &str, wait: Duration) -> Limited {
        // Round up so a client that waits exactly this long gets through.
        let ms = wait.as_millis() as u64 + 1;
        Limited::new(
            limit,
            format!("{limit} rate limit: at most {what} {subject}; retry in {ms} ms"),
            Some(Duration::from_millis(ms)),
        )
    }
}

impl From<Limited> for AppError {
    fn from(l: Limited) -> Self {
        AppError::ResourceExhausted(l.message)
    }
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            inner: Arc::new(Inner {
                send: Rate::new(Per::Second, config.send_rate, config.send_burst, "messages"),
                typing: Rate::new(
                    Per::Second,
                    config.typing_rate,
                    config.typing_burst,
                    "typing updates",
                ),
                auth: Rate::new(
                    Per::Minute,
                    config.auth_rate,
                    config.auth_burst,
                    "sign-ups and logins",
                ),
                rooms: Rate::new(
                    Per::Minute,
                    config.room_rate,
                    config.room_burst,
                    "rooms made or added to",
                ),
                lookups: Rate::new(
                    Per::Minute,
                    config.lookup_rate,
                    config.lookup_burst,
                    "e-mail look-ups",
                ),
                max_streams: config.max_streams_per_user,
                streams: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Forgets idle rate-limit keys every little while, until `shutdown`.
    pub fn spawn_upkeep(&self, shutdown: CancellationToken) {
        let limits = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => limits.sweep(),
                }
            }
        });
    }

    fn sweep(&self) {
        let i = &self.inner;
        i.send.iter().for_each(Rate::sweep);
        i.typing.iter().for_each(Rate::sweep);
        i.auth.iter().for_each(Rate::sweep);
        i.rooms.iter().for_each(Rate::sweep);
        i.lookups.iter().for_each(Rate::sweep);
    }

    /// One CreateChat or AddMembers call by `user`, looking up `emails`
    /// people by e-mail.
    pub fn rooms(&self, user: &str, emails: usize) -> Result<(), Limited> {
        if let Some(rate) = &self.inner.rooms {
            rate.check(&user.to_owned())
                .map_err(|wait| Limited::rate("room", "per user", &rate.what, wait))?;
        }
        let Some(rate) = &self.inner.lookups else {
            return Ok(());
        };
        let n = u32::try_from(emails).unwrap_or(u32::MAX);
        rate.check_n(&user.to_owned(), n).map_err(|wait| match wait {
            Some(wait) => Limited::rate("lookup", "per user", &rate.what, wait),
            None => Limited::new(
                "lookup",
                format!(
                    "lookup rate limit: at most {} per user; {emails} e-mail addresses in one call is more than that",
                    rate.what
                ),
                None,
            ),
        })
    }

    /// One message sent by `user` (SendMessage, or a Session `send` frame).
    pub fn send(&self, user: &str) -> Result<(), Limited> {
        let Some(rate) = &self.inner.send else {
            return Ok(());
        };
        rate.check(&user.to_owned())
            .map_err(|wait| Limited::rate("send", "per user", &rate.what, wait))
    }

    /// One typing update by `user` (SendTyping, or a Session `typing` frame).
    pub fn typing(&self, user: &str) -> Result<(), Limited> {
        let Some(rate) = &self.inner.typing else {
            return Ok(());
        };
        rate.check(&user.to_owned())
            .map_err(|wait| Limited::rate("typing", "per user", &rate.what, wait))
    }

    /// One CreateUser or Login from a client at `ip`.
    pub fn auth(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        let Some(rate) = &self.inner.auth else {
            return Ok(());
        };
        // No peer address (an in-memory transport): nothing to key on.
        let Some(ip) = ip else {
            return Ok(());
        };
        rate.check(&address_key(ip))
            .map_err(|wait| Limited::rate("auth", "per client address", &rate.what, wait))
    }

    /// Takes one of `user`'s stream slots; the slot is free again when the
    /// returned guard is dropped (the stream ended or the client left).
    pub fn open_stream(&self, user: &str) -> Result<StreamSlot, Limited> {
        let max = self.inner.max_streams;
        let mut streams = self.inner.streams.lock().expect("stream counts poisoned");
        let open = streams.entry(user.to_owned()).or_insert(0);
        if max > 0 && *open >= max {
            return Err(Limited::new(
                "streams",
                format!(
                    "streams limit: at most {max} open streams per user; close one \
                     (Subscribe, Session and SubscribeToChat count) before opening another"
                ),
                None,
            ));
        }
        *open += 1;
        Ok(StreamSlot {
            limits: self.clone(),
            user: user.to_owned(),
        })
    }

    /// How many streams `user` has open on this server.
    pub fn open_streams(&self, user: &str) -> usize {
        let streams = self.inner.streams.lock().expect("stream counts poisoned");
        streams.get(user).copied().unwrap_or(0)
    }
}

/// One open stream of a user; dropping it frees the slot.
pub struct StreamSlot {
    limits: Limits,
    user: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = match self.limits.inner.streams.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(open) = streams.get_mut(&self.user) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.user);
            }
        }
    }
}

/// IPv6 clients get a /64 each (one customer's usual share), so hopping
/// addresses inside it does not reset the budget.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_keys_on_the_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
