#!/usr/bin/env bash
# Copyright (c) hidiff_mm contributors. All rights reserved.
#
# Create ./.venv (if missing) and install the pinned hidiff_mm environment into it:
#   requirements/torch.txt + runtime.txt + tests.txt (one resolver run, constrained by
#   requirements/constraints.txt), mmagic==1.2.0 with --no-deps, then hidiff_mm itself
#   (editable, --no-deps --no-build-isolation).
# Idempotent: a stamp inside the venv records a hash of the requirement files, setup.cfg,
# pyproject.toml and this script; when it matches, the script exits at once.
#
# Environment: PYTHON (interpreter for a new venv, default python3), HIDIFF_VENV (venv path,
# default <repo>/.venv), HIDIFF_FORCE_SETUP=1 (reinstall even if the stamp matches).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${HIDIFF_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.hidiff_mm_setup_stamp"
HASH_INPUTS=(requirements/*.txt setup.cfg pyproject.toml tools/setup_env.sh)
HASH="$(cat "${HASH_INPUTS[@]}" | sha256sum | cut -d' ' -f1)"

up_to_date() {
    [[ "${HIDIFF_FORCE_SETUP:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" \
        && -x "$VENV/bin/python" ]]
}

if up_to_date; then
    echo "setup_env: $VENV is up to date"
    exit 0
fi

# Serialise concurrent runs (e.g. the quick start and the tests started together).
if command -v flock >/dev/null 2>&1; then
    LOCK="${TMPDIR:-/tmp}/hidiff_mm_setup_$(echo "$VENV" | sha256sum | cut -c1-12).lock"
    exec 9>"$LOCK"
    flock 9
    if up_to_date; then
        echo "setup_env: $VENV is up to date"
        exit 0
    fi
fi

START=$SECONDS
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 9), "hidiff_mm needs Python >= 3.9"'
    echo "setup_env: creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
rm -f "$STAMP"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
PIP_QUIET=(--quiet --progress-bar off)

echo "setup_env: installing torch, runtime and test requirements"
"${PIP[@]}" install "${PIP_QUIET[@]}" -c requirements/constraints.txt \
    -r requirements/torch.txt -r requirements/runtime.txt -r requirements/tests.txt
echo "setup_env: installing mmagic (--no-deps)"
"${PIP[@]}" install "${PIP_QUIET[@]}" --no-deps -r requirements/mmagic.txt
echo "setup_env: installing hidiff_mm (editable)"
"${PIP[@]}" install "${PIP_QUIET[@]}" --no-deps --no-build-isolation -e .

echo "$HASH" >"$STAMP"
echo "setup_env: done in $((SECONDS - START)) s ($(du -sh "$VENV" | cut -f1) in $VENV)"
