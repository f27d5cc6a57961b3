#!/usr/bin/env bash
# One command: set up .venv with the test tools, a headless Chromium for the map tests, and
# run the whole test suite (unit, CLI, demo scored against its hidden truth, notebooks,
# browser). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# The map tests drive Debian's Chromium. Install it when we can (root with apt-get).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${COVGAP_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
      >/dev/null) || echo "chromium could not be installed: browser tests will skip." >&2
  else
    echo "chromium is not installed and this is not root: browser tests will skip." >&2
  fi
fi
if command -v chromium >/dev/null 2>&1 || [ -n "${COVGAP_CHROMIUM:-}" ]; then
  export COVGAP_REQUIRE_BROWSER=1  # with a browser present, a skipped browser test fails
fi
exec .venv/bin/python -m pytest "$@"
