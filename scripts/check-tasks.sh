#!/usr/bin/env bash
# Runs every task of Taskfile.yml that does not need Docker, and fails if one
# fails. CI runs it after the test suite (so the builds are warm).
#
#   scripts/check-tasks.sh
#
# - `test` is the README's test command (./scripts/test.sh), which CI runs on
#   its own just before; it is not run a second time, only listed by
#   `task --list`.
# - local-up and local-down need Docker, which CI does not have.
# - The servers (run, run-dev, dev, web) are started on free ports, must
#   answer, and are stopped with SIGTERM.
# - migrate-* run against a scratch DATA_DIR; migrate-create adds a migration
#   in the tree, checks that the migration crate still builds, and removes it
#   again (it refuses to run on a tree with changes under migrations/).
# - bench runs one short SQLite ingest scenario; test-coverage covers the
#   server's unit tests only (the whole-suite figure in the README comes from
#   `task test-coverage` without arguments).
# - clean runs last, on a scratch CARGO_TARGET_DIR and DATA_DIR; it must
#   remove web/dist too, which is then put back for the steps after this
#   script (the fuzz build would otherwise rebuild around the fallback page).
#
# Built once, reused (each change keeps the guard; what is not re-checked here
# is checked elsewhere):
# - From build-client on, TIDINGS_SKIP_WEB_BUILD=1 is set, as in the
#   Dockerfile's builder: the release tasks (build-all, build, run,
#   migrate-*) then make exactly the release build docker-parity made (the
#   test step), so none of them compiles the server again. The other path of
#   build.rs, building web/ with npm itself, is what every debug build of the
#   test step and clippy runs, with CI=true making a failed npm build fatal.
# - build-client rebuilds web/dist; when the result is byte-identical to the
#   web/dist already there, the old files (and their times) are put back, so
#   cargo does not rebuild the server around the same client.
# - bench runs with BIN_DIR=target/release: the server binary above and a
#   tidings-load built on its own (`cargo build --release -p tidings-load`).
#   bench.sh's own `cargo build --release -p tidings -p tidings-load` resolves
#   other features for the shared dependencies and compiled sea-orm, sqlx and
#   the server a second time; what bench runs is the same code.
# - test-coverage: in CI the instrumented build is made in the background
#   (.ci/run, `scripts/coverage.sh --lib --no-run`) while other steps run;
#   the task here reuses it and runs the server's unit tests under coverage.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
py_bin=$(scripts/py-tools.sh)
export PATH="$root/scripts/tools:$py_bin:$PATH"
command -v task >/dev/null || { echo "check-tasks: task not found" >&2; exit 1; }

