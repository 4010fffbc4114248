#!/usr/bin/env bash
# Runs every ```sh block of docs/API_USAGE.md, in order, against a fresh
# server, twice: once over native gRPC and once over gRPC-Web, so the
# documented `buf curl` and curl examples cannot rot.
#
#   scripts/api-examples.sh                 # builds target/debug/tidings if needed
#   TIDINGS_BIN=target/release/tidings scripts/api-examples.sh
#   API_PROTOCOLS=grpcweb scripts/api-examples.sh   # one pass only
#
# - The calls are made with `buf curl`, the real buf CLI (the `@bufbuild/buf`
#   npm package, a devDependency of web/; `npm ci` in web/ when
#   web/node_modules is missing). It learns the schema from the server's
#   gRPC reflection, as grpcurl does: no .proto is passed.
# - Both protocols, for every call: the page is written for native gRPC, and
#   every `buf curl` of it says `--protocol grpc --http2-prior-knowledge`
#   (checked here; the page keeps it in one shorthand, `api`). The first pass runs the blocks as written;
#   the second runs them again with that flag replaced by
#   `--protocol grpcweb`, against a second fresh server, so the same accounts
#   and the same expected output hold. A block with a line
#   `# native gRPC only` (Session: gRPC-Web has no client streaming) is
#   skipped in the gRPC-Web pass, and says so.
#   With reflection, buf curl speaks HTTP/2 (h2c) to an http:// URL, for
#   gRPC-Web too; gRPC-Web over HTTP/1.1 is the page's raw curl example
#   (and the browser test).
# - The server runs embedded (SQLite in a temp dir) on a free port; every
#   `localhost:8080` in the examples is pointed at it.
# - The blocks of a pass run one after another, each with `set -eo pipefail`;
#   shell variables and functions set in one block are visible in the next.
# - A block passes when it exits 0, or, if it uses `--timeout` (a stream the
#   example stops), when it ends with exit code 32 (buf curl exits with the
#   gRPC code shifted left by three: DEADLINE_EXCEEDED, 4, is 32) and prints
#   `deadline_exceeded`; and when its output contains every `#=> text` line
#   of the block (runs of blanks count as one, so JSON spacing does not
#   matter).
# - The grpcurl spelling of each call stays on the page beside it, in a
#   ```text block that is not run. It is checked to exist: the ```text
#   blocks between one ```sh block and the next must call every
#   Service/Method the ```sh block calls, grpcurl's way
#   (`localhost:8080 Service/Method`). Plain `curl` lines (the raw gRPC-Web
#   example) need none.
# Needs python3, jq, curl, xxd (installed with apt-get when missing and
# running as root) and npm.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
doc=docs/API_USAGE.md
native='--protocol grpc --http2-prior-knowledge'
web='--protocol grpcweb'
protocols=${API_PROTOCOLS:-grpc grpcweb}

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

