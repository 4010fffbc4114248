#!/usr/bin/env bash
# The one test command: runs the whole test suite.
#
#   ./scripts/test.sh                  # everything
#   ./scripts/test.sh some_test_name   # extra arguments go to `cargo test`
#   ./scripts/test.sh -- --nocapture
#
# The integration suite has two halves:
#   - SQLite + in-process fan-out: always runs, needs nothing installed.
#   - PostgreSQL + Redis: runs when both of these are set:
#       TEST_DATABASE_URL  an *admin* URL, e.g. postgres://postgres@127.0.0.1:5432/postgres;
#                          each test creates its own database (tidings_test_*)
#                          through it and drops it at the end.
#       TEST_REDIS_URL     e.g. redis://127.0.0.1:6379; each test uses its own
#                          key prefix.
#     Without them these tests are skipped, except with CI=true, where they
#     fail loudly so a missing service cannot pass unnoticed.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ -z "${TEST_DATABASE_URL:-}" || -z "${TEST_REDIS_URL:-}" ]] && [[ "${CI:-}" != "true" ]]; then
    echo "test.sh: TEST_DATABASE_URL and/or TEST_REDIS_URL not set, so only the SQLite/in-process half runs; set both (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres TEST_REDIS_URL=redis://127.0.0.1:6379) to run the Postgres+Redis half too." >&2
fi

exec cargo test --workspace --locked "$@"
