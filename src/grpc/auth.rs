//! Who is calling: the one authenticator every authenticated RPC calls
//! (gRPC and gRPC-Web alike, since both carry `authorization` as metadata),
//! and the caller's network address for the per-address limits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::auth::{KnownUsers, Tokens, Verified};
use crate::domain::AppError;
use crate::streams::{Check, Grant};

/// The authenticated caller of an RPC.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
    pub expires_at: SystemTime,
    /// The token's generation (see [`KnownUsers`]).
    pub generation: i64,
}

/// Checks tokens: a valid signature and expiry, and a user that still
/// exists (see [`KnownUsers`]). Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    tokens: Tokens,
    known_users: KnownUsers,
    /// Whether X-Forwarded-For names the client (see [`client_ip`]).
    trust_proxy: bool,
}

impl Authenticator {
    pub fn new(tokens: Tokens, known_users: KnownUsers, trust_proxy: bool) -> Authenticator {
        Authenticator {
            tokens,
            known_users,
            trust_proxy,
        }
    }

    /// The caller of `request`, or UNAUTHENTICATED. Records the caller on
    /// the RPC's span (each RPC declares a `user_id` field).
    pub async fn caller<T>(&self, request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
        let caller = authenticate(&self.tokens, request)?;
        self.known_users
            .check(&caller.user_id, caller.generation)
            .await?;
        tracing::Span::current().record("user_id", caller.user_id.as_str());
        Ok(caller)
    }

    /// The caller of a plain HTTP request (the files endpoints), from its
    /// `Authorization` header, checked as [`Authenticator::caller`] checks.
    pub async fn caller_from_header(&self, value: Option<&str>) -> Result<Caller, AppError> {
        let value = value
            .ok_or_else(|| AppError::Unauthenticated("missing authorization header".into()))?;
        let caller = bearer(&self.tokens, value)?;
        self.known_users
            .check(&caller.user_id, caller.generation)
            .await?;
        Ok(caller)
    }

    /// What `caller`'s token allows a stream: until its expiry, asking
    /// the database again every `AUTH_CACHE_TTL` (at least a second; 5 s
    /// when the TTL is 0) whether its user still exists and the token was
    /// not ended.
    pub fn grant(&self, caller: &Caller) -> Grant {
        let ttl = self.known_users.ttl();
        let every = if ttl.is_zero() {
            Duration::from_secs(5)
        } else {
            ttl.max(Duration::from_secs(1))
        };
        let known = self.known_users.clone();
        let (user_id, generation) = (caller.user_id.clone(), caller.generation);
        let check: Check = Arc::new(move || {
            let (known, user_id) = (known.clone(), user_id.clone());
            Box::pin(async move { known.check_fresh(&user_id, generation).await })
        });
        Grant {
            expires_at: caller.expires_at,
            recheck: Some((every, check)),
        }
    }

    /// The user's tokens were ended on this node: refuse them here at once.
    pub fn forget(&self, user_id: &str) {
        self.known_users.forget(user_id);
    }

    /// The client's address, for the per-address limits.
    pub fn client_ip<T>(&self, request: &tonic::Request<T>) -> Option<IpAddr> {
        client_ip(request, self.trust_proxy)
    }
}

/// Reads `authorization: Bearer <jwt>` from the request metadata.
fn authenticate<T>(tokens: &Tokens, request: &tonic::Request<T>) -> Result<Caller, AppError> {
    let value = request
        .metadata()
        .get("authorization")
        .ok_or_else(|| AppError::Unauthenticated("missing authorization metadata".into()))?;
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthenticated("invalid authorization metadata".into()))?;
    bearer(tokens, value)
}

/// Checks an `authorization` value: `Bearer <jwt>`.
fn bearer(tokens: &Tokens, value: &str) -> Result<Caller, AppError> {
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::Unauthenticated("authorization must be `Bearer <token>`".into())
        })?;
    let Verified {
        user_id,
        expires_at,
        generation,
    } = tokens.verify(token)?;
    Ok(Caller {
        user_id,
        expires_at,
        generation,
    })
}

/// The client's address: the connection's peer, or with `trust_proxy` the
/// last X-Forwarded-For entry (the one our proxy appended).
fn client_ip<T>(request: &tonic::Request<T>, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy
        && let Some(ip) = request
            .metadata()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return Some(ip);
    }
    // The accept loop (`http::serve`) records the peer on every request;
    // tonic's own transport (not used here) would set `remote_addr`.
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| request.remote_addr())
        .map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_when_trusted() {
        let mut req = tonic::Request::new(());
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::from((
                [10, 0, 0, 1],
                5000,
            ))));
        req.metadata_mut()
            .insert("x-forwarded-for", "1.2.3.4, 198.51.100.7".parse().unwrap());
        assert_eq!(
            client_ip(&req, false),
            Some("10.0.0.1".parse().unwrap()),
            "untrusted: the peer"
        );
        assert_eq!(
            client_ip(&req, true),
            Some("198.51.100.7".parse().unwrap()),
            "trusted: the entry the proxy appended"
        );
    }
}
