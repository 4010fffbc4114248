#!/usr/bin/env bash
# Soak: a long mixed-load run, sampling the server's RSS and open file
# descriptors, to show they stay flat after warm-up (docs/RELIABILITY.md).
# Not run in CI.
#
#   load/soak.sh                         # 10 minutes on SQLite
#   BACKEND=postgres SOAK=30m load/soak.sh
#
# The load is tidings-load's `login` scenario: the latency scenario (steady
# sends over many chats, every message delivered to 10 subscribers' user
# streams) with bursts of 50 concurrent logins spread over the run. Every
# SAMPLE_EVERY the script records the server's VmRSS and the number of its
# open file descriptors (from /proc) into $OUT/soak.tsv, and prints a summary:
# the first sample after warm-up against the maximum and the last.
#
# Knobs: SOAK [10m]  RATE [200 msgs/s]  STORMS [20]  SAMPLE_EVERY [15]  WARM [60 s]
#        BACKEND [sqlite|postgres]  PG_URL  REDIS_URL_SOAK  BIN_DIR (prebuilt binaries)
#        OUT [target/soak-results/<timestamp>]
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
SOAK=${SOAK:-10m}
RATE=${RATE:-200}
STORMS=${STORMS:-20}
SAMPLE_EVERY=${SAMPLE_EVERY:-15}
WARM=${WARM:-60}
BACKEND=${BACKEND:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL_SOAK=${REDIS_URL_SOAK:-redis://127.0.0.1:6379}
OUT=${OUT:-"$root/target/soak-results/$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$OUT"

if [[ -z "${BIN_DIR:-}" ]]; then
    cargo build --release --locked -p tidings -p tidings-load
    BIN_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
fi
bin_dir="$OUT/bin"
mkdir -p "$bin_dir"
cp "$BIN_DIR/tidings" "$BIN_DIR/tidings-load" "$bin_dir/"

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [[ "$BACKEND" == postgres ]]; then
        psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS tidings_soak" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env_vars=(LISTEN_ADDR="127.0.0.1:$port" DATA_DIR="$work/data" LOG_LEVEL=warn
    SEND_RATE=0 TYPING_RATE=0 AUTH_RATE=0 ROOM_RATE=0 LOOKUP_RATE=0 MAX_CONNECTIONS_PER_IP=0 MAX_STREAMS_PER_USER=0)
if [[ "$BACKEND" == postgres ]]; then
    psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS tidings_soak" -c "CREATE DATABASE tidings_soak" >/dev/null
    env_vars+=(DATABASE_URL="$PG_URL/tidings_soak" REDIS_URL="$REDIS_URL_SOAK"
        REDIS_KEY_PREFIX="tidings_soak_$$:" JWT_SECRET=soak-secret-soak-secret-soak-secret-0123)
fi
env "${env_vars[@]}" "$bin_dir/tidings" serve >"$OUT/server.log" 2>&1 &
server_pid=$!

"$bin_dir/tidings-load" --server "http://127.0.0.1:$port" --server-pid "$server_pid" \
    --duration "$SOAK" --warmup 5s --max-time 2h --label "soak-$BACKEND" --out "$OUT/results.tsv" \
    login --rate "$RATE" --storms "$STORMS" >"$OUT/load.txt" 2>&1 &
load_pid=$!

printf 'seconds\trss_kib\tfds\n' >"$OUT/soak.tsv"
start=$(date +%s)
while kill -0 "$load_pid" 2>/dev/null; do
    if [[ -r "/proc/$server_pid/status" ]]; then
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
        fds=$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        printf '%s\t%s\t%s\n' "$(($(date +%s) - start))" "$rss" "$fds" >>"$OUT/soak.tsv"
    fi
    sleep "$SAMPLE_EVERY"
done
load_rc=0
wait "$load_pid" || load_rc=$?
cat "$OUT/load.txt"

python3 - "$OUT/soak.tsv" "$WARM" <<'PY'
import sys
rows = [tuple(map(int, l.split("\t"))) for l in open(sys.argv[1]).read().splitlines()[1:] if l]
warm = int(sys.argv[2])
after = [r for r in rows if r[0] >= warm] or rows
first, last = after[0], after[-1]
print(f"samples: {len(rows)} over {rows[-1][0]} s; after warm-up ({warm} s):")
print(f"  RSS KiB: first {first[1]}, max {max(r[1] for r in after)}, last {last[1]} "
      f"(last/first {last[1] / first[1]:.2f})")
print(f"  open fds: first {first[2]}, max {max(r[2] for r in after)}, last {last[2]}")
PY
echo "soak: results in $OUT (soak.tsv, results.tsv, load.txt, server.log)"
exit "$load_rc"
