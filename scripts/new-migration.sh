#!/usr/bin/env bash
# Adds an empty schema migration and registers it with the migrator.
#
#   scripts/new-migration.sh add_reactions      # or: task migrate-create NAME=add_reactions
#
# Writes migrations/src/m<UTC timestamp>_<name>.rs from a template (an up and
# a down that do nothing yet) and adds it to Migrator::migrations() in
# migrations/src/lib.rs, after the existing ones. Migrations run on both
# PostgreSQL and SQLite, so write them with SeaORM's schema builder.
# MIGRATIONS_DIR (default: migrations) selects another copy of the crate.
set -euo pipefail

cd "$(dirname "$0")/.."

name=${1:-}
if [[ ! "$name" =~ ^[a-z][a-z0-9_]*$ ]]; then
    echo "usage: $0 <name>   (snake_case: lower-case letters, digits and _, e.g. add_reactions)" >&2
    exit 2
fi

dir=${MIGRATIONS_DIR:-migrations}
lib="$dir/src/lib.rs"
marker='// scripts/new-migration.sh adds new migrations above this line.'
grep -qF "$marker" "$lib" || { echo "$lib has no line '$marker'" >&2; exit 1; }

module="m$(date -u +%Y%m%d_%H%M%S)_$name"
file="$dir/src/$module.rs"
[[ ! -e "$file" ]] || { echo "$file already exists" >&2; exit 1; }

cat >"$file" <<RUST
//! ${name//_/ }: say here what this migration changes and why.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Both PostgreSQL and SQLite run this: use the schema builder
        // (manager.create_table, alter_table, create_index, ...).
        let _ = manager;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Undo exactly what up() did, so \`tidings migrate down\` works.
        let _ = manager;
        Ok(())
    }
}
RUST

# Declare the module after the last one, and register the migration last.
last_mod=$(grep -n '^mod m' "$lib" | tail -n 1 | cut -d: -f1)
sed -i "${last_mod}a mod $module;" "$lib"
sed -i "\\|$marker|i\\            Box::new($module::Migration)," "$lib"

echo "created $file and registered it in $lib"
