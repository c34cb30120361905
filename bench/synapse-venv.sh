#!/usr/bin/env bash
# Install Synapse from PyPI into its own virtualenv (never Moot's .venv), once.
#
# Shared by bench/compare.sh (Synapse as the benchmark's yardstick) and `make test` (Synapse as a
# federation peer in tests/interop/). Idempotent (bench/pypi-venv.sh).
#
# Usage: bench/synapse-venv.sh [VENV]   (default: bench/.synapse-venv beside this script)
set -euo pipefail

# One range for every user of the venv: the release line the tests and the benchmark were written
# against, with its bug-fix releases. The benchmark runs Synapse on PostgreSQL (the tests use
# SQLite): its driver comes as the psycopg2-binary wheel rather than through Synapse's `postgres`
# extra, whose psycopg2 builds from source and needs a compiler and libpq's headers.
REQUIREMENTS=(matrix-synapse~=1.163.2 psycopg2-binary)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$HERE/pypi-venv.sh" "${1:-$HERE/.synapse-venv}" python "${REQUIREMENTS[@]}"
