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
#  2. Runs the `web` stage's RUN commands, then the `builder` stage's RUN
#     commands with its ENV, in this checkout (the image's WORKDIR /src).
#     Absolute image paths are mapped into a scratch root: /usr/local/bin/tidings
#     becomes $stage/usr/local/bin/tidings.
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
export PATH="$root/scripts/tools:$py_bin:$PATH"

echo "==> parse Dockerfile and docker-compose.yml"
python scripts/tools/check_deploy.py check

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

echo "==> Dockerfile stage web: ${WEB_RUN[*]}"
for cmd in "${WEB_RUN[@]}"; do
    echo "+ $cmd"
    bash -ec "$cmd"
done

echo "==> Dockerfile stage builder: ENV ${BUILDER_ENV[*]}"
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
# Captured first: `grpcurl | grep -q` under pipefail fails at random when
# grep exits on its match before grpcurl has finished writing (EPIPE).
health=$(grpcurl -plaintext "127.0.0.1:$port" grpc.health.v1.Health/Check) || fail "grpc.health.v1 did not answer"
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
