#!/usr/bin/env bash
# One command: set up .venv and run the main job on the embedded demo province.
#   bash scripts/demo.sh [covgap demo options]   (default: -o out --map maps/demo.html)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- -o out --map maps/demo.html --overwrite
fi
exec .venv/bin/covgap demo "$@"
