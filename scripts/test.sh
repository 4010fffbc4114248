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
#
# Then:
#   - load/smoke.sh: the load tool against a real server, a few seconds;
#   - scripts/api-examples.sh: every example of docs/API_USAGE.md, run;
#   - scripts/docker-parity.sh: the Dockerfile's build and start commands
#     outside Docker (this builds the release server, web client inside);
#   - the browser end-to-end test (web/e2e/) against that release server: it
#     installs Debian's Chromium if /usr/bin/chromium is missing (as root, with
#     apt-get), and runs `node --test web/e2e/`.
# They need Node.js 20+ and python3. TIDINGS_SKIP_E2E=1 skips the last three
# (never in CI).
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ -z "${TEST_DATABASE_URL:-}" || -z "${TEST_REDIS_URL:-}" ]] && [[ "${CI:-}" != "true" ]]; then
    echo "test.sh: TEST_DATABASE_URL and/or TEST_REDIS_URL not set, so only the SQLite/in-process half runs; set both (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres TEST_REDIS_URL=redis://127.0.0.1:6379) to run the Postgres+Redis half too." >&2
fi

cargo test --workspace --locked "$@"

echo "==> load tool smoke run (load/smoke.sh)"
load/smoke.sh

if [[ "${TIDINGS_SKIP_E2E:-}" == "1" && "${CI:-}" != "true" ]]; then
    echo "test.sh: TIDINGS_SKIP_E2E=1, so the API examples, the Docker parity check and the browser test are skipped." >&2
    exit 0
fi

echo "==> docs/API_USAGE.md examples (scripts/api-examples.sh)"
scripts/api-examples.sh

echo "==> the Dockerfile's build and start, outside Docker (scripts/docker-parity.sh)"
scripts/docker-parity.sh

echo "==> browser end-to-end test (web/e2e)"
command -v node >/dev/null || { echo "test.sh: node is not installed (Node.js 20+ is needed for the web client and its test)" >&2; exit 1; }
command -v npm >/dev/null || { echo "test.sh: npm is not installed" >&2; exit 1; }

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM_PATH" ]]; then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
        echo "test.sh: $CHROMIUM_PATH is missing; installing Debian's chromium: apt-get update && apt-get install -y chromium"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
    else
        echo "test.sh: $CHROMIUM_PATH is missing; install it (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM_PATH" >&2
        exit 1
    fi
fi
export CHROMIUM_PATH

if [[ ! -d web/node_modules ]]; then
    echo "test.sh: npm ci in web/"
    (cd web && npm ci --no-audit --no-fund)
fi

node --test web/e2e/
