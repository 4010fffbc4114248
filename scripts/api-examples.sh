#!/usr/bin/env bash
# Runs every ```sh block of docs/API_USAGE.md, in order, against a fresh
# server, so the documented grpcurl and curl examples cannot rot.
#
#   scripts/api-examples.sh                 # builds target/debug/tidings if needed
#   TIDINGS_BIN=target/release/tidings scripts/api-examples.sh
#
# - The server runs embedded (SQLite in a temp dir) on a free port; every
#   `localhost:8080` in the examples is pointed at it.
# - `grpcurl` is scripts/tools/grpcurl, a stand-in for the grpcurl subset the
#   page uses (grpcurl itself is a Go binary no reachable registry ships); it
#   reads the services from the server's reflection API, like grpcurl.
# - The blocks run one after another, each with `set -eo pipefail`; shell
#   variables and functions set in one block are visible in the next.
# - A block passes when it exits 0, or, if it uses -max-time (a stream the
#   example stops), when it ends with DeadlineExceeded (exit 68); and when its
#   output contains every `#=> text` line of the block.
# Needs python3, jq, curl and xxd (installed with apt-get when missing and
# running as root).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
doc=docs/API_USAGE.md

need=()
for tool in jq curl xxd; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
        echo "api-examples: installing ${need[*]} with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    else
        echo "api-examples: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
        exit 1
    fi
fi

py_bin=$(scripts/py-tools.sh)
export PATH="$root/scripts/tools:$py_bin:$PATH"

bin=${TIDINGS_BIN:-target/debug/tidings}
if [[ -z "${TIDINGS_BIN:-}" ]]; then
    cargo build --locked --bin tidings
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DATA_DIR="$work/data" LISTEN_ADDR="127.0.0.1:$port" LOG_LEVEL=warn "$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "api-examples: the server exited" >&2; exit 1; }
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" || { echo "api-examples: the server did not come up" >&2; exit 1; }

# Split the page into its sh blocks: $work/block-N.sh.
awk -v dir="$work" '
    /^```sh[[:space:]]*$/ { n++; inside = 1; file = sprintf("%s/block-%02d.sh", dir, n); next }
    /^```/ && inside { inside = 0; next }
    inside { print > file }
' "$doc"
blocks=("$work"/block-*.sh)
((${#blocks[@]} > 0)) || { echo "api-examples: no sh blocks in $doc" >&2; exit 1; }

: >"$work/state.sh"
failed=0
for block in "${blocks[@]}"; do
    name="$doc block $(basename "$block" .sh | sed 's/block-//')"
    sed -i "s#localhost:8080#127.0.0.1:$port#g" "$block"
    # Each block runs in its own bash; what it defines is saved for the next.
    cat >"$work/run.sh" <<RUN
__before=\$(compgen -v | sort)
source "$work/state.sh"
__save() {
    for v in \$(comm -13 <(echo "\$__before") <(compgen -v | sort)); do
        [[ \$v == __* ]] || declare -p "\$v"
    done >"$work/state.next"
    declare -f >>"$work/state.next"
}
trap __save EXIT
set -eo pipefail
source "$block"
RUN
    set +e
    bash "$work/run.sh" >"$work/out" 2>&1
    rc=$?
    set -e
    mv "$work/state.next" "$work/state.sh"
    ok=1
    if ((rc != 0)); then
        if ! { grep -q -- '-max-time' "$block" && ((rc == 68)) && grep -q 'Code: DeadlineExceeded' "$work/out"; }; then
            ok=0
            echo "FAIL $name: exit code $rc"
        fi
    fi
    while IFS= read -r want; do
        grep -qF -- "$want" "$work/out" || { ok=0; echo "FAIL $name: output lacks: $want"; }
    done < <(sed -n 's/^#=> //p' "$block")
    if ((ok)); then
        echo "ok   $name ($(grep -c . "$block") lines)"
    else
        failed=1
        echo "---- block:"; cat "$block"; echo "---- output:"; cat "$work/out"; echo "----"
    fi
done

if ((failed)); then
    echo "api-examples: some examples of $doc failed (server log: below)" >&2
    tail -n 50 "$work/server.log" >&2
    exit 1
fi
echo "api-examples: all ${#blocks[@]} sh blocks of $doc passed"
