#!/usr/bin/env bash
# Creates (once) a Python virtualenv with the pinned tools of
# scripts/tools/requirements.txt in target/py-tools, and prints its bin folder.
#
#   PATH="$(scripts/py-tools.sh):$PATH"
#
# Reinstalls when requirements.txt changes. Needs python3 (3.10+) with venv.
set -euo pipefail

cd "$(dirname "$0")/.."
req=scripts/tools/requirements.txt
venv=${PY_TOOLS_DIR:-target/py-tools}
stamp="$venv/.requirements"

if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$req" "$stamp"; then
    echo "py-tools: installing $req into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    cp "$req" "$stamp"
fi
cd "$venv/bin" && pwd
