#!/usr/bin/env bash
# Where the server's time goes: profiles the release server under a short
# load, for docs/BENCHMARKS.md.
#
#   load/profile.sh callgrind ingest     # instruction counts (valgrind)
#   load/profile.sh perf fanout          # cpu-clock samples (perf record)
#
# callgrind: the server runs under valgrind with collection switched on
# only for the measured window (the tool's --at-start / --at-end hooks call
# callgrind_control), so user creation (argon2) is left out unless the
# scenario is `login`. Counts instructions, so it is repeatable on a busy
# machine, but valgrind runs one thread at a time and ~50x slower: keep the
# load small. perf: samples the full-speed server on the cpu-clock software
# event (this machine's hardware counters are not available to perf), flat
# by symbol (release builds keep their symbol tables).
#
# Embedded SQLite by default; BACKEND=postgres uses the scratch database
# `tidings_bench` and Redis prefix `tidings_bench:` (removed at the end).
# BIN_DIR: use the tidings and tidings-load binaries in that folder instead
# of building. Output: $OUT (default target/bench-results/profile-<mode>-<scenario>-<time>).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
mode=${1:-callgrind}
scenario=${2:-ingest}
BACKEND=${BACKEND:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL_BENCH=${REDIS_URL_BENCH:-redis://127.0.0.1:6379}
OUT=${OUT:-"$root/target/bench-results/profile-$mode-$scenario-$BACKEND-$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

work=$(mktemp -d)
if [[ -n "${BIN_DIR:-}" ]]; then
    cp "$BIN_DIR/tidings" "$BIN_DIR/tidings-load" "$work/"
else
    cargo build --release --locked -p tidings -p tidings-load
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    cp "$target_dir/release/tidings" "$target_dir/release/tidings-load" "$work/"
fi

server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [[ $BACKEND == postgres ]]; then
        psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS tidings_bench WITH (FORCE)" >/dev/null 2>&1 || true
        redis-cli --scan --pattern 'tidings_bench:*' | xargs -r -n 500 redis-cli del >/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Abuse limits off, as in bench.sh.
env_args=(LISTEN_ADDR=127.0.0.1:0 LOG_FORMAT=json LOG_LEVEL=info DATA_DIR="$work/data"
    SEND_RATE=0 TYPING_RATE=0 AUTH_RATE=0 ROOM_RATE=0 LOOKUP_RATE=0 MAX_CONNECTIONS_PER_IP=0 MAX_STREAMS_PER_USER=0)
if [[ $BACKEND == postgres ]]; then
    psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS tidings_bench WITH (FORCE)" >/dev/null
    psql -q "$PG_URL/postgres" -c "CREATE DATABASE tidings_bench" >/dev/null
    env_args+=(DATABASE_URL="$PG_URL/tidings_bench" REDIS_URL="$REDIS_URL_BENCH"
        REDIS_KEY_PREFIX=tidings_bench: JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')")
fi

case $mode in
    callgrind)
        env -u DATABASE_URL -u REDIS_URL -u JWT_SECRET "${env_args[@]}" \
            valgrind --tool=callgrind --instr-atstart=no \
            --callgrind-out-file="$OUT/callgrind.out" "$work/tidings" >"$OUT/server.log" 2>&1 &
        server_pid=$!
        hooks=(--at-start "callgrind_control -i on $server_pid >/dev/null"
            --at-end "callgrind_control -i off $server_pid >/dev/null")
        ;;
    perf)
        env -u DATABASE_URL -u REDIS_URL -u JWT_SECRET "${env_args[@]}" \
            "$work/tidings" >"$OUT/server.log" 2>&1 &
        server_pid=$!
        hooks=(--at-start "perf record -e cpu-clock -F 499 -g -p $server_pid -o $OUT/perf.data >/dev/null 2>&1 & echo \$! > $work/perf.pid"
            --at-end "kill -INT \$(cat $work/perf.pid); sleep 2")
        ;;
    *)
        echo "usage: load/profile.sh callgrind|perf SCENARIO" >&2
        exit 2
        ;;
esac

addr=""
for _ in $(seq 1 600); do
    addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$OUT/server.log" | head -n 1)
    [[ -n "$addr" ]] && break
    sleep 0.2
done
[[ -n "$addr" ]] || { cat "$OUT/server.log" >&2; exit 1; }

# Small loads under valgrind; the usual ones under perf.
if [[ $mode == callgrind ]]; then
    case $scenario in
        ingest) args=(ingest --senders 8 --connections 2) ;;
        fanout) args=(fanout --subscribers 500 --per-user 10 --connections 4 --rate 10) ;;
        latency) args=(latency --chats 10 --subscribers 5 --senders 2 --rate 20) ;;
        *) args=("$scenario") ;;
    esac
    timing=(--duration "${DURATION:-15s}" --warmup 2s --drain 10s --connect-timeout 120s --max-time 900s)
else
    case $scenario in
        ingest) args=(ingest --senders 64) ;;
        fanout) args=(fanout --subscribers "${FANOUT_SUBSCRIBERS:-10000}") ;;
        *) args=("$scenario") ;;
    esac
    timing=(--duration "${DURATION:-15s}" --warmup 2s)
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt"
"$work/tidings-load" "${args[@]}" --server "http://$addr" --server-pid "$server_pid" \
    --label "$BACKEND $mode" "${timing[@]}" "${hooks[@]}" | tee "$OUT/tool.txt"

kill -TERM "$server_pid"
for _ in $(seq 1 300); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
done
server_pid=""

case $mode in
    callgrind)
        callgrind_annotate --threshold=99 "$OUT/callgrind.out" >"$OUT/self.txt" 2>&1 || true
        callgrind_annotate --inclusive=yes --threshold=99 "$OUT/callgrind.out" >"$OUT/inclusive.txt" 2>&1 || true
        head -n 60 "$OUT/self.txt"
        ;;
    perf)
        perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
            grep -v '^$' >"$OUT/self.txt" || true
        perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null |
            grep -v '^$' >"$OUT/dso.txt" || true
        grep -E '^ +[0-9]' "$OUT/self.txt" | head -n 50
        ;;
esac
echo "profile in $OUT"