if [[ ! -x web/node_modules/.bin/buf ]]; then
    echo "api-examples: installing web/ dev dependencies (npm ci) for buf" >&2
    (cd web && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
[[ -x web/node_modules/.bin/buf ]] || { echo "api-examples: web/node_modules/.bin/buf is missing after npm ci" >&2; exit 1; }
bin=${TIDINGS_BIN:-target/debug/tidings}
if [[ -z "${TIDINGS_BIN:-}" ]]; then
    cargo build --locked --bin tidings
fi

work=$(mktemp -d)
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    server_pid=""
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT

# Only buf on PATH from web/node_modules, not every tool installed there.
mkdir -p "$work/bin"
ln -s "$root/web/node_modules/.bin/buf" "$work/bin/buf"
export PATH="$work/bin:$PATH"
echo "api-examples: buf $(buf --version 2>&1 | head -n 1)"

# A fresh server (its own data dir) on a free port: sets $port, $server_pid.
start_server() {
    local data=$1
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    DATA_DIR="$data" LISTEN_ADDR="127.0.0.1:$port" LOG_LEVEL=warn "$bin" serve >"$data.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$data.log" >&2; echo "api-examples: the server exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "api-examples: the server did not come up" >&2
    exit 1
}

# Split the page into its sh blocks: $work/page/block-NN.sh.
mkdir -p "$work/page"
awk -v dir="$work/page" '
    /^```sh[[:space:]]*$/ { n++; inside = 1; file = sprintf("%s/block-%02d.sh", dir, n); next }
    /^```/ && inside { inside = 0; next }
    inside { print > file }
' "$doc"
blocks=("$work"/page/block-*.sh)
((${#blocks[@]} > 0)) || { echo "api-examples: no sh blocks in $doc" >&2; exit 1; }

# The page's own shape, before anything runs.
shape_ok=1
# Every buf curl names the native protocol, so that the gRPC-Web pass can
# switch it (without it buf would speak Connect, which Tidings does not, or
# stay on gRPC in that pass).
while IFS= read -r line; do
    case "$line" in
        *"$native"*) ;;
        *) shape_ok=0; echo "FAIL $doc: a buf curl without '$native' (the gRPC-Web pass could not switch it): $line" ;;
    esac
done < <(cat "${blocks[@]}" | grep -E '(^|[^[:alnum:]_-])buf curl( |$)' || true)
grep -qF -- "$native" "${blocks[@]}" || { shape_ok=0; echo "FAIL $doc: no buf curl says '$native'"; }
# Beside each sh block, the same calls spelled for grpcurl in ```text blocks.
methods='(messaging\.[A-Za-z]+|grpc\.health\.v1\.Health)/[A-Za-z]+'
awk -v dir="$work/page" '
    /^```sh[[:space:]]*$/ { n++; mode = "sh"; next }
    /^```text[[:space:]]*$/ && n { mode = "text"; next }
    /^```/ && mode { mode = ""; next }
    mode == "text" { print > sprintf("%s/text-%02d.txt", dir, n) }
' "$doc"
for block in "${blocks[@]}"; do
    n=$(basename "$block" .sh | sed 's/block-//')
    text="$work/page/text-$n.txt"
    while IFS= read -r method; do
        if [[ ! -f "$text" ]]; then
            shape_ok=0; echo "FAIL $doc block $n: no grpcurl spelling (a \`\`\`text block) after it"; break
        fi
        # grpcurl's form: ADDRESS SERVICE/METHOD, as two words.
        grep -qE "localhost:8080 $method([^A-Za-z]|$)" "$text" \
            || { shape_ok=0; echo "FAIL $doc block $n: its grpcurl spelling lacks 'localhost:8080 $method'"; }
    done < <(grep -vE '^[[:space:]]*#' "$block" | grep -vE '(^|[|;&(])[[:space:]]*curl[[:space:]]' |
        grep -oE "$methods" | sort -u)
done
((shape_ok)) || { echo "api-examples: $doc is not in the shape this script runs" >&2; exit 1; }

failed=0
total=0
for protocol in $protocols; do
    case "$protocol" in
        grpc) label="native gRPC" ;;
        grpcweb) label="gRPC-Web" ;;
        *) echo "api-examples: unknown protocol $protocol in API_PROTOCOLS (grpc, grpcweb)" >&2; exit 1 ;;
    esac
    echo "== $label pass"
    pass="$work/$protocol"
    mkdir -p "$pass"
    start_server "$pass/data"
    : >"$pass/state.sh"
    for page_block in "${blocks[@]}"; do
        n=$(basename "$page_block" .sh | sed 's/block-//')
        name="$doc block $n ($label)"
        if [[ "$protocol" == grpcweb ]] && grep -q '^# native gRPC only' "$page_block"; then
            echo "skip $name: native gRPC only"
            continue
        fi
        block="$pass/block-$n.sh"
        sed "s#localhost:8080#127.0.0.1:$port#g" "$page_block" >"$block"
        if [[ "$protocol" == grpcweb ]]; then
            sed -i "s#$native#$web#g" "$block"
        fi
        # Each block runs in its own bash; what it defines is saved for the next.
        cat >"$pass/run.sh" <<RUN
__before=\$(compgen -v | sort)
source "$pass/state.sh"
__save() {
    for v in \$(comm -13 <(echo "\$__before") <(compgen -v | sort)); do
        [[ \$v == __* ]] || declare -p "\$v"
    done >"$pass/state.next"
    declare -f >>"$pass/state.next"
}
trap __save EXIT
set -eo pipefail
source "$block"
RUN
        set +e
        bash "$pass/run.sh" >"$pass/out" 2>&1
        rc=$?
        set -e
        mv "$pass/state.next" "$pass/state.sh"
        ok=1
        if ((rc != 0)); then
            if ! { grep -q -- '--timeout' "$block" && ((rc == 32)) && grep -q 'deadline_exceeded' "$pass/out"; }; then
                ok=0
                echo "FAIL $name: exit code $rc"
            fi
        fi
        tr -s ' \t' ' ' <"$pass/out" >"$pass/out.squeezed"
        while IFS= read -r want; do
            grep -qF -- "$want" "$pass/out.squeezed" || { ok=0; echo "FAIL $name: output lacks: $want"; }
        done < <(sed -n 's/^#=> //p' "$block" | tr -s ' \t' ' ')
        total=$((total + 1))
        if ((ok)); then
            echo "ok   $name ($(grep -c . "$block") lines)"
        else
            failed=1
            echo "---- block:"; cat "$block"; echo "---- output:"; cat "$pass/out"; echo "----"
        fi
    done
    stop_server
    if ((failed)); then
        echo "api-examples: some examples of $doc failed over $label (server log: below)" >&2
        tail -n 50 "$pass/data.log" >&2
        exit 1
    fi
done

echo "api-examples: all ${#blocks[@]} sh blocks of $doc passed ($total runs: $protocols)"
