#!/usr/bin/env bash
# Set up and run the whole test suite (unit + integration against a real local Label Studio,
# and the report's browser test in Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1 && [ -z "${VERIFY_CHROMIUM:-}" ]; then
  echo "installing Debian's chromium for the report's browser test…" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
