#!/usr/bin/env bash
# Install synadm, the operators' command-line admin tool for Synapse, from PyPI into its own
# virtualenv (its dependencies stay out of Moot's .venv), once. `make test` runs it: the tests
# in tests/interop/test_admin_tools.py drive Moot's admin API with it, as an operator would.
#
# Usage: bench/synadm-venv.sh [VENV]   (default: bench/.synadm-venv beside this script)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$HERE/pypi-venv.sh" "${1:-$HERE/.synadm-venv}" synadm "synadm==0.49.2"
