#!/usr/bin/env bash
# The README's test command: on a fresh machine with Python, install what the tests
# need (uv and the workspace, and Debian's chromium, the real browser the web page's
# tests drive), then run the whole suite, one file per worker process on up to four
# cores (pytest-xdist: module fixtures are built once; a serial run is ~14 min on two
# cores, this one well under). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
    as_root=""
    if [ "$(id -u)" -ne 0 ]; then as_root="sudo"; fi
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check uv
export UV_NO_PROGRESS=1
uv run pytest --numprocesses=auto --maxprocesses=4 --dist=loadfile "$@"
