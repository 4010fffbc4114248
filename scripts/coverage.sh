#!/usr/bin/env bash
# Line coverage of the server (the `tidings` package) with cargo-tarpaulin.
#
#   scripts/coverage.sh            # unit + integration tests (task test-coverage)
#   scripts/coverage.sh --lib      # extra arguments go to cargo tarpaulin
#
# Installs cargo-tarpaulin with `cargo install --locked` when it is missing
# (cargo-llvm-cov would need rustup's llvm-tools component, which cannot be
# fetched here). Set TEST_DATABASE_URL and TEST_REDIS_URL, as for
# scripts/test.sh, to cover the Postgres and Redis paths too. The report is
# target/coverage/tarpaulin-report.html; the total is printed at the end.
# Instrumented builds go to target/tarpaulin, apart from the normal ones.
#
#   scripts/coverage.sh --lib --no-run   # build only (tarpaulin's --no-run)
#
# CI makes that build in the background early (.ci/run), with the same flags
# and environment as the later `task test-coverage -- --lib` of
# scripts/check-tasks.sh, which then only runs the tests.
set -euo pipefail

cd "$(dirname "$0")/.."

TARPAULIN_VERSION=0.37.5
if ! cargo tarpaulin --version >/dev/null 2>&1; then
    echo "coverage: installing cargo-tarpaulin $TARPAULIN_VERSION (cargo install --locked)"
    # Its release profile asks for fat LTO with one codegen unit; a plain
    # optimised build installs in a fraction of the time and works the same.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo install cargo-tarpaulin --locked --version "$TARPAULIN_VERSION"
fi

# The web client does not change coverage; build.rs stages web/dist or the
# fallback page without running npm.
export TIDINGS_SKIP_WEB_BUILD=1
cargo tarpaulin --locked -p tidings \
    --engine llvm \
    --skip-clean --target-dir target/tarpaulin --timeout 1200 \
    --exclude-files 'cli/*' 'load/*' 'migrations/*' 'tests/*' 'target/*' \
    --out Html --out Json --output-dir target/coverage \
    "$@"
