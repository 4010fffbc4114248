#!/usr/bin/env bash
# The benchmark run behind docs/BENCHMARKS.md.
#
#   load/bench.sh                               # everything, both backends
#   BACKENDS=sqlite SCENARIOS="ingest latency" load/bench.sh
#
# 1. Builds the server and tidings-load in release mode (and copies the
#    binaries aside, so a concurrent build cannot swap them mid-run).
# 2. Measures this machine's reference ceilings in the same run:
#    pgbench single-row INSERT tps with 8 clients (scratch database), and
#    redis-benchmark PUBLISH requests/s.
# 3. For each backend and scenario, starts a fresh server (SQLite in a temp
#    data dir; or Postgres database `tidings_bench` + Redis with key prefix
#    `tidings_bench:`), runs the scenario with --server-pid, stops it.
# 4. Prints the results and saves them in $OUT (results.tsv, machine.txt,
#    server logs). The scratch databases and Redis keys are removed at the
#    end; the shared Redis is never flushed.
#
# Loopback only. Environment knobs (defaults in brackets):
#   BACKENDS ["sqlite postgres"]   SCENARIOS ["ingest latency web login fanout idle"]
#   DURATION [20s]  WARMUP [2s]    OUT [target/bench-results/<timestamp>]
#   PG_URL [postgres://postgres@127.0.0.1:5432]   REDIS_URL_BENCH [redis://127.0.0.1:6379]
#   INGEST_SENDERS [64]  FANOUT_SUBSCRIBERS [10000]  IDLE_STREAMS [20000]
#   ARGS_<scenario>: the tool's whole argument list for that scenario,
#     e.g. ARGS_latency="latency --rate 100" ARGS_fanout="fanout --subscribers 1000"
#   BIN_DIR [unset]: use the tidings and tidings-load binaries in that folder
#     instead of building.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

