//! Authentication: password hashing, tokens, the check that a token's user
//! still exists, and the JWT secret. The gRPC layer reads the token off each
//! request (`grpc::auth`).

pub mod known_users;
pub mod password;
pub mod token;

use std::path::Path;

pub use known_users::KnownUsers;

pub use password::Passwords;
pub use token::{MIN_SECRET_BYTES, Tokens, Verified};

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
