#!/usr/bin/env bash
# CI smoke run of the load tool: builds the server and tidings-load (debug),
# starts the server in its embedded mode (SQLite in a temp dir, a free
# loopback port), runs `tidings-load smoke` for a few seconds, stops the
# server and exits with the tool's code. It asserts only that messages
# flowed (every send acknowledged and delivered to a native and a gRPC-Web
# user stream), never a performance figure.
#
#   load/smoke.sh
#   TIDINGS_BIN=target/debug/tidings TIDINGS_LOAD_BIN=target/debug/tidings-load load/smoke.sh
#
# Needs only the Rust toolchain. Honours CARGO_TARGET_DIR. With both
# TIDINGS_BIN and TIDINGS_LOAD_BIN set it builds nothing and runs those
# binaries: scripts/test.sh passes the ones its one `cargo build --workspace
# --all-targets` made (a `cargo build -p tidings -p tidings-load` after the
# tests resolves other dependency features and rebuilt half the tree).
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ -n "${TIDINGS_BIN:-}" && -n "${TIDINGS_LOAD_BIN:-}" ]]; then
    server_bin=$TIDINGS_BIN
    load_bin=$TIDINGS_LOAD_BIN
else
    cargo build --locked -p tidings -p tidings-load
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    server_bin="$target_dir/debug/tidings"
    load_bin="$target_dir/debug/tidings-load"
fi
for b in "$server_bin" "$load_bin"; do
    [[ -x "$b" ]] || { echo "smoke: $b is missing or not executable" >&2; exit 1; }
done

tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Embedded mode whatever the environment says; port 0 picks a free port,
# which the server logs. The abuse limits are off: one address signs up
# every simulated user and each sends far faster than a person.
env -u DATABASE_URL -u REDIS_URL -u JWT_SECRET \
    LISTEN_ADDR=127.0.0.1:0 DATA_DIR="$tmp/data" LOG_FORMAT=json LOG_LEVEL=info \
    SEND_RATE=0 TYPING_RATE=0 AUTH_RATE=0 ROOM_RATE=0 LOOKUP_RATE=0 MAX_CONNECTIONS_PER_IP=0 MAX_STREAMS_PER_USER=0 \
    "$server_bin" >"$tmp/server.log" 2>&1 &
server_pid=$!

addr=""
for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$tmp/server.log" | head -n 1)
    [[ -n "$addr" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "smoke: the server exited during start-up:" >&2
        cat "$tmp/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
if [[ -z "$addr" ]]; then
    echo "smoke: the server did not report its address within 60 s:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi

status=0
"$load_bin" smoke --server "http://$addr" --server-pid "$server_pid" \
    --max-time 60s || status=$?
if [[ $status -ne 0 ]]; then
    echo "smoke: FAILED (exit $status); server log:" >&2
    tail -n 50 "$tmp/server.log" >&2
fi
exit $status
