#!/usr/bin/env bash
# Guards the wire contract with buf (config: proto/buf.yaml):
#   (a) buf lint proto
#   (b) buf breaking proto/ against the original server's contract,
#       tests/compat/original.proto (SPEC §2.1)
#   (c) buf breaking proto/ against the previous commit's proto/
#       (BUF_AGAINST_REF, default HEAD~1); skipped, saying so, when there is
#       no such commit (first commit, or a shallow clone without it) or it
#       had no proto/.
#
#   scripts/buf-check.sh
#   PROTO_DIR=/tmp/proto-copy scripts/buf-check.sh   # check a copy (absolute path)
#
# buf is the real binary of the `@bufbuild/buf` npm package, a devDependency
# of web/ (web/node_modules/.bin/buf); `npm ci` in web/ installs it when
# web/node_modules is missing. Everything is local: no network, no registry.
# Takes a few seconds.
#
# How it was checked to guard (copies of proto/, never the real file):
# - Message's `string content = 4;` renamed to `string body = 4;` in a copy
#   given as PROTO_DIR: (b) and (c) fail with
#     Field "4" on message "Message" changed name from "content" to "body".
#     Field "4" with name "body" on message "Message" changed option
#     "json_name" from "content" to "body".
# - an extension field renamed (Message's `seq`): (c) fails; (b) passes, as
#   the original contract has no such field.
# - a message `snake_case` with a field `Bad` added: (a) fails (PascalCase,
#   lower_snake_case).
# The real proto/ passes all three.
set -euo pipefail

cd "$(dirname "$0")/.."
proto=${PROTO_DIR:-proto}
against_ref=${BUF_AGAINST_REF:-HEAD~1}

buf=web/node_modules/.bin/buf
if [[ ! -x "$buf" ]]; then
    echo "buf-check: installing web/ dev dependencies (npm ci) for buf" >&2
    (cd web && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
[[ -x "$buf" ]] || { echo "buf-check: $buf is missing after npm ci" >&2; exit 1; }
# buf reads its config from the module's buf.yaml; a copy of proto/ checked
# with PROTO_DIR gets the real one when it has none.
if [[ ! -f "$proto/buf.yaml" ]]; then
    echo "buf-check: $proto has no buf.yaml" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
step() {
    local name=$1
    shift
    if "$@"; then
        echo "ok   buf-check: $name"
    else
        echo "FAIL buf-check: $name" >&2
        failed=1
    fi
}

step "buf lint $proto" "$buf" lint "$proto"

# The original contract as a module of its own: the same file name as ours,
# so buf compares messaging.proto with messaging.proto (FILE rules pair files
# by name).
mkdir -p "$work/original"
cp tests/compat/original.proto "$work/original/messaging.proto"
step "buf breaking $proto against tests/compat/original.proto" \
    "$buf" breaking "$proto" --against "$work/original"

# The previous commit's proto/, taken out of git (works in any clone with
# that commit; no work tree of it is needed).
if ! git rev-parse -q --verify "$against_ref^{commit}" >/dev/null 2>&1; then
    echo "skip buf-check: buf breaking against $against_ref's proto/: there is no commit $against_ref here (first commit, or a shallow clone)"
elif [[ -z "$(git ls-tree -d "$against_ref" proto)" ]]; then
    echo "skip buf-check: buf breaking against $against_ref's proto/: $against_ref has no proto/"
else
    mkdir -p "$work/previous"
    git archive "$against_ref" proto | tar -x -C "$work/previous"
    step "buf breaking $proto against $against_ref's proto/ ($(git rev-parse --short "$against_ref"))" \
        "$buf" breaking "$proto" --against "$work/previous/proto"
fi

if ((failed)); then
    echo "buf-check: the wire contract check failed (rules: proto/buf.yaml)" >&2
    exit 1
fi
echo "buf-check: passed"
