#!/usr/bin/env bash
# Regenerates the Pillow fixtures of the transform tests (tests/fixtures/pillow/) with
# Debian's python3-pil, installed here when missing. The tests read the committed fixtures
# and need no Python.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's python3-pil is for the system Python, which a pyenv shim may hide.
PY=/usr/bin/python3
if ! $PY -c "import PIL" 2>/dev/null; then
    apt-get update -q && apt-get install -y -q python3-pil
fi
rm -rf tests/fixtures/pillow
$PY scripts/golden_pillow.py tests/fixtures/pillow
