//! HS256 JWTs: `sub` is the user id, `iat` and `exp` bound the lifetime,
//! `gen` is the user's token generation it was issued under (absent in
//! tokens from before generations existed: 0).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{AppError, AppResult};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, rename = "gen")]
    pub generation: i64,
}

#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

/// A token's subject and when it stops being valid.
#[derive(Clone, Debug)]
pub struct Verified {
    pub user_id: String,
    pub expires_at: SystemTime,
    pub generation: i64,
}

pub const MIN_SECRET_BYTES: usize = 32;

impl Tokens {
    pub fn new(secret: &[u8], ttl: Duration) -> anyhow::Result<Tokens> {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_BYTES,
            "the JWT secret must be at least {MIN_SECRET_BYTES} bytes (got {})",
            secret.len()
        );
        // Only HS256 is accepted: a token claiming `none` or another
        // algorithm fails validation before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        })
    }

    /// Issues a token for `user_id` under its token `generation`; returns
    /// it with its expiry time.
    pub fn issue(&self, user_id: &str, generation: i64) -> AppResult<(String, SystemTime)> {
        let now = SystemTime::now();
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(AppError::internal)?
            .as_secs();
        let exp = iat + self.ttl.as_secs().max(1);
        let claims = Claims {
            sub: user_id.to_owned(),
            iat,
            exp,
            generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AppError::internal)?;
        Ok((token, UNIX_EPOCH + Duration::from_secs(exp)))
    }

    pub fn verify(&self, token: &str) -> AppResult<Verified> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token not valid yet",
                    _ => "invalid token",
                };
                AppError::Unauthenticated(why.into())
            })?;
        if data.claims.sub.is_empty() {
            return Err(AppError::Unauthenticated("invalid token".into()));
        }
        Ok(Verified {
            user_id: data.claims.sub,
            expires_at: UNIX_EPOCH + Duration::from_secs(data.claims.exp),
            generation: data.claims.generation,
        })
    }
}
