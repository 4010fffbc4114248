//! Authentication: password hashing, tokens, and the one request
//! authenticator every authenticated RPC calls (gRPC and gRPC-Web alike,
//! since both carry `authorization` as metadata).

pub mod known_users;
pub mod password;
pub mod token;

use std::path::Path;

pub use known_users::KnownUsers;

pub use password::Passwords;
pub use token::{MIN_SECRET_BYTES, Tokens, Verified};

use crate::error::AppError;

/// The authenticated caller of an RPC.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
    pub expires_at: std::time::SystemTime,
}

/// Reads `authorization: Bearer <jwt>` from the request metadata.
pub fn authenticate<T>(tokens: &Tokens, request: &tonic::Request<T>) -> Result<Caller, AppError> {
    let value = request
        .metadata()
        .get("authorization")
        .ok_or_else(|| AppError::Unauthenticated("missing authorization metadata".into()))?;
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthenticated("invalid authorization metadata".into()))?;
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
    } = tokens.verify(token)?;
    Ok(Caller {
        user_id,
        expires_at,
    })
}

/// The configured secret, or in embedded mode the one kept in the data dir
/// (generated on first start). Refuses secrets shorter than 32 bytes.
pub fn load_secret(
    configured: Option<&str>,
    embedded: bool,
    data_dir: &Path,
) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_BYTES,
            "JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (got {})",
            secret.len()
        );
        return Ok(secret.as_bytes().to_vec());
    }
    anyhow::ensure!(
        embedded,
        "JWT_SECRET is required when DATABASE_URL is set (every node must share it)"
    );
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(existing) => {
            let existing = existing.trim().to_owned();
            anyhow::ensure!(
                existing.len() >= MIN_SECRET_BYTES,
                "{} holds a secret shorter than {MIN_SECRET_BYTES} bytes",
                path.display()
            );
            Ok(existing.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            write_private(&path, &secret)?;
            tracing::info!(path = %path.display(), "generated a JWT secret");
            Ok(secret.into_bytes())
        }
        Err(e) => Err(e.into()),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