BACKENDS=${BACKENDS:-"sqlite postgres"}
SCENARIOS=${SCENARIOS:-"ingest latency web login fanout idle"}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-2s}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL_BENCH=${REDIS_URL_BENCH:-redis://127.0.0.1:6379}
REDIS_PREFIX=tidings_bench:
BENCH_DB=tidings_bench
PGBENCH_DB=tidings_bench_pgbench
INGEST_SENDERS=${INGEST_SENDERS:-64}
FANOUT_SUBSCRIBERS=${FANOUT_SUBSCRIBERS:-10000}
IDLE_STREAMS=${IDLE_STREAMS:-20000}
OUT=${OUT:-"$root/target/bench-results/$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

redis_host_port() { # redis://host:port -> "-h host -p port"
    local hp=${REDIS_URL_BENCH#redis://}
    hp=${hp%%/*}
    echo "-h ${hp%%:*} -p ${hp##*:}"
}
# shellcheck disable=SC2046
rcli() { redis-cli $(redis_host_port) "$@"; }

work=$(mktemp -d)
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
clean_redis() {
    rcli --scan --pattern "${REDIS_PREFIX}*" | xargs -r -n 500 redis-cli $(redis_host_port) del >/dev/null || true
}
cleanup() {
    stop_server
    if [[ " $BACKENDS " == *" postgres "* ]] || [[ -n "${PGBENCH_DONE:-}" ]]; then
        psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
        psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
        clean_redis
    fi
    rm -rf "$work"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

# --- 1. build ----------------------------------------------------------------
mkdir -p "$work/bin"
if [[ -n "${BIN_DIR:-}" ]]; then
    cp "$BIN_DIR/tidings" "$BIN_DIR/tidings-load" "$work/bin/"
else
    log "building release binaries"
    cargo build --release --locked -p tidings -p tidings-load
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    # Copied at once: another checkout sharing this target dir may build
    # over the same paths.
    cp "$target_dir/release/tidings" "$target_dir/release/tidings-load" "$work/bin/"
fi
SERVER="$work/bin/tidings"
LOAD="$work/bin/tidings-load"

# --- machine -------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

# --- 2. reference ceilings ----------------------------------------------------
log "reference: pgbench single-row INSERT, 8 clients, 10 s"
PGBENCH_DONE=1
psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" >/dev/null
psql -q "$PG_URL/postgres" -c "CREATE DATABASE $PGBENCH_DB" >/dev/null
psql -q "$PG_URL/$PGBENCH_DB" -c "CREATE TABLE t (id bigserial PRIMARY KEY, v bigint NOT NULL)" >/dev/null
cat >"$work/insert.sql" <<'SQL'
\set v random(1, 1000000000)
INSERT INTO t (v) VALUES (:v);
SQL
echo "load average before pgbench: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
pgbench -n -c 8 -j 2 -T 10 -f "$work/insert.sql" "$PG_URL/$PGBENCH_DB" >"$OUT/pgbench.txt" 2>&1
PGBENCH_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$OUT/pgbench.txt" | tail -n 1)
psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" >/dev/null
log "pgbench: $PGBENCH_TPS tps"

log "reference: redis-benchmark PUBLISH, 200000 requests"
echo "load average before redis-benchmark: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
# shellcheck disable=SC2046
redis-benchmark $(redis_host_port) -q -n 200000 PUBLISH "${REDIS_PREFIX}ch" msg \
    2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -n 1 >"$OUT/redis-benchmark.txt"
PUBLISH_RPS=$(sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' "$OUT/redis-benchmark.txt")
log "redis PUBLISH: $PUBLISH_RPS requests/s"
printf 'reference\tpgbench\tsingle-row INSERT tps (8 clients)\t%s\ttps\t\t\n' "$PGBENCH_TPS" >>"$OUT/results.tsv"
printf 'reference\tredis-benchmark\tPUBLISH requests/s\t%s\trps\t\t\n' "$PUBLISH_RPS" >>"$OUT/results.tsv"

# --- 3. scenarios -------------------------------------------------------------
start_server() { # backend scenario
    local backend=$1 scenario=$2
    local log_file="$OUT/server-$backend-$scenario.log"
    # Abuse limits off: the simulated users all come from one address and
    # send far faster than people (docs/BENCHMARKS.md).
    local -a env_args=(LISTEN_ADDR=127.0.0.1:0 LOG_FORMAT=json LOG_LEVEL=info
        SEND_RATE=0 TYPING_RATE=0 AUTH_RATE=0 ROOM_RATE=0 LOOKUP_RATE=0 MAX_CONNECTIONS_PER_IP=0 MAX_STREAMS_PER_USER=0)
    case $backend in
        sqlite)
            rm -rf "$work/data"
            env_args+=(DATA_DIR="$work/data")
            ;;
        postgres)
            psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null
            psql -q "$PG_URL/postgres" -c "CREATE DATABASE $BENCH_DB" >/dev/null
            clean_redis
            env_args+=(DATA_DIR="$work/data" DATABASE_URL="$PG_URL/$BENCH_DB"
                REDIS_URL="$REDIS_URL_BENCH" REDIS_KEY_PREFIX="$REDIS_PREFIX"
                JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')")
            ;;
    esac
    # Created before the server starts: the polling below must not race the
    # background redirection (sed on a missing file fails the script).
    : >"$log_file"
    env -u DATABASE_URL -u REDIS_URL -u JWT_SECRET "${env_args[@]}" "$SERVER" >"$log_file" 2>&1 &
    server_pid=$!
    SERVER_ADDR=""
    for _ in $(seq 1 300); do
        SERVER_ADDR=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$log_file" | head -n 1)
        [[ -n "$SERVER_ADDR" ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.2
    done
    log "server ($backend) did not start:"
    tail -n 20 "$log_file" >&2
    return 1
}

scenario_args() { # ARGS_<scenario> overrides, e.g. ARGS_latency="latency --rate 100"
    local override="ARGS_$1"
    if [[ -n "${!override:-}" ]]; then
        echo "${!override}"
        return
    fi
    case $1 in
        ingest) echo "ingest --senders $INGEST_SENDERS" ;;
        latency) echo "latency" ;;
        web) echo "web" ;;
        login) echo "login" ;;
        fanout) echo "fanout --subscribers $FANOUT_SUBSCRIBERS" ;;
        idle) echo "idle --streams $IDLE_STREAMS" ;;
        *) log "unknown scenario $1"; return 1 ;;
    esac
}

failed=()
for backend in $BACKENDS; do
    for scenario in $SCENARIOS; do
        start_server "$backend" "$scenario"
        load_now=$(cut -d' ' -f1-3 /proc/loadavg)
        log "$backend/$scenario: server pid $server_pid at $SERVER_ADDR; load average $load_now"
        printf '%s\t%s\tload average before (1, 5, 15 min)\t%s\t\t\t\n' "$backend" "$scenario" "$load_now" >>"$OUT/results.tsv"
        # shellcheck disable=SC2046
        if ! "$LOAD" $(scenario_args "$scenario") \
            --server "http://$SERVER_ADDR" --server-pid "$server_pid" \
            --duration "$DURATION" --warmup "$WARMUP" --label "$backend" \
            --ref-pgbench-tps "$PGBENCH_TPS" --ref-publish-rps "$PUBLISH_RPS" \
            --out "$OUT/results.tsv" 2>&1 | tee "$OUT/tool-$backend-$scenario.txt"; then
            failed+=("$backend/$scenario")
        fi
        stop_server
        sleep 2
    done
done

log "results in $OUT/results.tsv"
if ((${#failed[@]})); then
    log "failed: ${failed[*]}"
    exit 1
fi
