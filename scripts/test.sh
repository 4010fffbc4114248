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
# Besides the cargo tests:
#   - the web client's unit tests (Vitest, `npm run test:unit` in web/);
#   - load/smoke.sh: the load tool against a real server, a few seconds;
#   - scripts/api-examples.sh: every example of docs/API_USAGE.md, run;
#   - scripts/docker-parity.sh: the Dockerfile's build and start commands
#     outside Docker (this builds the release server, web client inside);
#   - the browser end-to-end test (web/e2e/) against that release server: it
#     installs Debian's Chromium if /usr/bin/chromium is missing (as root, with
#     apt-get), and runs `node --test web/e2e/`.
# They need Node.js 20+ and python3. TIDINGS_SKIP_E2E=1 skips the last three
# (never in CI).
#
# Built once, reused (so a run costs one debug and one release build):
#   - `cargo build --workspace --all-targets` builds the test binaries and the
#     server and load-tool binaries in one go, with the features the tests
#     unify (`cargo build -p tidings` alone resolves other features for tokio,
#     tonic, rustls..., which rebuilt about half the dependency tree a second
#     time). The smoke run and the API examples use these binaries
#     (TIDINGS_BIN, TIDINGS_LOAD_BIN) instead of building their own.
#   - The release binary is docker-parity's (the Dockerfile's own build
#     command); the browser test uses it (target/release/tidings).
# In parallel (the machine has 2 cores; the test run mostly waits on sockets,
# Postgres and timers):
#   - docker-parity (its web build and the release build, at a lower CPU
#     priority) runs while `cargo test` runs;
#   - the smoke run and the API examples run side by side once the tests are
#     done, then the browser test once docker-parity is done.
# The output of a background step is printed, whole, when it ends; each
# step line shows the seconds since test.sh started.
set -euo pipefail

cd "$(dirname "$0")/.."

t0=$SECONDS
step() { printf '==> [test.sh %ds] %s\n' "$((SECONDS - t0))" "$*"; }

if [[ -z "${TEST_DATABASE_URL:-}" || -z "${TEST_REDIS_URL:-}" ]] && [[ "${CI:-}" != "true" ]]; then
    echo "test.sh: TEST_DATABASE_URL and/or TEST_REDIS_URL not set, so only the SQLite/in-process half runs; set both (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres TEST_REDIS_URL=redis://127.0.0.1:6379) to run the Postgres+Redis half too." >&2
fi

skip_e2e=0
if [[ "${TIDINGS_SKIP_E2E:-}" == "1" && "${CI:-}" != "true" ]]; then
    skip_e2e=1
fi

# Background steps: each in its own process group, output in a log file.
logs=$(mktemp -d)
declare -A bg_pids=()
bg_start() { # name command...
    local name=$1
    shift
    setsid "$@" >"$logs/$name.log" 2>&1 &
    bg_pids[$name]=$!
    step "started in the background: $name"
}
bg_wait() { # name: waits, prints the step's output, returns its exit code
    local name=$1 rc=0
    wait "${bg_pids[$name]}" || rc=$?
    unset "bg_pids[$name]"
    step "$name finished (exit $rc); its output:"
    cat "$logs/$name.log"
    return "$rc"
}
cleanup() {
    local pid
    for pid in "${bg_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    rm -rf "$logs"
}
trap cleanup EXIT

if ((!skip_e2e)); then
    command -v node >/dev/null || { echo "test.sh: node is not installed (Node.js 20+ is needed for the web client and its test)" >&2; exit 1; }
    command -v npm >/dev/null || { echo "test.sh: npm is not installed" >&2; exit 1; }
    CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
    export CHROMIUM_PATH
    if [[ ! -x "$CHROMIUM_PATH" ]]; then
        if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
            # A download, not CPU: it runs while the build does. Waited for
            # before anything else uses apt-get.
            echo "test.sh: $CHROMIUM_PATH is missing; installing Debian's chromium: apt-get update && apt-get install -y chromium"
            bg_start chromium-install bash -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium'
        else
            echo "test.sh: $CHROMIUM_PATH is missing; install it (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM_PATH" >&2
            exit 1
        fi
    fi
