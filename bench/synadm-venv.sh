#!/usr/bin/env bash
# Install synadm, the operators' command-line admin tool for Synapse, from PyPI into its own
# virtualenv (its dependencies stay out of Moot's .venv), once. `make test` runs it: the tests
# in tests/interop/test_admin_tools.py drive Moot's admin API with it, as an operator would.
# Idempotent: a stamp file records the requirement that was installed, so a second run with the
# same requirement does nothing and a changed one reinstalls.
#
# Usage: bench/synadm-venv.sh [VENV]   (default: bench/.synadm-venv beside this script)
set -euo pipefail

REQUIREMENT="synadm==0.49.2"

VENV="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.synadm-venv}"
STAMP="$VENV/.installed"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQUIREMENT" && -x "$VENV/bin/synadm" ]]; then
    exit 0
fi
echo "installing $REQUIREMENT into $VENV" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip >&2
"$VENV/bin/pip" install --quiet "$REQUIREMENT" >&2
echo "$REQUIREMENT" > "$STAMP"
