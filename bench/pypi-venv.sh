#!/usr/bin/env bash
# Install pinned packages from PyPI into a virtualenv of their own (never Moot's .venv), once:
# the reference servers and tools the tests and benchmarks run beside Moot (synapse-venv.sh,
# synadm-venv.sh). Idempotent: a stamp file records the requirements that were installed, so a
# second run with the same requirements does nothing and changed ones reinstall.
#
# Usage: bench/pypi-venv.sh VENV EXECUTABLE REQUIREMENT...
#   EXECUTABLE: a program in VENV/bin that the install must leave behind (checked with the stamp).
set -euo pipefail

VENV="$1" EXECUTABLE="$2"
shift 2
REQUIREMENT="$*"
STAMP="$VENV/.installed"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQUIREMENT" && -x "$VENV/bin/$EXECUTABLE" ]]; then
    exit 0
fi
echo "installing $REQUIREMENT into $VENV" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip >&2
"$VENV/bin/pip" install --quiet "$@" >&2
echo "$REQUIREMENT" > "$STAMP"
