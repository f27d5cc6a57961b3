#!/usr/bin/env bash
# Create .venv (once) and install coverage-gap into it, with the test tools when asked.
#   bash scripts/setup.sh          # the tool
#   bash scripts/setup.sh test     # the tool and its test dependencies
# PYTHON selects the interpreter (default: python3, which must be 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "coverage-gap needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)." >&2
  echo "Set PYTHON=/path/to/python3.11 and run again." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The tool with its compiled terrain sweep (numba, the `fast` extra: the same results as the
# numpy code, several times faster); the test tools carry it too.
extra="[fast]"
[ "${1:-}" = "test" ] && extra="[test]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}"
# The package is imported as `coverage`: coverage.py in the same environment would shadow it.
if .venv/bin/python -m pip show coverage >/dev/null 2>&1; then
  echo "coverage.py is installed in .venv and clashes with this package's import name" \
       "'coverage'; remove it: .venv/bin/pip uninstall coverage pytest-cov" >&2
  exit 1
fi