fi

if command -v npm >/dev/null && [[ -f web/package.json ]]; then
    if [[ ! -d web/node_modules ]]; then
        step "npm ci in web/"
        (cd web && npm ci --no-audit --no-fund)
    fi
    if grep -q '"test:unit"' web/package.json; then
        step "web client unit tests (cd web && npm run test:unit)"
        (cd web && npm run test:unit)
    fi
elif [[ "${CI:-}" == "true" ]]; then
    echo "test.sh: npm is not installed (the web client's unit tests need it)" >&2
    exit 1
fi

step "build the tests and binaries once (cargo build --workspace --all-targets --locked)"
cargo build --workspace --all-targets --locked

# The Python tools are installed once, before the scripts that want them.
py_bin=$(scripts/py-tools.sh)
if ((!skip_e2e)); then
    if [[ -n "${bg_pids[chromium-install]:-}" ]]; then
        bg_wait chromium-install || { echo "test.sh: installing chromium failed" >&2; exit 1; }
    fi
    bg_start docker-parity nice -n 10 scripts/docker-parity.sh
fi

# The S3 endpoint the file-store tests use: moto in server mode (the S3 HTTP
# API, in memory) on a free loopback port, unless one is named already.
if [[ -z "${TEST_S3_ENDPOINT:-}" ]]; then
    s3_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    bg_start moto "$py_bin/moto_server" -H 127.0.0.1 -p "$s3_port"
    for _ in $(seq 150); do
        python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', $s3_port), 0.2)" 2>/dev/null && break
        kill -0 "${bg_pids[moto]}" 2>/dev/null || { cat "$logs/moto.log"; echo "test.sh: moto_server did not start" >&2; exit 1; }
        sleep 0.2
    done
    export TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
    step "S3 endpoint for the file tests: $TEST_S3_ENDPOINT (moto)"
fi

step "cargo test --workspace --locked $*"
cargo test --workspace --locked "$@"

step "load tool smoke run (load/smoke.sh) and, beside it, the docs/API_USAGE.md examples (scripts/api-examples.sh)"
export TIDINGS_BIN=target/debug/tidings TIDINGS_LOAD_BIN=target/debug/tidings-load
if ((skip_e2e)); then
    load/smoke.sh
    echo "test.sh: TIDINGS_SKIP_E2E=1, so the API examples, the Docker parity check and the browser test are skipped." >&2
    exit 0
fi
# docker-parity's web stage runs `npm ci`, which empties web/node_modules for
# a while; the examples may use tools from there, so they start after it.
until grep -Eq '^==> Dockerfile stage (chef|planner|builder)' "$logs/docker-parity.log" 2>/dev/null ||
    ! kill -0 "${bg_pids[docker-parity]}" 2>/dev/null; do
    sleep 1
done
bg_start api-examples scripts/api-examples.sh
smoke_rc=0
load/smoke.sh || smoke_rc=$?
api_rc=0
bg_wait api-examples || api_rc=$?
((smoke_rc == 0)) || { echo "test.sh: load/smoke.sh failed (exit $smoke_rc)" >&2; exit 1; }
((api_rc == 0)) || { echo "test.sh: scripts/api-examples.sh failed (exit $api_rc)" >&2; exit 1; }
unset TIDINGS_BIN TIDINGS_LOAD_BIN

step "waiting for the Dockerfile's build and start, outside Docker (scripts/docker-parity.sh)"
bg_wait docker-parity || { echo "test.sh: scripts/docker-parity.sh failed" >&2; exit 1; }

step "browser end-to-end test (node --test web/e2e/, against target/release/tidings)"
if [[ ! -d web/node_modules ]]; then
    (cd web && npm ci --no-audit --no-fund)
fi
node --test web/e2e/
step "all tests passed"