scratch=$(mktemp -d)
bg_pid=""
cleanup() {
    if [[ -n "$bg_pid" ]]; then kill -TERM -- "-$bg_pid" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT

declare -A done_tasks=()
# Each line says the seconds since this script started, so the log shows
# which task the time goes to.
t0=$SECONDS
ran() { done_tasks[$1]=1; echo "ok   task $1 [$((SECONDS - t0))s]"; }
step() { printf '\n==> task %s [%ds]\n' "$*" "$((SECONDS - t0))"; }
free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits until $2 answers (curl), while the task started in the background
# (its own process group) is alive; then stops the group with SIGTERM.
serve_check() {
    local name=$1 url=$2 log=$3 waited=0
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
        if ! kill -0 "$bg_pid" 2>/dev/null; then
            cat "$log" >&2
            echo "check-tasks: task $name exited before $url answered" >&2
            exit 1
        fi
        if ((waited >= 3000)); then
            cat "$log" >&2
            echo "check-tasks: task $name: $url did not answer within 300 s" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -TERM -- "-$bg_pid"
    wait "$bg_pid" 2>/dev/null || true
    bg_pid=""
    ran "$name"
}

serve_task() { # name port-variable-args...
    local name=$1
    shift
    local log="$scratch/$name.log"
    setsid env "$@" >"$log" 2>&1 &
    bg_pid=$!
}

step lint
task lint && ran lint

step install
task install && ran install

step proto
task proto && ran proto
[[ -s web/src/gen/messaging_pb.ts ]] || { echo "check-tasks: proto did not generate web/src/gen/messaging_pb.ts" >&2; exit 1; }

step build-client
if [[ -f web/dist/index.html ]]; then cp -a web/dist "$scratch/dist-before"; fi
task build-client && ran build-client
[[ -s web/dist/index.html ]] || { echo "check-tasks: build-client made no web/dist/index.html" >&2; exit 1; }
if [[ -d "$scratch/dist-before" ]] && diff -rq "$scratch/dist-before" web/dist >/dev/null; then
    echo "check-tasks: web/dist is byte-identical to the one before; its old files are kept (no server rebuild around it)"
    rm -rf web/dist
    cp -a "$scratch/dist-before" web/dist
fi
# The release tasks use this web/dist as the Dockerfile's builder does.
export TIDINGS_SKIP_WEB_BUILD=1

step build-all
task build-all && ran build-all

step build
task build && ran build
[[ -x target/release/tidings ]] || { echo "check-tasks: build made no target/release/tidings" >&2; exit 1; }

for name in run run-dev dev; do
    step "$name"
    port=$(free_port)
    serve_task "$name" DATA_DIR="$scratch/data-$name" task "$name" -- --listen-addr "127.0.0.1:$port"
    serve_check "$name" "http://127.0.0.1:$port/healthz" "$scratch/$name.log"
done

step web
port=$(free_port)
serve_task web task web -- --port "$port" --strictPort --host 127.0.0.1
serve_check web "http://127.0.0.1:$port/" "$scratch/web.log"

step "migrate-up, migrate-status, migrate-down"
export DATA_DIR="$scratch/data-migrate"
task migrate-up && ran migrate-up
task migrate-status | tee "$scratch/status"
grep -qi 'applied' "$scratch/status" || { echo "check-tasks: migrate-status shows no applied migration" >&2; exit 1; }
ran migrate-status
task migrate-down && ran migrate-down
task migrate-status | tee "$scratch/status-after"
cmp -s "$scratch/status" "$scratch/status-after" && { echo "check-tasks: migrate-down changed nothing" >&2; exit 1; }
unset DATA_DIR

step migrate-create
if [[ -n "$(git status --porcelain -- migrations)" ]]; then
    echo "check-tasks: migrations/ has uncommitted changes; not running migrate-create here" >&2
    exit 1
fi
task migrate-create NAME=check_tasks_probe
created=(migrations/src/m*_check_tasks_probe.rs)
[[ -f "${created[0]}" ]] || { echo "check-tasks: migrate-create wrote no file" >&2; exit 1; }
grep -q "check_tasks_probe::Migration" migrations/src/lib.rs || { echo "check-tasks: migrate-create did not register the migration" >&2; exit 1; }
build_rc=0
cargo build --locked -p migration || build_rc=$?
rm -f "${created[@]}"
git checkout -- migrations/src/lib.rs
((build_rc == 0)) || { echo "check-tasks: the migration crate does not build with the new migration" >&2; exit 1; }
ran migrate-create

step bench
cargo build --release --locked -p tidings-load
BIN_DIR=target/release BACKENDS=sqlite SCENARIOS=ingest DURATION=3s WARMUP=1s OUT="$scratch/bench" task bench
grep -q ingest "$scratch/bench/results.tsv" || { echo "check-tasks: bench wrote no ingest result" >&2; exit 1; }
ran bench

step test-coverage
task test-coverage -- --lib
ran test-coverage

step clean
mkdir -p "$scratch/target/debug" "$scratch/data-clean"
touch "$scratch/target/debug/marker" "$scratch/data-clean/tidings.db"
# clean also removes web/dist; it is put back afterwards (same files, same
# times), so the steps after this one find the client their builds used.
dist_kept=""
if [[ -d web/dist ]]; then cp -a web/dist "$scratch/dist-kept" && dist_kept=1; fi
CARGO_TARGET_DIR="$scratch/target" DATA_DIR="$scratch/data-clean" task clean
[[ ! -e "$scratch/target/debug/marker" && ! -e "$scratch/data-clean" && ! -e web/dist ]] || { echo "check-tasks: clean left files behind" >&2; exit 1; }
if [[ -n "$dist_kept" ]]; then cp -a "$scratch/dist-kept" web/dist; fi
ran clean

# Every task is accounted for: run above, or one of the documented exceptions.
missing=()
while read -r name; do
    case "$name" in
        test | local-up | local-down) ;;
        *) [[ -n "${done_tasks[$name]:-}" ]] || missing+=("$name") ;;
    esac
done < <(task --list-all --json | python -c 'import json, sys; print("\n".join(t["name"] for t in json.load(sys.stdin)["tasks"]))')
if ((${#missing[@]})); then
    echo "check-tasks: tasks not checked: ${missing[*]}" >&2
    exit 1
fi
echo "check-tasks: every task except test (run by CI itself), local-up and local-down (Docker) ran green"
