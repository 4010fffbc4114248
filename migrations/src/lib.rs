//! Schema migrations for Tidings. They run at server start-up on both backends
//! (PostgreSQL and SQLite), so every statement here sticks to what both accept.

// `MigrationTrait` is an async_trait: its methods must take `&SchemaManager`
// with the lifetime elided, or they no longer match the trait.
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20261129_000001_initial;
mod m20261202_000001_message_lifecycle;
mod m20261202_000002_token_generation;
mod m20261202_000003_blocks;
mod m20261203_000001_files;
mod m20261203_000002_search;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_initial::Migration),
            Box::new(m20261202_000001_message_lifecycle::Migration),
            Box::new(m20261202_000002_token_generation::Migration),
            Box::new(m20261202_000003_blocks::Migration),
            Box::new(m20261203_000001_files::Migration),
            Box::new(m20261203_000002_search::Migration),
            // scripts/new-migration.sh adds new migrations above this line.
        ]
    }
}
