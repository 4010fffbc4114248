//! Storage: the only module that speaks SeaORM (and SQL).
//!
//! Everything above this module sees the domain's plain models
//! ([`crate::domain::model`]) and [`StoreError`]; nothing in a request path
//! knows whether the backend is PostgreSQL or SQLite.
//!
//! Look-ups by primary or unique key use `.all()` and take the first row,
//! never `.one()`: `.one()` adds a *bound* `LIMIT ?`, and SQLite folds a bound
//! limit into the plan, so every execution re-prepares the statement (it
//! was a fifth of the send path's instructions, see docs/BENCHMARKS.md).

pub mod blobs;
pub mod blocks;
pub mod changes;
pub mod chats;
pub mod entities;
pub mod files;
pub mod messages;
pub mod reactions;
pub mod search;
pub mod users;

use std::path::Path;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, RuntimeErr};

use crate::domain::AppError;

/// What went wrong in storage, sorted by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (down, pool exhausted, I/O).
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] DbErr),
    /// A unique index refused the write; the string is the database's text,
    /// which names the index or columns.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error(transparent)]
    Other(DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(text)) = err.sql_err() {
            return StoreError::Conflict(text);
        }
        if is_unavailable(&err) {
            StoreError::Unavailable(err)
        } else {
            StoreError::Other(err)
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => AppError::Unavailable(e.into()),
            other => AppError::Internal(other.into()),
        }
    }
}

fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                Sqlx::Io(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed
                | Sqlx::Protocol(_)
                | Sqlx::Tls(_) => true,
                // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout, and
                // Postgres admin shutdown / cannot-connect-now classes.
                Sqlx::Database(db) => matches!(
                    db.code().as_deref(),
                    Some("5") | Some("6") | Some("57P01") | Some("57P02") | Some("57P03")
                ),
                _ => false,
            }
        }
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How long a call waits for a PostgreSQL connection (a free pool slot, or
/// the server accepting a new one) before it fails with UNAVAILABLE.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The database handle. Cheap to clone (a pool inside).
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// Connects to `database_url`, or to the embedded SQLite file in
    /// `data_dir` when there is none, and brings the schema up to date.
    pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Store> {
        Store::connect_with(database_url, data_dir, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`Store::connect`] with the PostgreSQL pool's acquire timeout (see
    /// [`DEFAULT_ACQUIRE_TIMEOUT`]).
    pub async fn connect_with(
        database_url: Option<&str>,
        data_dir: &Path,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Store> {
        let store = Store::open_with(database_url, data_dir, acquire_timeout).await?;
        Migrator::up(&store.db, None).await?;
        Ok(store)
    }

    /// Connects without touching the schema (for `tidings migrate`).
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Store> {
        Store::open_with(database_url, data_dir, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    async fn open_with(
        database_url: Option<&str>,
        data_dir: &Path,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Store> {
        let db = match database_url {
            Some(url) => {
                let mut opts = ConnectOptions::new(url.to_owned());
                // sqlx retries a refused connection until this deadline, so
                // it is also how long a call takes to fail (UNAVAILABLE)
                // while PostgreSQL is down. (SeaORM's connect_timeout sets
                // the same sqlx deadline, so it is not set separately.)
                // A pooled connection is pinged before use only after a
                // second idle: pinging on every checkout cost a round trip
                // per statement outside a transaction (the send path's
                // reads among them), while a connection broken by a
                // restart has almost always sat idle that long.
                opts.max_connections(32)
                    .min_connections(1)
                    .acquire_timeout(acquire_timeout)
                    .test_before_acquire_if_idle_for(Duration::from_secs(1))
                    .sqlx_logging(false);
                Database::connect(opts).await?
            }
            None => {
                std::fs::create_dir_all(data_dir)?;
                let path = data_dir.join("tidings.db");
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let mut opts = ConnectOptions::new(url);
                // SQLite takes one writer at a time: WAL lets readers go on
                // beside it, and the busy timeout makes writers queue instead
                // of failing. Every write transaction starts with a write so
                // it never has to upgrade a read lock (which would fail fast).
                // No ping per checkout: a local file does not go away, and
                // each ping was a hand-off to the connection's thread.
                opts.max_connections(4)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .test_before_acquire(false)
                    .sqlx_logging(false)
                    .map_sqlx_sqlite_opts(|o| {
                        o.journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal)
                            .busy_timeout(Duration::from_secs(10))
                            .foreign_keys(true)
                    });
                Database::connect(opts).await?
            }
        };
        Ok(Store { db })
    }

    pub async fn migrate_up(&self) -> anyhow::Result<()> {
        Ok(Migrator::up(&self.db, None).await?)
    }

    pub async fn migrate_down(&self, steps: u32) -> anyhow::Result<()> {
        Ok(Migrator::down(&self.db, Some(steps)).await?)
    }

    /// Every known migration and whether it is applied.
    pub async fn migration_status(&self) -> anyhow::Result<Vec<(String, bool)>> {
        let all = Migrator::get_migration_with_status(&self.db).await?;
        Ok(all
            .into_iter()
            .map(|m| {
                let applied = matches!(m.status(), migration::MigrationStatus::Applied);
                (m.name().to_owned(), applied)
            })
            .collect())
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    /// Open and idle connections of the pool.
    pub fn pool_stats(&self) -> Option<(u32, usize)> {
        match self.db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                Some((pool.size(), pool.num_idle()))
            }
            sea_orm::DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                Some((pool.size(), pool.num_idle()))
            }
            _ => None,
        }
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}
