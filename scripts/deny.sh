#!/usr/bin/env bash
# Supply-chain check of the dependency graph with cargo-deny (deny.toml):
# licenses (only those listed), bans (no wildcard versions; duplicate
# versions are reported as warnings) and sources (crates.io only, no git).
#
#   scripts/deny.sh
#
# Installs cargo-deny into ~/.cargo/bin when it is missing (once: it stays
# there for later runs). Advisories are not checked here: the RustSec
# database is fetched from GitHub, which this CI machine cannot reach; on a
# machine that can, run `cargo deny check advisories` (docs/SECURITY.md).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    echo "deny: installing cargo-deny (cargo install cargo-deny --locked)"
    cargo install cargo-deny --locked
fi
cargo deny --version
exec cargo deny --locked check licenses bans sources
