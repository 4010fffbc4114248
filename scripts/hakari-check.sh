#!/usr/bin/env bash
# Checks that tidings-workspace-hack/ is up to date with the workspace's
# dependencies: `cargo hakari generate --diff` and `manage-deps --dry-run`
# fail when a dependency or feature changed and the hack was not
# regenerated. Installs cargo-hakari (pinned, --locked) when missing.
#
#   scripts/hakari-check.sh
#
# To bring the hack up to date after changing dependencies:
#   cargo hakari generate && cargo hakari manage-deps --yes
#
# Why the hack exists (docs/HOWTOTEST.md, "Built once, reused"): cargo
# resolves the dependencies' features per selected package, so
# `cargo build -p tidings-proto`, `cargo run --bin tidings` or
# `cargo build --release -p tidings-load` each compiled a few hundred
# units again after the test build. The hack crate, which every member
# depends on, gives every selection the same features.
set -euo pipefail

cd "$(dirname "$0")/.."
version=0.9.39
if ! cargo hakari --version 2>/dev/null | grep -qF "$version"; then
    echo "hakari-check: installing cargo-hakari $version" >&2
    cargo install --locked cargo-hakari --version "$version"
fi
if ! cargo hakari generate --diff; then
    echo "hakari-check: tidings-workspace-hack/Cargo.toml is out of date; run: cargo hakari generate && cargo hakari manage-deps --yes" >&2
    exit 1
fi
if ! cargo hakari manage-deps --dry-run; then
    echo "hakari-check: a workspace member lacks the tidings-workspace-hack dependency; run: cargo hakari manage-deps --yes" >&2
    exit 1
fi
echo "hakari-check: tidings-workspace-hack is up to date"
