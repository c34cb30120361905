#!/usr/bin/env bash
# Install Sygnal, the Matrix reference push gateway, into its own virtualenv (never Moot's .venv),
# once.
#
# Sygnal is not on PyPI: its unchanged release source and a requirements file pinning its
# dependencies to the release's lock file lie in shared/vendor/, beside the checkout (../shared).
# `make test` runs this first; tests/sygnal_gateway.py runs Sygnal from the venv between a homeserver
# and a loopback web push service in tests/interop/.
#
# Idempotent: a stamp file records the checksum of the source and of the requirements that were
# installed, so a second run with the same files does nothing and a changed one reinstalls.
#
# Usage: bench/sygnal-venv.sh [VENV [VENDOR_DIR]]
#   (defaults: bench/.sygnal-venv beside this script, ../shared/vendor beside the checkout)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-$HERE/.sygnal-venv}"
VENDOR="${2:-$HERE/../../shared/vendor}"
SOURCE="$VENDOR/matrix-sygnal-0.15.1.tar.gz"
REQUIREMENTS="$VENDOR/matrix-sygnal-0.15.1.requirements.txt"
STAMP="$VENV/.installed"

for file in "$SOURCE" "$REQUIREMENTS"; do
    if [[ ! -f "$file" ]]; then
        echo "sygnal-venv.sh: $file is missing (shared/vendor must lie beside the checkout)" >&2
        exit 1
    fi
done
# The release source is checked against the checksum shipped beside it before it is installed.
(cd "$VENDOR" && sha256sum --check --quiet --ignore-missing SHA256SUMS)
WANTED="$(cat "$SOURCE" "$REQUIREMENTS" | sha256sum | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANTED" && -x "$VENV/bin/sygnal" ]]; then
    exit 0
fi
echo "installing Sygnal 0.15.1 from $VENDOR into $VENV" >&2
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip >&2
# The pinned dependencies (and poetry-core, Sygnal's build backend) from the registry first, then the
# source built against them without an isolated build environment, so nothing unpinned comes in.
"$VENV/bin/pip" install --quiet -r "$REQUIREMENTS" >&2
"$VENV/bin/pip" install --quiet --no-build-isolation "$SOURCE" >&2
"$VENV/bin/python" -c "import sygnal, sygnal.webpushpushkin" >&2
echo "$WANTED" > "$STAMP"
